/* Private to src/tlsx/: the pool of decoded CA certificates clients sent (capool.c), shared
 * by the session store, tickets and the resumed-session checks. */
#ifndef TW_TLSX_CAPOOL_INTERNAL_H
#define TW_TLSX_CAPOOL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#define TLSX_CAPOOL_ID_LEN 32 /* SHA-256 */

/* A bounded, thread-safe set of certificates keyed by the SHA-256 of their DER; the least
 * recently used one is replaced when full. */
struct tlsx_capool;

struct tlsx_capool *tlsx_capool_new(void);
void tlsx_capool_free(struct tlsx_capool *p);

/* The id of a DER certificate. -1 if SHA-256 fails. */
int tlsx_capool_id(struct tlsx_capool *p, const unsigned char *der, size_t len,
                   unsigned char id[TLSX_CAPOOL_ID_LEN]);

/* A new reference to the pool's certificate with id, or NULL. */
X509 *tlsx_capool_get(struct tlsx_capool *p, const unsigned char id[TLSX_CAPOOL_ID_LEN]);

/* Offer cert (its DER hashes to id; the caller keeps its reference): returns a new reference
 * to the pool's object for id, cert itself if it was not there yet. NULL on failure. */
X509 *tlsx_capool_put(struct tlsx_capool *p, const unsigned char id[TLSX_CAPOOL_ID_LEN],
                      X509 *cert);

#endif
