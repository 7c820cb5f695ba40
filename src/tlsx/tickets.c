/* Session ticket keys: random keys rotated in memory, or keys from a shared file, handed to
 * OpenSSL through the EVP ticket key callback. A resumed session's peer is re-checked by the
 * decrypt hook (tlsx_resume_allowed) before OpenSSL accepts it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tlsx/capool_internal.h"
#include "tlsx/internal.h"
#include "tlsx/sesscache_internal.h"
#include "util/fs.h"

#define NAME_LEN 16
#define HMAC_LEN 32
#define AES_LEN 32
#define MAX_FILE_KEYS 64

struct key {
    unsigned char name[NAME_LEN];
    unsigned char hmac[HMAC_LEN];
    unsigned char aes[AES_LEN];
};

_Static_assert(sizeof(struct key) == TLSX_TICKET_KEY_LEN, "ticket key file layout");

struct tlsx_ticket_keys {
    atomic_int refs;
    pthread_mutex_t lock; /* guards keys[], n and rotated_at */
    bool from_file;
    int64_t period;
    int64_t rotated_at;
    size_t n;                      /* keys[0] encrypts; all decrypt */
    struct tlsx_sess_store *store; /* in-memory keys: stateful resumption instead */
    struct tlsx_capool *pool;      /* CAs clients sent, shared by sessions */
    uint64_t epoch;                /* rotations so far; bounds the store's sessions too */
    struct key keys[MAX_FILE_KEYS];
};

static int random_key(struct key *k)
{
    return RAND_bytes((unsigned char *)k, (int)sizeof(*k)) == 1 ? 0 : -1;
}

