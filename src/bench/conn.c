/* One connection of a slot: non-blocking connect, SSL_connect, the data phase (request and
 * echo, download, upload), close_notify and waiting for the server's close. Each step runs
 * until it would block, then arms the slot's one event for the direction OpenSSL needs. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench/internal.h"
#include "tlsx/tlsx.h"

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Wait for what (EV_READ / EV_WRITE) on the slot's socket, with the inactivity timeout
 * (none while HELD: the hold timer ends those). */
static void arm(struct slot *s, short what)
{
    const struct bench_opts *o = s->b->o;
    if (s->ev_added)
        event_del(&s->ev);
    event_assign(&s->ev, s->b->base, s->fd, what, on_event, s);
    int64_t ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(&s->ev, s->st == ST_HELD ? NULL : &tv);
    s->ev_added = true;
}

static void release(struct slot *s)
{
    if (s->ev_added)
        event_del(&s->ev);
    s->ev_added = false;
    SSL_free(s->ssl);
    s->ssl = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->st = ST_IDLE;
}

int bench_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct slot *s = SSL_get_app_data(ssl);
    if (s == NULL || !s->b->o->resume || !SSL_SESSION_is_resumable(sess))
        return 0; /* not kept: OpenSSL frees it */
    SSL_SESSION_free(s->sess);
    s->sess = sess;
    s->got_session = true;
    return 1;
}

void bench_slot_end(struct slot *s, bool ok, const char *code, const char *detail)
{
    struct bench *b = s->b;
    struct bench_result *r = b->res;
    bool was_open = s->st != ST_IDLE;
    if (ok && s->ssl != NULL) {
        r->tls_version = SSL_version(s->ssl);
        snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(s->ssl));
    }
    int64_t now = bench_now_us();
    if (s->counted) {
        if (ok) {
            r->ok++;
            r->offered += s->offered;
            if (s->ssl != NULL && SSL_session_reused(s->ssl))
                r->resumed++;
            else
                r->full++;
            r->bytes_up += s->up;
            r->bytes_down += s->down;
            (void)bench_samples_add(&b->lat, (s->t_done ? s->t_done : now) - s->t_start);
            (void)bench_samples_add(&b->hs, s->t_hs - s->t_start);
            b->t_end = now;
        } else {
            bench_fail_note(r, code, detail);
        }
    } else if (s->priming) {
        if (ok)
            r->primed++;
        else
            bench_fail_note(r, code, detail);
    }
    /* OpenSSL 3.0 forgets that close_notify went out when SSL_OP_IGNORE_UNEXPECTED_EOF turns
     * the server's bare EOF into a shutdown, and SSL_free then marks the session unresumable. */
    if (ok && s->ssl != NULL && s->st != ST_HELD)
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    ERR_clear_error();
    release(s);
    if (was_open)
        b->active--;
    bench_after_end(s, !ok);
}

void bench_slot_abort(struct slot *s)
{
    if (s->st != ST_IDLE)
        bench_slot_end(s, false, "aborted", "stopped by the time limit");
}

const char *bench_tls_failure(SSL *ssl, int sslerr, char *detail, size_t cap)
{
    detail[0] = '\0';
    enum tlsx_reason reason = tlsx_handshake_reason(ssl, detail, cap);
    if (sslerr == SSL_ERROR_SYSCALL && reason == TLSX_R_OTHER) {
        snprintf(detail, cap, "the server closed the connection%s%s", errno ? ": " : "",
                 errno ? strerror(errno) : "");
        return "closed";
    }
    return tlsx_reason_code(reason);
}

/* A TLS failure: the reason in tlsx's words ("unknown-ca", "revoked", ...). */
static void tls_fail(struct slot *s, int sslerr)
{
    char detail[160];
    const char *code = bench_tls_failure(s->ssl, sslerr, detail, sizeof(detail));
    bench_slot_end(s, false, code, detail);
}

