/* Verified client chains, remembered per server ctx (issue 6: X509_verify_cert is about a
 * sixth of a full mTLS handshake, and most clients present the same chain every time).
 *
 * What is skipped on a hit is chain building and the signatures of the chain (and of the CRLs
 * OpenSSL re-verifies each time). What is not: validity against the current time (the chain's
 * latest notBefore and earliest notAfter are kept), the revocation lookup against the ctx's
 * CRL set, the expired-CRL policy, the allow-policy and, inside libssl, the client's
 * CertificateVerify, which proves possession of the leaf's key at every handshake whatever
 * this callback says. Only successes are stored.
 *
 * One cache per server ctx, freed with it: the ctx is what ties a verdict to its trust store,
 * CRL set and verify parameters, so a reload (new ctxs) starts empty, and those objects'
 * addresses are part of the key as well. The gateway's worker threads share a ctx, so the
 * cache is one LRU under a mutex rather than one per worker: a lookup holds the lock for a
 * hash probe and a few reference counts, tiny next to the handshake around it, and a client
 * verified by one worker is then known to all. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tlsx/internal.h"
#include "tlsx/verify_cache_internal.h"

/* A certificate of a verified chain: the presented one at index `presented`, or (-1) one
 * from the trust store, referenced by the entry. */
struct slot {
    int presented;
    X509 *cert;
};

struct entry {
    unsigned char key[TLSX_VCACHE_KEY_LEN];
    int64_t not_before; /* latest notBefore over the chain */
    int64_t not_after;  /* earliest notAfter over the chain */
    int n;
    struct slot slot[TLSX_VCACHE_MAX_CHAIN];
    struct entry *next;  /* same bucket */
    struct entry *newer; /* LRU list */
    struct entry *older;
};

struct tlsx_vcache {
    pthread_mutex_t lock; /* guards everything below but sha256 and cap */
    EVP_MD *sha256;       /* fetched once: no implicit fetch per digest */
    size_t cap;
    size_t mask; /* buckets - 1 */
    struct entry **buckets;
    struct entry *newest, *oldest;
    struct tlsx_vcache_stats st;
};

