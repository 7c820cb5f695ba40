/* Stateful resumption for a single process (issue 6): the sessions of every ctx sharing one
 * set of in-memory ticket keys live in a bounded store kept with those keys, so they survive
 * reloads and expire with key rotation like tickets do, while a resumption needs no session
 * encode or decode (a ticket re-decodes the client certificate every time). OpenSSL's own
 * cache is off; sessions pass through the callbacks below. The store keeps its own copies
 * (SSL_SESSION_dup: references to the decoded certificates, nothing decoded again): OpenSSL
 * marks the live session of a connection that ends without close_notify unresumable, and a
 * server then refuses to resume it, which a ticket does not care about either. A resumed
 * session's peer is re-checked by the lookup (tlsx_resume_allowed) before OpenSSL accepts it,
 * exactly as with tickets. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlsx/internal.h"
#include "tlsx/sesscache_internal.h"

/* Direct-mapped: a new session replaces whatever shared its slot. Each entry holds a decoded
 * client certificate (~4 kB; the intermediate is shared, tlsx_sess_share_cas), so the store
 * stays under ~20 MB. */
#define SLOTS 4096u

struct entry {
    SSL_SESSION *sess;
    uint64_t epoch;
};

struct tlsx_sess_store {
    pthread_mutex_t lock; /* guards slot[] */
    struct entry slot[SLOTS];
};

static size_t slot_of(const unsigned char *id, unsigned int len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (unsigned int i = 0; i < len; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (size_t)(h % SLOTS);
}

struct tlsx_sess_store *tlsx_sess_store_new(void)
{
    struct tlsx_sess_store *s = calloc(1, sizeof(*s));
    if (s != NULL)
        pthread_mutex_init(&s->lock, NULL);
    return s;
}

void tlsx_sess_store_free(struct tlsx_sess_store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        SSL_SESSION_free(s->slot[i].sess);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* 1 when a and b have the same encoding. Two different certificates differ in their
 * signatures, which compare without decoding anything (X509_cmp would first cache the
 * extensions of the presented copy); equal ones are confirmed byte for byte. */
static int same_cert(X509 *a, X509 *b)
{
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

void tlsx_sess_share_cas(SSL *ssl)
{
    const struct tlsx_server_state *st = tlsx_server_state_get(SSL_get_SSL_CTX(ssl));
    /* Server side: the certificates the client sent after its leaf. */
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    if (st == NULL || chain == NULL)
        return;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *sent = sk_X509_value(chain, i);
        for (int j = 0; j < sk_X509_num(st->client_cas); j++) {
            X509 *ca = sk_X509_value(st->client_cas, j);
            if (ca == sent)
                break;
            if (same_cert(ca, sent) && X509_up_ref(ca) == 1) {
                sk_X509_set(chain, i, ca);
                X509_free(sent);
                break;
            }
        }
    }
}

static struct tlsx_ticket_keys *keys_of(const SSL_CTX *ctx)
{
    const struct tlsx_server_state *st = tlsx_server_state_get(ctx);
    return st != NULL ? st->tickets : NULL;
}

static int new_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tlsx_ticket_keys *k = keys_of(SSL_get_SSL_CTX(ssl));
    struct tlsx_sess_store *s = tlsx_ticket_keys_store(k);
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    if (s == NULL || len == 0)
        return 0; /* OpenSSL keeps its reference */
    if (SSL_get_session(ssl) == sess)
        tlsx_sess_share_cas(ssl); /* before the copy, so that both share the CAs */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL)
        return 0;
    tlsx_ticket_keys_tick(k, (int64_t)time(NULL));
    uint64_t epoch = tlsx_ticket_keys_epoch(k);
    size_t i = slot_of(id, len);
    pthread_mutex_lock(&s->lock);
    SSL_SESSION *old = s->slot[i].sess;
    s->slot[i] = (struct entry){copy, epoch};
    pthread_mutex_unlock(&s->lock);
    SSL_SESSION_free(old);
    return 0;
}

static SSL_SESSION *get_cb(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    *copy = 0; /* the session returned is a fresh copy, ours to hand over */
    struct tlsx_ticket_keys *k = keys_of(SSL_get_SSL_CTX(ssl));
    struct tlsx_sess_store *s = tlsx_ticket_keys_store(k);
    if (s == NULL || len <= 0)
        return NULL;
    tlsx_ticket_keys_tick(k, (int64_t)time(NULL));
    uint64_t epoch = tlsx_ticket_keys_epoch(k);
    size_t i = slot_of(id, (unsigned int)len);
    SSL_SESSION *hit = NULL, *expired = NULL;
    pthread_mutex_lock(&s->lock);
    struct entry *e = &s->slot[i];
    unsigned int hlen = 0;
    const unsigned char *hid = e->sess != NULL ? SSL_SESSION_get_id(e->sess, &hlen) : NULL;
    if (hid != NULL && hlen == (unsigned int)len && memcmp(hid, id, hlen) == 0) {
        if (epoch - e->epoch <= 1) {
            hit = SSL_SESSION_dup(e->sess);
        } else {
            expired = e->sess; /* its key would be gone: a ticket could not resume either */
            e->sess = NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    SSL_SESSION_free(expired);
    /* Revoked, expired or no longer allowed by the ctx resumed at (after an SNI switch, the
     * service's): a full handshake instead, which then fails verification properly. */
    if (hit != NULL && !tlsx_resume_allowed(ssl, hit)) {
        SSL_SESSION_free(hit);
        hit = NULL;
    }
    return hit;
}

int tlsx_sess_store_install(SSL_CTX *ctx, struct tw_err *err)
{
    (void)err;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL |
                                            SSL_SESS_CACHE_NO_AUTO_CLEAR);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET); /* TLS 1.3 then sends stateful tickets */
    SSL_CTX_sess_set_new_cb(ctx, new_cb);
    SSL_CTX_sess_set_get_cb(ctx, get_cb);
    return 0;
}