static void start_tls(struct slot *s)
{
    struct bench *b = s->b;
    struct tw_err err;
    tw_err_clear(&err);
    s->ssl = SSL_new(b->ctx);
    const char *name = b->o->server_name ? b->o->server_name : b->o->host;
    if (s->ssl == NULL || tlsx_client_ssl_setup(s->ssl, name, &err) != 0 ||
        tlsx_ssl_watch_alerts(s->ssl, &err) != 0 || SSL_set_fd(s->ssl, s->fd) != 1) {
        bench_slot_end(s, false, "setup", err.msg[0] ? err.msg : "cannot create a TLS connection");
        return;
    }
    SSL_set_app_data(s->ssl, s);
    s->got_session = false;
    /* A copy per connection: the client marks a TLS 1.3 session it resumed with as used up,
     * while the servers measured here accept a ticket many times until it expires. */
    SSL_SESSION *copy = b->o->resume && s->sess != NULL ? SSL_SESSION_dup(s->sess) : NULL;
    s->offered = copy != NULL && SSL_set_session(s->ssl, copy) == 1;
    SSL_SESSION_free(copy);
    s->st = ST_HANDSHAKE;
    bench_slot_drive(s);
}

void bench_slot_launch(struct slot *s)
{
    struct bench *b = s->b;
    const struct addrinfo *ai = b->ai;
    ERR_clear_error();
    s->up = s->down = 0;
    s->wpending = 0;
    s->t_hs = s->t_done = 0;
    s->drained = 0;
    s->t_start = bench_now_us();
    s->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    s->st = ST_CONNECT;
    b->active++;
    if (s->fd < 0) {
        bench_slot_end(s, false, "socket", strerror(errno));
        return;
    }
    int one = 1;
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        start_tls(s);
    } else if (errno == EINPROGRESS) {
        arm(s, EV_WRITE);
    } else {
        bench_slot_end(s, false, "connect", strerror(errno));
    }
}

static void connected(struct slot *s)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr != 0) {
        bench_slot_end(s, false, "connect", strerror(soerr));
        return;
    }
    start_tls(s);
}

/* After the handshake: what this connection does next. */
static void begin_data(struct slot *s)
{
    const struct bench_opts *o = s->b->o;
    s->t_hs = bench_now_us();
    s->wleft = o->request;
    s->rleft = o->request;
    if (o->mode == BENCH_MODE_DOWNLOAD)
        s->rleft = o->download;
    else if (o->mode == BENCH_MODE_UPLOAD)
        s->wleft = o->upload;
    s->st = ST_DATA;
}

/* One SSL_read or SSL_write result: >0 progress, 0 would block (*want set), -1 ended. */
static int io_result(struct slot *s, int n, short *want)
{
    if (n > 0)
        return 1;
    int e = SSL_get_error(s->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
        *want |= EV_READ;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        *want |= EV_WRITE;
        return 0;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        bench_slot_end(s, false, "short-read", "the server closed before all bytes arrived");
        return -1;
    }
    tls_fail(s, e);
    return -1;
}

/* ST_DATA: write and read in turn (an echo backend answers while the request is still going
 * out, so neither side may wait for the other). */
static int pump(struct slot *s, short *want)
{
    unsigned char *buf = s->b->buf;
    for (;;) {
        bool progress = false;
        *want = 0;
        if (s->wleft > 0) {
            int len = s->wpending ? s->wpending
                                  : (int)(s->wleft < BENCH_IO_BUF ? s->wleft : BENCH_IO_BUF);
            int n = SSL_write(s->ssl, buf, len);
            int r = io_result(s, n, want);
            if (r < 0)
                return -1;
            s->wpending = r == 0 ? len : 0;
            if (r > 0) {
                s->wleft -= (uint64_t)n;
                s->up += (uint64_t)n;
                progress = true;
            }
        }
        if (s->rleft > 0) {
            int len = (int)(s->rleft < BENCH_IO_BUF ? s->rleft : BENCH_IO_BUF);
            int n = SSL_read(s->ssl, buf, len);
            int r = io_result(s, n, want);
            if (r < 0)
                return -1;
            if (r > 0) {
                s->rleft -= (uint64_t)n;
                s->down += (uint64_t)n;
                progress = true;
            }
        }
        if (s->wleft == 0 && s->rleft == 0)
            return 1;
        if (!progress)
            return 0;
    }
}

/* ST_TICKET: read until a session arrives (bench_new_session); data read meanwhile counts
 * towards what the data phase expects. */