struct tlsx_vcache *tlsx_vcache_new(size_t cap)
{
    struct tlsx_vcache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cap = cap > 0 ? cap : TLSX_VCACHE_SIZE;
    size_t nb = 16;
    while (nb < 2 * c->cap)
        nb *= 2;
    c->mask = nb - 1;
    c->buckets = calloc(nb, sizeof(*c->buckets));
    c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (c->buckets == NULL || c->sha256 == NULL) {
        free(c->buckets);
        EVP_MD_free(c->sha256);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void entry_free(struct entry *e)
{
    for (int i = 0; i < e->n; i++)
        X509_free(e->slot[i].cert);
    free(e);
}

void tlsx_vcache_free(struct tlsx_vcache *c)
{
    if (c == NULL)
        return;
    for (struct entry *e = c->newest, *next; e != NULL; e = next) {
        next = e->older;
        entry_free(e);
    }
    free(c->buckets);
    EVP_MD_free(c->sha256);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void put_bytes(unsigned char *buf, size_t *at, const void *p, size_t n)
{
    memcpy(buf + *at, p, n);
    *at += n;
}

int tlsx_vcache_key(struct tlsx_vcache *c, const struct tlsx_vcache_gen *gen,
                    STACK_OF(X509) *presented, unsigned char key[TLSX_VCACHE_KEY_LEN])
{
    int n = sk_X509_num(presented);
    if (n <= 0 || n > TLSX_VCACHE_MAX_CHAIN)
        return -1;
    /* SHA-256 over the generation and each presented certificate's SHA-256 (over its DER),
     * in order: as binding as hashing the DER itself, and every part has a fixed size. */
    unsigned char buf[sizeof(*gen) + TLSX_VCACHE_MAX_CHAIN * TLSX_VCACHE_KEY_LEN];
    size_t at = 0;
    put_bytes(buf, &at, &gen->store, sizeof(gen->store));
    put_bytes(buf, &at, &gen->crls, sizeof(gen->crls));
    put_bytes(buf, &at, &gen->client_cas, sizeof(gen->client_cas));
    put_bytes(buf, &at, &gen->flags, sizeof(gen->flags));
    put_bytes(buf, &at, &gen->depth, sizeof(gen->depth));
    for (int i = 0; i < n; i++) {
        unsigned int len = 0;
        if (X509_digest(sk_X509_value(presented, i), c->sha256, buf + at, &len) != 1 ||
            len != TLSX_VCACHE_KEY_LEN)
            return -1;
        at += len;
    }
    return EVP_Digest(buf, at, key, NULL, c->sha256, NULL) == 1 ? 0 : -1;
}

static size_t bucket_of(const struct tlsx_vcache *c, const unsigned char *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof(h)); /* already uniformly distributed */
    return (size_t)h & c->mask;
}

static struct entry *find(const struct tlsx_vcache *c, const unsigned char *key)
{
    for (struct entry *e = c->buckets[bucket_of(c, key)]; e != NULL; e = e->next)
        if (memcmp(e->key, key, TLSX_VCACHE_KEY_LEN) == 0)
            return e;
    return NULL;
}

static void lru_unlink(struct tlsx_vcache *c, struct entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct tlsx_vcache *c, struct entry *e)
{
    e->newer = NULL;
    e->older = c->newest;
    if (c->newest != NULL)
        c->newest->newer = e;
    c->newest = e;
    if (c->oldest == NULL)
        c->oldest = e;
}

/* Unlink e from its bucket and the LRU and free it. */
static void drop(struct tlsx_vcache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[bucket_of(c, e->key)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    lru_unlink(c, e);
    entry_free(e);
    c->st.entries--;
}

int tlsx_vcache_get(struct tlsx_vcache *c, const unsigned char key[TLSX_VCACHE_KEY_LEN],
                    STACK_OF(X509) *presented, int64_t now, STACK_OF(X509) **chain)
{
    *chain = NULL;
    STACK_OF(X509) *out = sk_X509_new_reserve(NULL, TLSX_VCACHE_MAX_CHAIN);
    if (out == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, key);
    if (e != NULL && (now < e->not_before || now > e->not_after)) {
        drop(c, e);
        c->st.expired++;
        e = NULL;
    }
    for (int i = 0; e != NULL && i < e->n; i++) {
        const struct slot *s = &e->slot[i];
        X509 *x = s->presented >= 0 ? sk_X509_value(presented, s->presented) : s->cert;
        /* Same key, same presented list: the index is always there. Checked anyway. */
        if (x == NULL || !X509_up_ref(x))
            e = NULL;
        else
            sk_X509_push(out, x); /* room reserved: cannot fail */
    }
    if (e != NULL) {
        lru_unlink(c, e);
        lru_push(c, e);
        c->st.hits++;
    } else {
        c->st.misses++;
    }
    pthread_mutex_unlock(&c->lock);
    if (e == NULL) {
        sk_X509_pop_free(out, X509_free);
        return 0;
    }
    *chain = out;
    return 1;
}

/* A new entry describing verified in terms of presented; NULL if it cannot be cached. */
static struct entry *entry_new(const unsigned char *key, STACK_OF(X509) *presented,
                               STACK_OF(X509) *verified)
{
    int n = sk_X509_num(verified);
    if (n <= 0 || n > TLSX_VCACHE_MAX_CHAIN)
        return NULL;
    struct entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, TLSX_VCACHE_KEY_LEN);
    e->not_before = INT64_MIN;
    e->not_after = INT64_MAX;
    for (int i = 0; i < n; i++) {
        X509 *x = sk_X509_value(verified, i);
        int64_t nb = tlsx_asn1_time_unix(X509_get0_notBefore(x));
        int64_t na = tlsx_asn1_time_unix(X509_get0_notAfter(x));
        if (nb == 0 || na == 0) { /* unreadable time: leave it to OpenSSL every time */
            entry_free(e);
            return NULL;
        }
        e->not_before = nb > e->not_before ? nb : e->not_before;
        e->not_after = na < e->not_after ? na : e->not_after;
        struct slot *s = &e->slot[e->n++];
        /* X509_verify_cert builds the chain from the very objects it was given. */
        s->presented = -1;
        for (int j = 0; j < sk_X509_num(presented) && s->presented < 0; j++)
            if (sk_X509_value(presented, j) == x)
                s->presented = j;
        if (s->presented < 0) {
            if (!X509_up_ref(x)) {
                e->n--;
                entry_free(e);
                return NULL;
            }
            s->cert = x;
        }
    }
    return e;
}

int tlsx_vcache_put(struct tlsx_vcache *c, const unsigned char key[TLSX_VCACHE_KEY_LEN],
                    STACK_OF(X509) *presented, STACK_OF(X509) *verified)
{
    struct entry *e = entry_new(key, presented, verified);
    if (e == NULL)
        return -1;
    pthread_mutex_lock(&c->lock);
    struct entry *old = find(c, key); /* two workers verified the same chain at once */
    if (old != NULL)
        drop(c, old);
    if (c->st.entries >= c->cap) {
        drop(c, c->oldest);
        c->st.evicted++;
    }
    size_t b = bucket_of(c, key);
    e->next = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->st.entries++;
    c->st.stored++;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void tlsx_vcache_stats(struct tlsx_vcache *c, struct tlsx_vcache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}

/* The cache hangs off its SSL_CTX in ex_data and is freed with it. */
static CRYPTO_ONCE once = CRYPTO_ONCE_STATIC_INIT;
static int ctx_index = -1;

static void free_cache(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    tlsx_vcache_free(ptr);
}

static void init_index(void)
{
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_cache);
}

static int ready(void)
{
    return CRYPTO_THREAD_run_once(&once, init_index) == 1 && ctx_index >= 0;
}

int tlsx_vcache_install(SSL_CTX *ctx, struct tw_err *err)
{
    TW_ENSURE_OSSL(ready(), err, TW_ERR_INTERNAL, "cannot allocate TLS context data");
    struct tlsx_vcache *c = tlsx_vcache_new(TLSX_VCACHE_SIZE);
    TW_ENSURE(c != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (SSL_CTX_set_ex_data(ctx, ctx_index, c) != 1) {
        tlsx_vcache_free(c);
        return tw_err_ossl(err, TW_ERR_INTERNAL, "cannot attach the verify cache");
    }
    SSL_CTX_set_cert_verify_callback(ctx, tlsx_server_cert_verify, c);
    return 0;
}

struct tlsx_vcache *tlsx_vcache_of(const SSL_CTX *ctx)
{
    return ctx != NULL && ready() ? SSL_CTX_get_ex_data(ctx, ctx_index) : NULL;
}
