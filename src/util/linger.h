/* Lingering close: end a TCP connection so that what was written last (a TLS alert, a canned
 * HTTP answer) reaches the peer even while the peer is still writing.
 *
 * A plain close() of a socket with unread bytes in its receive queue makes the kernel answer
 * with a RST instead of a FIN (RFC 1122 §4.2.2.13), and a RST makes the peer's stack throw
 * away what it had received but not yet read: a client that sent its Finished and its first
 * request before our fatal alert arrived reports "connection reset" instead of the alert.
 * RFC 9112 §9.6 describes the remedy HTTP servers use: close the sending half first, keep
 * reading (and discarding) until the peer closes, and only then close, within a bound.
 *
 * Used by the gateway and the tunnel (every refused handshake) and by `ca serve` (a handshake
 * ended by a fatal alert). One event and one small struct per lingering socket. */
#ifndef TW_UTIL_LINGER_H
#define TW_UTIL_LINGER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/* The bound on one lingering close: a peer cannot hold the socket longer or make us read
 * more, whatever it sends. */
#define TW_LINGER_MS 1000
#define TW_LINGER_BYTES (64u * 1024)

struct tw_linger;
typedef void (*tw_linger_done_fn)(void *arg);

/* The lingering sockets of one event loop, so they can be counted and ended together.
 * Zero-initialise; ms/bytes 0 mean TW_LINGER_MS/TW_LINGER_BYTES, max 0 means no limit on
 * how many linger at once (the caller bounds them otherwise). Loop thread only. */
struct tw_linger_set {
    struct tw_linger *head;
    size_t count; /* lingering now */
    size_t max;
    int64_t ms;
    size_t bytes;
};

/* Start the lingering close of fd on base: shutdown(SHUT_WR) at once (our FIN follows what
 * was written), then read and discard what the peer sends until its EOF, an error, the
 * set's byte bound or its time bound, whichever comes first; then close fd and call
 * done(arg) (done may be NULL). Returns the linger, which owns fd from then on; NULL when
 * lingering cannot start (the set is full, the peer already reset the connection, out of
 * memory): fd is then untouched and the caller closes it. */
struct tw_linger *tw_linger_start(struct tw_linger_set *set, struct event_base *base, int fd,
                                  tw_linger_done_fn done, void *arg);

/* End one linger now: close its socket without waiting and free it; done is not called.
 * NULL is a no-op. */
void tw_linger_abort(struct tw_linger *l);

/* End every linger of set now (server shutdown); done is not called. */
void tw_linger_abort_all(struct tw_linger_set *set);

#endif
