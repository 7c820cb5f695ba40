/* What a session keeps of the client's verified chain, for every trust layout.
 *
 * A resumed session never re-runs chain verification, yet its peer must still chain to a CA
 * of the ctx it resumes at, and none of the CAs on the way may be revoked by the current
 * CRLs (verify.c). When client-ca holds the client's issuing CA that walk needs nothing but
 * client-ca. When it holds only the root (the client presents its intermediate), several
 * roots, or anything in between, the CAs between the leaf and client-ca are known only from
 * the handshake that created the session, and OpenSSL keeps them in no form that survives a
 * ticket (a ticket encodes the leaf alone). So at the end of a full handshake the verified
 * chain's CAs that are not in client-ca go into the session's ticket application data
 * (SSL_SESSION_set1_ticket_appdata): encrypted and authenticated inside a ticket, kept as is
 * by the session store. Resumption reads them back through the CA pool (capool.c), which
 * decodes each distinct CA once.
 *
 * Format: for each carried CA, leaf side first, a 2-byte big-endian length and its DER. */
#include <stdbool.h>
#include <string.h>

#include "tlsx/capool_internal.h"
#include "tlsx/internal.h"
#include "tlsx/sesscache_internal.h"

#define MAX_DER 16384 /* a CA certificate bigger than this is not carried */

/* 1 when a and b have the same encoding. Two different certificates differ in their
 * signatures, which compare without decoding anything (X509_cmp would first cache the
 * extensions of the presented copy); equal ones are confirmed byte for byte. */
static int same_cert(X509 *a, X509 *b)
{
    if (a == b)
        return 1;
    const ASN1_BIT_STRING *sa = NULL, *sb = NULL;
    X509_get0_signature(&sa, NULL, a);
    X509_get0_signature(&sb, NULL, b);
    if (sa == NULL || sb == NULL || ASN1_STRING_cmp(sa, sb) != 0)
        return 0;
    unsigned char *da = NULL, *db = NULL;
    int la = i2d_X509(a, &da), lb = i2d_X509(b, &db);
    int same = la > 0 && la == lb && memcmp(da, db, (size_t)la) == 0;
    OPENSSL_free(da);
    OPENSSL_free(db);
    return same;
}

/* The client-ca object with the same encoding as x, or NULL. */
static X509 *client_ca_of(const struct tlsx_server_state *st, X509 *x)
{
    for (int j = 0; j < sk_X509_num(st->client_cas); j++)
        if (same_cert(sk_X509_value(st->client_cas, j), x))
            return sk_X509_value(st->client_cas, j);
    return NULL;
}

static struct tlsx_capool *pool_of(const struct tlsx_server_state *st)
{
    return st != NULL ? tlsx_ticket_keys_pool(st->tickets) : NULL;
}

/* The pool's object for x (x itself when new), referenced; NULL without a pool. */
static X509 *pooled(struct tlsx_capool *pool, X509 *x)
{
    unsigned char *der = NULL;
    unsigned char id[TLSX_CAPOOL_ID_LEN];
    int len = pool != NULL ? i2d_X509(x, &der) : -1;
    X509 *out = NULL;
    if (len > 0 && tlsx_capool_id(pool, der, (size_t)len, id) == 0)
        out = tlsx_capool_put(pool, id, x);
    OPENSSL_free(der);
    return out;
}

/* The shared object to use instead of x (a new reference), or NULL to keep x: the ctx's
 * client-ca copy, or for a CA of the verified chain (verified_ca) the pool's. */
static X509 *shared_of(const struct tlsx_server_state *st, X509 *x, bool verified_ca)
{
    X509 *ca = client_ca_of(st, x);
    if (ca != NULL)
        return ca == x || X509_up_ref(ca) != 1 ? NULL : ca;
    X509 *pooled_x = verified_ca ? pooled(pool_of(st), x) : NULL;
    if (pooled_x == x) {
        X509_free(pooled_x); /* x is the pool's object already */
        return NULL;
    }
    return pooled_x;
}

/* Swap the certificates of sk from index `from` on for their shared objects. */
static void share_in(STACK_OF(X509) *sk, int from, const struct tlsx_server_state *st,
                     STACK_OF(X509) *verified)
{
    for (int i = from; sk != NULL && i < sk_X509_num(sk); i++) {
        X509 *x = sk_X509_value(sk, i);
        bool ca = false;
        for (int j = 1; !ca && j < sk_X509_num(verified); j++)
            ca = sk_X509_value(verified, j) == x;
        X509 *shared = shared_of(st, x, ca);
        if (shared != NULL) {
            sk_X509_set(sk, i, shared); /* the reference taken moves into the stack */
            X509_free(x);
        }
    }
}

