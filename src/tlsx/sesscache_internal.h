/* Private to src/tlsx/: what the session store (sesscache.c) offers the ticket code
 * (tickets.c) besides the declarations in internal.h. */
#ifndef TW_TLSX_SESSCACHE_INTERNAL_H
#define TW_TLSX_SESSCACHE_INTERNAL_H

#include <openssl/ssl.h>

/* Memory per connection (issue 6): swap every certificate of the verified peer chain of ssl's
 * session that is also a CA of ssl's ctx (same encoding) for the ctx's own object,
 * so sessions share one decoded intermediate instead of each keeping a copy. Call only after
 * the chain was verified and before the session is shared (the new-session and ticket
 * callbacks). */
void tlsx_sess_share_cas(SSL *ssl);

#endif
