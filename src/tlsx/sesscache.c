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

/* Set-associative: a session id hashes to a set of WAYS entries, and a new session replaces
 * the least recently used entry of its set only when all WAYS are taken. So live sessions are
 * not lost to a hash collision while the store has room (a direct-mapped table dropped one
 * session whenever two of a few hundred ids met in one slot). Each entry holds a decoded
 * client certificate (~4 kB; the CAs are shared, tlsx_sess_keep_chain), so the store stays
 * under ~20 MB. */
#define WAYS 8u
#define SETS 512u

struct entry {
    SSL_SESSION *sess;
    uint64_t epoch;
    uint64_t used; /* store clock at the last store or hit */
};

struct tlsx_sess_store {
    pthread_mutex_t lock; /* guards clock and set[] */
    uint64_t clock;
    struct entry set[SETS][WAYS];
};

static struct entry *set_of(struct tlsx_sess_store *s, const unsigned char *id, unsigned int len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (unsigned int i = 0; i < len; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return s->set[h % SETS];
}

/* The entry of set holding the session id, or NULL. */
static struct entry *way_of(struct entry *set, const unsigned char *id, unsigned int len)
{
    for (unsigned int w = 0; w < WAYS; w++) {
        unsigned int hlen = 0;
        const unsigned char *hid =
            set[w].sess != NULL ? SSL_SESSION_get_id(set[w].sess, &hlen) : NULL;
        if (hid != NULL && hlen == len && memcmp(hid, id, len) == 0)
            return &set[w];
    }
    return NULL;
}

/* Where a new session goes: its own entry, a free one, else the least recently used. */
static struct entry *victim_of(struct entry *set, const unsigned char *id, unsigned int len)
{
    struct entry *v = way_of(set, id, len);
    for (unsigned int w = 0; v == NULL && w < WAYS; w++)
        if (set[w].sess == NULL)
            v = &set[w];
    if (v != NULL)
        return v;
    v = &set[0];
    for (unsigned int w = 1; w < WAYS; w++)
        if (set[w].used < v->used)
            v = &set[w];
    return v;
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
    for (size_t i = 0; i < SETS; i++)
        for (size_t w = 0; w < WAYS; w++)
            SSL_SESSION_free(s->set[i][w].sess);
    pthread_mutex_destroy(&s->lock);
    free(s);
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
    tlsx_sess_keep_chain(ssl, sess); /* before the copy, so that both share the CAs */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL)
        return 0;
    tlsx_ticket_keys_tick(k, (int64_t)time(NULL));
    uint64_t epoch = tlsx_ticket_keys_epoch(k);
    pthread_mutex_lock(&s->lock);
    struct entry *e = victim_of(set_of(s, id, len), id, len);
    SSL_SESSION *old = e->sess;
    *e = (struct entry){copy, epoch, ++s->clock};
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
    SSL_SESSION *hit = NULL, *expired = NULL;
    pthread_mutex_lock(&s->lock);
    struct entry *e = way_of(set_of(s, id, (unsigned int)len), id, (unsigned int)len);
    if (e != NULL) {
        if (epoch - e->epoch <= 1) {
            hit = SSL_SESSION_dup(e->sess);
            e->used = ++s->clock;
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