void tlsx_sess_keep_chain(SSL *ssl, SSL_SESSION *sess)
{
    const struct tlsx_server_state *st = tlsx_server_state_get(SSL_get_SSL_CTX(ssl));
    STACK_OF(X509) *verified = SSL_get0_verified_chain(ssl);
    /* A resumed handshake verified nothing: its session copy keeps the data it came with. */
    if (st == NULL || verified == NULL || sk_X509_num(verified) < 2)
        return;
    if (SSL_get_session(ssl) == sess) {
        /* What the client sent after its leaf, kept with the session (server side: without
         * the leaf), then the connection's verified chain, which otherwise keeps the sent
         * copies alive for as long as the connection lasts (a client-ca holding only the
         * root: the intermediate is the client's). */
        share_in(SSL_get_peer_cert_chain(ssl), 0, st, verified);
        share_in(verified, 1, st, verified);
    }
    /* The CAs above the leaf up to the first one client-ca holds. */
    int n = 0, len[TLSX_SESS_MAX_CARRIED];
    size_t total = 0;
    for (int i = 1; i < sk_X509_num(verified) && n <= TLSX_SESS_MAX_CARRIED; i++) {
        X509 *ca = sk_X509_value(verified, i);
        if (client_ca_of(st, ca) != NULL)
            break;
        int l = n < TLSX_SESS_MAX_CARRIED ? i2d_X509(ca, NULL) : -1;
        if (l <= 0 || l > MAX_DER) {
            n = -1; /* nothing rather than part: resumption then costs a full handshake */
            break;
        }
        len[n++] = l;
        total += 2 + (size_t)l;
    }
    unsigned char *buf = n > 0 ? OPENSSL_malloc(total) : NULL;
    size_t at = 0;
    for (int i = 0; buf != NULL && i < n; i++) {
        buf[at++] = (unsigned char)(len[i] >> 8);
        buf[at++] = (unsigned char)(len[i] & 0xff);
        unsigned char *p = buf + at;
        at += (size_t)i2d_X509(sk_X509_value(verified, i + 1), &p);
    }
    /* Failure leaves no data, which only costs this session its resumption. */
    (void)SSL_SESSION_set1_ticket_appdata(sess, buf, at);
    OPENSSL_free(buf);
}

/* The CA for one carried DER: the pool's object, else decoded (and then pooled). */
static X509 *carried_ca(struct tlsx_capool *pool, const unsigned char *der, size_t len)
{
    unsigned char id[TLSX_CAPOOL_ID_LEN];
    X509 *x = NULL;
    if (pool != NULL && tlsx_capool_id(pool, der, len, id) == 0 &&
        (x = tlsx_capool_get(pool, id)) != NULL)
        return x;
    const unsigned char *p = der;
    X509 *fresh = d2i_X509(NULL, &p, (long)len);
    if (fresh == NULL || p != der + len) {
        X509_free(fresh);
        return NULL;
    }
    if (pool == NULL)
        return fresh;
    x = tlsx_capool_put(pool, id, fresh);
    X509_free(fresh);
    return x;
}

int tlsx_sess_carried_cas(SSL *ssl, const SSL_SESSION *sess, STACK_OF(X509) **out)
{
    *out = NULL;
    void *data = NULL;
    size_t len = 0;
    if (SSL_SESSION_get0_ticket_appdata((SSL_SESSION *)sess, &data, &len) != 1 || len == 0)
        return 0;
    const unsigned char *p = data, *end = p + len;
    struct tlsx_capool *pool = pool_of(tlsx_server_state_get(SSL_get_SSL_CTX(ssl)));
    STACK_OF(X509) *cas = sk_X509_new_null();
    for (int n = 0; cas != NULL && p < end; n++) {
        size_t dlen = end - p >= 2 ? ((size_t)p[0] << 8) | p[1] : 0;
        X509 *x = NULL;
        if (n < TLSX_SESS_MAX_CARRIED && dlen > 0 && dlen <= (size_t)(end - p - 2))
            x = carried_ca(pool, p + 2, dlen);
        if (x == NULL || !sk_X509_push(cas, x)) {
            X509_free(x);
            sk_X509_pop_free(cas, X509_free);
            return -1;
        }
        p += 2 + dlen;
    }
    if (cas == NULL)
        return -1;
    *out = cas;
    return 0;
}