static int wait_ticket(struct slot *s, short *want)
{
    while (!s->got_session) {
        int len = (int)(s->rleft > 0 && s->rleft < BENCH_IO_BUF ? s->rleft : BENCH_IO_BUF);
        int n = SSL_read(s->ssl, s->b->buf, len);
        int r = io_result(s, n, want);
        if (r < 0 || (r == 0 && !s->got_session))
            return r;
        if (r == 0)
            break; /* the ticket came in this read */
        uint64_t got = (uint64_t)n;
        s->down += got;
        s->rleft -= got < s->rleft ? got : s->rleft;
    }
    return 1;
}

/* ST_DRAIN: the server's close_notify or EOF ends the connection well; an alert (TLS 1.3
 * servers refuse a client certificate after the client's handshake finished) does not. */
static int drain(struct slot *s, short *want)
{
    for (int rounds = 0; rounds < 64; rounds++) {
        int n = SSL_read(s->ssl, s->b->buf, BENCH_IO_BUF);
        if (n > 0 && (s->drained += (uint64_t)n) >= BENCH_DRAIN_MAX)
            return 1; /* a backend that keeps talking: the server let us through */
        if (n > 0)
            continue;
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            *want = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
            return 0;
        }
        if (tlsx_ssl_alert_received(s->ssl) >= 0) {
            tls_fail(s, e);
            return -1;
        }
        return 1; /* close_notify, EOF or a reset after our close_notify */
    }
    *want = EV_READ; /* give other slots a turn */
    return 0;
}

static void held_read(struct slot *s)
{
    int n = SSL_read(s->ssl, s->b->buf, BENCH_IO_BUF);
    int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, n);
    if (n > 0 || e == SSL_ERROR_WANT_READ) {
        arm(s, EV_READ);
        return;
    }
    s->b->res->held--;
    bench_slot_end(s, false, "dropped", "the server closed a held connection");
}

void bench_slot_drive(struct slot *s)
{
    const struct bench_opts *o = s->b->o;
    short want = 0;
    int r;
    switch (s->st) {
    case ST_CONNECT:
        connected(s);
        return;
    case ST_HANDSHAKE:
        r = SSL_connect(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                arm(s, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
                return;
            }
            tls_fail(s, e);
            return;
        }
        begin_data(s);
        /* TLS 1.3 tickets come after the handshake, and OpenSSL drops them once we sent
         * close_notify: after a full handshake, wait for one before going on. (Servers need
         * not send a new one on resumption; the slot keeps using its ticket then.) */
        if (o->resume && !SSL_session_reused(s->ssl) && SSL_version(s->ssl) == TLS1_3_VERSION)
            s->st = ST_TICKET;
        /* fallthrough */
    case ST_TICKET:
        if (s->st == ST_TICKET) {
            if ((r = wait_ticket(s, &want)) <= 0) {
                if (r == 0)
                    arm(s, want);
                return;
            }
            s->st = ST_DATA;
        }
        /* fallthrough */
    case ST_DATA:
        if ((r = pump(s, &want)) <= 0) {
            if (r == 0)
                arm(s, want);
            return;
        }
        s->t_done = bench_now_us();
        if (o->mode == BENCH_MODE_HOLD && !s->priming) {
            s->st = ST_HELD;
            s->b->res->held++;
            arm(s, EV_READ);
            bench_after_end(s, false); /* let the next connection open */
            return;
        }
        s->st = ST_SHUTDOWN;
        /* fallthrough */
    case ST_SHUTDOWN:
        r = SSL_shutdown(s->ssl);
        if (r < 0) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                arm(s, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
                return;
            }
            tls_fail(s, e);
            return;
        }
        if (o->mode == BENCH_MODE_DOWNLOAD) { /* the source never stops: close now */
            bench_slot_end(s, true, NULL, NULL);
            return;
        }
        s->st = ST_DRAIN;
        /* fallthrough */
    case ST_DRAIN:
        if ((r = drain(s, &want)) == 0)
            arm(s, want);
        else if (r > 0)
            bench_slot_end(s, true, NULL, NULL);
        return;
    case ST_HELD:
        held_read(s);
        return;
    case ST_IDLE:
        return;
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct slot *s = arg;
    s->ev_added = false;
    if (what & EV_TIMEOUT) {
        bench_slot_end(s, false, "timeout",
                       s->st == ST_TICKET ? "no TLS 1.3 session ticket from the server (--resume)"
                                          : "no progress within the timeout");
        return;
    }
    bench_slot_drive(s);
}
