/* Private to src/tlsx/: the cache of verified client chains (verify_cache.c) and the
 * certificate-verify callback of server ctxs that uses it (verify.c). */
#ifndef TW_TLSX_VERIFY_CACHE_INTERNAL_H
#define TW_TLSX_VERIFY_CACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/err.h"

#define TLSX_VCACHE_SIZE 1024    /* chains remembered per server ctx */
#define TLSX_VCACHE_MAX_CHAIN 10 /* longer verified chains are not cached */
#define TLSX_VCACHE_KEY_LEN 32   /* SHA-256 */

/* A bounded, thread-safe LRU of chains that X509_verify_cert accepted, keyed by the SHA-256
 * of what verification depends on: the presented certificates (DER, in order) and the
 * generation (trust store, CRL set, client CAs and verify parameters of the ctx). */
struct tlsx_vcache;

/* What a verification depends on besides the presented certificates. Every field is part of
 * the key: a reload builds a new store, CRL set and CA list, so a cached verdict of the old
 * ones can never be found with the new ones. */
struct tlsx_vcache_gen {
    const void *store;      /* the X509_STORE (trust anchors + CRLs) */
    const void *crls;       /* the ctx's CRL set, NULL if none */
    const void *client_cas; /* the ctx's client CA list */
    unsigned long flags;    /* X509_VERIFY_PARAM flags (CRL_CHECK, PARTIAL_CHAIN ...) */
    int depth;              /* verify depth */
    /* The purpose (sslclient) is fixed by tlsx_server_ctx_new for the ctx, and so is the
     * cache: OpenSSL 3.0 has no getter for it. */
};

struct tlsx_vcache_stats {
    uint64_t hits, misses, stored, evicted, expired;
    size_t entries;
};

/* An empty cache of at most cap entries (0: TLSX_VCACHE_SIZE). NULL on allocation failure. */
struct tlsx_vcache *tlsx_vcache_new(size_t cap);
void tlsx_vcache_free(struct tlsx_vcache *c);

/* The key for the presented chain (leaf first) under gen. -1 when a certificate cannot be
 * encoded or the chain is empty or longer than TLSX_VCACHE_MAX_CHAIN (then: not cached). */
int tlsx_vcache_key(struct tlsx_vcache *c, const struct tlsx_vcache_gen *gen,
                    STACK_OF(X509) *presented, unsigned char key[TLSX_VCACHE_KEY_LEN]);

/* 1 on a hit whose whole chain is valid at now: *chain receives a new verified chain (the
 * presented objects where the client sent them, the store's otherwise; each referenced; the
 * caller owns the stack). 0 on a miss; an entry outside its validity window is dropped. */
int tlsx_vcache_get(struct tlsx_vcache *c, const unsigned char key[TLSX_VCACHE_KEY_LEN],
                    STACK_OF(X509) *presented, int64_t now, STACK_OF(X509) **chain);

/* Remember that presented verified as verified (X509_STORE_CTX_get0_chain after success).
 * Only ever called after a successful verification. 0 stored, -1 not (too long, no time,
 * out of memory: the caller just verifies again next time). */
int tlsx_vcache_put(struct tlsx_vcache *c, const unsigned char key[TLSX_VCACHE_KEY_LEN],
                    STACK_OF(X509) *presented, STACK_OF(X509) *verified);

void tlsx_vcache_stats(struct tlsx_vcache *c, struct tlsx_vcache_stats *out);

/* Give ctx a cache and install tlsx_server_cert_verify as its certificate-verify callback.
 * The cache is freed with ctx. TW_ERR_INTERNAL on allocation failure. */
int tlsx_vcache_install(SSL_CTX *ctx, struct tw_err *err) TW_MUST_CHECK;

/* The cache of a ctx built by tlsx_server_ctx_new (NULL if it verifies no clients). */
struct tlsx_vcache *tlsx_vcache_of(const SSL_CTX *ctx);

/* SSL_CTX_set_cert_verify_callback of server ctxs (verify.c): a cached chain, or
 * X509_verify_cert. arg is the ctx's struct tlsx_vcache. */
int tlsx_server_cert_verify(X509_STORE_CTX *x, void *arg);

#endif
