/* A small pool of decoded CA certificates that clients sent in verified chains, kept with the
 * ticket keys (so across reloads and for every ctx sharing them). Sessions and connections
 * share one decoded object per CA through it, whatever the trust layout: when client-ca holds
 * only the root, the intermediate every client presents is in no ctx's client-ca list, and
 * without the pool each session would keep a decoded copy of its own (~2 kB), and every
 * ticket resumption would decode it again.
 *
 * Only certificates from chains OpenSSL verified, or carried by a session this process
 * issued (tickets are authenticated by their keys), are ever added. Being in the pool grants
 * no trust: it only turns DER bytes into an object; resumption still links each certificate
 * to a CA of the ctx it resumes at (verify.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tlsx/capool_internal.h"

#define POOL_SIZE 64 /* distinct sent CAs remembered; a deployment has a handful */

struct member {
    unsigned char id[TLSX_CAPOOL_ID_LEN]; /* SHA-256 of the DER */
    X509 *cert;
    uint64_t used; /* clock of the last hit: the least recently used is replaced */
};

struct tlsx_capool {
    pthread_mutex_t lock; /* guards everything below but sha256 */
    EVP_MD *sha256;
    uint64_t clock;
    struct member m[POOL_SIZE];
};

struct tlsx_capool *tlsx_capool_new(void)
{
    struct tlsx_capool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (p->sha256 == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

void tlsx_capool_free(struct tlsx_capool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < POOL_SIZE; i++)
        X509_free(p->m[i].cert);
    EVP_MD_free(p->sha256);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int tlsx_capool_id(struct tlsx_capool *p, const unsigned char *der, size_t len,
                   unsigned char id[TLSX_CAPOOL_ID_LEN])
{
    return EVP_Digest(der, len, id, NULL, p->sha256, NULL) == 1 ? 0 : -1;
}

X509 *tlsx_capool_get(struct tlsx_capool *p, const unsigned char id[TLSX_CAPOOL_ID_LEN])
{
    X509 *hit = NULL;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < POOL_SIZE && hit == NULL; i++) {
        struct member *m = &p->m[i];
        if (m->cert != NULL && memcmp(m->id, id, TLSX_CAPOOL_ID_LEN) == 0 &&
            X509_up_ref(m->cert) == 1) {
            hit = m->cert;
            m->used = ++p->clock;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return hit;
}

X509 *tlsx_capool_put(struct tlsx_capool *p, const unsigned char id[TLSX_CAPOOL_ID_LEN],
                      X509 *cert)
{
    X509 *out = NULL, *old = NULL;
    pthread_mutex_lock(&p->lock);
    struct member *victim = &p->m[0];
    for (size_t i = 0; i < POOL_SIZE && out == NULL; i++) {
        struct member *m = &p->m[i];
        if (m->cert != NULL && memcmp(m->id, id, TLSX_CAPOOL_ID_LEN) == 0)
            out = m->cert; /* another connection added it first: share that one */
        else if (m->cert == NULL || (victim->cert != NULL && m->used < victim->used))
            victim = m;
    }
    if (out == NULL && X509_up_ref(cert) == 1) { /* the pool's own reference */
        old = victim->cert;
        memcpy(victim->id, id, TLSX_CAPOOL_ID_LEN);
        victim->cert = cert;
        victim->used = ++p->clock;
        out = cert;
    }
    if (out != NULL && X509_up_ref(out) != 1)
        out = NULL;
    pthread_mutex_unlock(&p->lock);
    X509_free(old); /* sessions holding it keep their own reference */
    return out;
}
