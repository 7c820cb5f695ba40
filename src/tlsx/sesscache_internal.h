/* Private to src/tlsx/: what sessions keep of the client's chain (sesschain.c), used by the
 * session store (sesscache.c), the ticket callbacks (tickets.c) and the resumed-session
 * checks (verify.c). */
#ifndef TW_TLSX_SESSCACHE_INTERNAL_H
#define TW_TLSX_SESSCACHE_INTERNAL_H

#include <openssl/ssl.h>

#define TLSX_SESS_MAX_CARRIED 4 /* CAs between a leaf and client-ca kept with a session */

/* At the end of a full handshake, before sess is stored or encoded into a ticket (the
 * new-session and ticket callbacks): keep with sess the verified chain's CAs that are not in
 * the ctx's client-ca (ticket application data), and swap the certificates the client sent
 * for one shared decoded object per CA (the ctx's client-ca copy, or the CA pool's), so
 * sessions do not each keep a copy. Does nothing after a resumed handshake. */
void tlsx_sess_keep_chain(SSL *ssl, SSL_SESSION *sess);

/* The CAs sess carries (leaf side first) as a new stack the caller frees, or *out NULL when
 * it carries none. -1 when the data is malformed (then: do not resume). */
int tlsx_sess_carried_cas(SSL *ssl, const SSL_SESSION *sess, STACK_OF(X509) **out);

#endif