static struct tlsx_ticket_keys *alloc_keys(struct tw_err *err)
{
    struct tlsx_ticket_keys *k = calloc(1, sizeof(*k));
    TW_ENSURE_PTR(k != NULL, err, TW_ERR_INTERNAL, "out of memory");
    atomic_init(&k->refs, 1);
    pthread_mutex_init(&k->lock, NULL);
    k->pool = tlsx_capool_new();
    if (k->pool == NULL) {
        tlsx_ticket_keys_free(k);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return k;
}

struct tlsx_ticket_keys *tlsx_ticket_keys_new(int64_t period, struct tw_err *err)
{
    TW_ENSURE_PTR(period >= 0, err, TW_ERR_CONFIG, "ticket key period must not be negative");
    struct tlsx_ticket_keys *k = alloc_keys(err);
    if (k == NULL)
        return NULL;
    k->period = period > 0 ? period : TLSX_TICKET_PERIOD_DEFAULT;
    k->rotated_at = (int64_t)time(NULL);
    k->n = 1;
    k->store = tlsx_sess_store_new();
    if (k->store == NULL) {
        tlsx_ticket_keys_free(k);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    if (random_key(&k->keys[0]) != 0) {
        tlsx_ticket_keys_free(k);
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot generate a ticket key");
        return NULL;
    }
    return k;
}

struct tlsx_ticket_keys *tlsx_ticket_keys_new_file(const char *path, struct tw_err *err)
{
    if (fs_check_key_perms(path, err) != 0)
        return NULL;
    char *data = NULL;
    size_t len = 0;
    if (fs_read_file(path, (size_t)MAX_FILE_KEYS * TLSX_TICKET_KEY_LEN, &data, &len, err) != 0)
        return NULL;
    struct tlsx_ticket_keys *k = NULL;
    if (len == 0 || len % TLSX_TICKET_KEY_LEN != 0) {
        tw_err_set(err, TW_ERR_CONFIG,
                   "%s: ticket key file must hold a multiple of %d random bytes, has %zu", path,
                   TLSX_TICKET_KEY_LEN, len);
    } else if ((k = alloc_keys(err)) != NULL) {
        k->from_file = true;
        k->n = len / TLSX_TICKET_KEY_LEN;
        memcpy(k->keys, data, len); /* struct key is exactly 80 bytes: name, HMAC, AES */
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return k;
}

int tlsx_ticket_key_file_write(const char *path, struct tw_err *err)
{
    struct key k;
    TW_ENSURE(random_key(&k) == 0, err, TW_ERR_INTERNAL, "cannot generate a ticket key");
    int rc = fs_write_atomic(path, &k, sizeof(k), 0600, err);
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

void tlsx_ticket_keys_tick(struct tlsx_ticket_keys *k, int64_t now)
{
    if (k == NULL || k->from_file)
        return;
    pthread_mutex_lock(&k->lock);
    if (now - k->rotated_at >= k->period) {
        /* The previous key keeps decrypting for one more period, then is dropped. */
        struct key fresh;
        if (random_key(&fresh) == 0) {
            k->keys[1] = k->keys[0];
            k->keys[0] = fresh;
            k->n = 2;
            k->rotated_at = now;
            k->epoch++;
        }
        OPENSSL_cleanse(&fresh, sizeof(fresh));
    }
    pthread_mutex_unlock(&k->lock);
}

int64_t tlsx_ticket_keys_period(const struct tlsx_ticket_keys *k)
{
    return k->from_file ? TLSX_TICKET_PERIOD_DEFAULT : k->period;
}

uint64_t tlsx_ticket_keys_epoch(struct tlsx_ticket_keys *k)
{
    pthread_mutex_lock(&k->lock);
    uint64_t e = k->epoch;
    pthread_mutex_unlock(&k->lock);
    return e;
}

struct tlsx_sess_store *tlsx_ticket_keys_store(const struct tlsx_ticket_keys *k)
{
    return k != NULL ? k->store : NULL;
}

struct tlsx_capool *tlsx_ticket_keys_pool(const struct tlsx_ticket_keys *k)
{
    return k != NULL ? k->pool : NULL;
}

int tlsx_ticket_keys_up_ref(struct tlsx_ticket_keys *k)
{
    atomic_fetch_add(&k->refs, 1);
    return 1;
}

void tlsx_ticket_keys_free(struct tlsx_ticket_keys *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) > 1)
        return;
    tlsx_sess_store_free(k->store);
    tlsx_capool_free(k->pool);
    pthread_mutex_destroy(&k->lock);
    OPENSSL_cleanse(k->keys, sizeof(k->keys));
    free(k);
}

/* Copy out the key to use: index 0 to encrypt, or the one named by name to decrypt. Returns
 * the index found, -1 when unknown. */
static int pick(struct tlsx_ticket_keys *k, const unsigned char *name, struct key *out)
{
    int found = -1;
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < k->n && found < 0; i++)
        if (name == NULL || memcmp(k->keys[i].name, name, NAME_LEN) == 0)
            found = (int)i;
    if (found >= 0)
        *out = k->keys[found];
    pthread_mutex_unlock(&k->lock);
    return found;
}

static int set_hmac(EVP_MAC_CTX *hctx, const struct key *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, HMAC_LEN),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's contract: enc=1 fill name+iv and init; return 1 (0/-1: no ticket). enc=0: 0 unknown
 * key (full handshake), 1 ok, 2 ok but issue a fresh ticket (older key). */
static int key_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                  EVP_MAC_CTX *hctx, int enc)
{
    struct tlsx_server_state *st = tlsx_server_state_get(SSL_get_SSL_CTX(ssl));
    if (st == NULL || st->tickets == NULL)
        return enc ? -1 : 0;
    tlsx_ticket_keys_tick(st->tickets, (int64_t)time(NULL));
    struct key k;
    int rc;
    if (enc) {
        rc = -1;
        if (pick(st->tickets, NULL, &k) == 0 &&
            RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) == 1 &&
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 &&
            set_hmac(hctx, &k) == 1) {
            memcpy(name, k.name, NAME_LEN);
            rc = 1;
        }
    } else {
        int idx = pick(st->tickets, name, &k);
        rc = 0;
        if (idx >= 0 && set_hmac(hctx, &k) == 1 &&
            EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1)
            rc = idx == 0 ? 1 : 2;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* Runs before a ticket is encrypted, after the client's chain was verified. */
static int gen_cb(SSL *ssl, void *arg)
{
    (void)arg;
    tlsx_sess_keep_chain(ssl, SSL_get_session(ssl));
    return 1;
}

/* Runs after a ticket decrypted, before OpenSSL resumes the session: a revoked, expired or
 * no-longer-allowed client falls back to a full handshake, which then fails verification
 * with the proper alert. */
static SSL_TICKET_RETURN dec_cb(SSL *ssl, SSL_SESSION *sess, const unsigned char *keyname,
                                size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    (void)keyname, (void)keyname_len, (void)arg;
    switch (status) {
    case SSL_TICKET_SUCCESS:
    case SSL_TICKET_SUCCESS_RENEW:
        if (!tlsx_resume_allowed(ssl, sess))
            return SSL_TICKET_RETURN_IGNORE_RENEW;
        return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
    case SSL_TICKET_EMPTY:
    case SSL_TICKET_NO_DECRYPT:
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    default:
        return SSL_TICKET_RETURN_IGNORE;
    }
}

int tlsx_tickets_install(SSL_CTX *ctx, struct tw_err *err)
{
    TW_GUARD_OSSL((int)SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, key_cb), err, TW_ERR_INTERNAL,
                  "cannot install the ticket key callback");
    TW_GUARD_OSSL(SSL_CTX_set_session_ticket_cb(ctx, gen_cb, dec_cb, NULL), err, TW_ERR_INTERNAL,
                  "cannot install the session ticket callback");
    return 0;
}
