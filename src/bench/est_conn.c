/* twoway bench --est: one enrollment on one slot. A new TCP connection and a full TLS
 * handshake (no session is offered: a first enrollment has none), the prepared request, the
 * answer read until its Content-Length (or the server's close), then the check. Each step runs
 * until it would block and arms the slot's one event for the direction OpenSSL needs. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench/est_internal.h"
#include "tlsx/tlsx.h"

#define RESP_CHUNK 4096 /* the answer buffer grows by this much */

static void on_event(evutil_socket_t fd, short what, void *arg);

static void arm(struct est_slot *s, short what)
{
    int64_t ms = s->b->o->timeout_ms > 0 ? s->b->o->timeout_ms : 10000;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (s->ev_added)
        event_del(&s->ev);
    event_assign(&s->ev, s->b->base, s->fd, what, on_event, s);
    event_add(&s->ev, &tv);
    s->ev_added = true;
}

/* The enrollment of s ended: count it, close the connection, let the loop go on. */
static void end(struct est_slot *s, bool ok, const char *code, const char *detail)
{
    struct est_bench *b = s->b;
    struct bench_result *r = &b->res->r;
    int64_t now = bench_now_us();
    if (ok) {
        r->ok++;
        r->tls_version = SSL_version(s->ssl);
        snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(s->ssl));
        (void)bench_samples_add(&b->lat, now - s->t_sched);
        (void)bench_samples_add(&b->hs, s->t_hs - s->t_start);
        b->t_end = now;
    } else {
        bench_fail_note(r, code, detail);
    }
    if (s->ev_added)
        event_del(&s->ev);
    s->ev_added = false;
    if (s->ssl != NULL && ok)
        (void)SSL_shutdown(s->ssl); /* one close_notify, not waited for: the answer is in */
    SSL_free(s->ssl);
    s->ssl = NULL;
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->st = EST_IDLE;
    ERR_clear_error();
    b->active--;
    b->done++;
    est_after_end(s, !ok);
}

void est_slot_abort(struct est_slot *s)
{
    if (s->st != EST_IDLE)
        end(s, false, "aborted", "stopped by the time limit");
}

static void tls_fail(struct est_slot *s, int sslerr)
{
    char detail[160];
    const char *code = bench_tls_failure(s->ssl, sslerr, detail, sizeof(detail));
    end(s, false, code, detail);
}

static void drive(struct est_slot *s);

static void start_tls(struct est_slot *s)
{
    struct est_bench *b = s->b;
    struct tw_err err;
    tw_err_clear(&err);
    s->ssl = SSL_new(b->ctx);
    const char *name = b->o->server_name ? b->o->server_name : b->o->host;
    if (s->ssl == NULL || tlsx_client_ssl_setup(s->ssl, name, &err) != 0 ||
        tlsx_ssl_watch_alerts(s->ssl, &err) != 0 || SSL_set_fd(s->ssl, s->fd) != 1) {
        end(s, false, "setup", err.msg[0] ? err.msg : "cannot create a TLS connection");
        return;
    }
    s->st = EST_HANDSHAKE;
    drive(s);
}

void est_slot_start(struct est_slot *s, size_t idx, int64_t t_sched)
{
    struct est_bench *b = s->b;
    const struct addrinfo *ai = b->ai;
    ERR_clear_error();
    if (s->ev_added) /* a pause after a failure, cut short by an open-loop arrival */
        event_del(&s->ev);
    s->ev_added = false;
    s->idx = idx;
    s->t_start = bench_now_us();
    s->t_sched = t_sched > 0 ? t_sched : s->t_start;
    s->t_hs = 0;
    s->wdone = s->rlen = 0;
    s->st = EST_CONNECT;
    b->active++;
    b->res->r.started++;
    s->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (s->fd < 0) {
        end(s, false, "socket", strerror(errno));
        return;
    }
    int one = 1;
    (void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) == 0)
        start_tls(s);
    else if (errno == EINPROGRESS)
        arm(s, EV_WRITE);
    else
        end(s, false, "connect", strerror(errno));
}

static void connected(struct est_slot *s)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr != 0)
        end(s, false, "connect", strerror(soerr));
    else
        start_tls(s);
}

/* SSL_* result n: 1 progress, 0 would block (armed), -1 the connection ended (counted). */
static int io_step(struct est_slot *s, int n)
{
    if (n > 0)
        return 1;
    int e = SSL_get_error(s->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        arm(s, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
        return 0;
    }
    tls_fail(s, e);
    return -1;
}

static void check_answer(struct est_slot *s)
{
    char code[32], detail[200], serial[BENCH_EST_SERIAL_MAX];
    struct est_bench *b = s->b;
    struct est_item *it = &b->items[s->idx];
    /* The serial (and so the full decode) only when --issued asks for it: see bench.h. */
    int rc = bench_est_answer_check(s->resp, s->rlen, it->spki, it->spki_len,
                                    b->serials != NULL ? serial : NULL, code, detail,
                                    sizeof(detail));
    b->answered += rc == 0 || strncmp(code, "http-", 5) == 0;
    if (rc != 0) {
        end(s, false, code, detail);
        return;
    }
    if (b->serials != NULL) /* ok counts at most one per enrollment: it fits */
        memcpy(b->serials[b->res->r.ok], serial, sizeof(serial));
    end(s, true, NULL, NULL);
}

/* EST_READ: until the answer is complete by its Content-Length, or the server closes. */
static void read_answer(struct est_slot *s)
{
    for (;;) {
        if (s->rlen == s->rcap) {
            if (s->rcap >= BENCH_EST_RESPONSE_MAX) {
                end(s, false, "bad-answer", "the answer is larger than 64 KiB");
                return;
            }
            char *nr = realloc(s->resp, s->rcap + RESP_CHUNK);
            if (nr == NULL) {
                end(s, false, "memory", "out of memory for the answer");
                return;
            }
            s->resp = nr;
            s->rcap += RESP_CHUNK;
        }
        int n = SSL_read(s->ssl, s->resp + s->rlen, (int)(s->rcap - s->rlen));
        if (n <= 0) {
            int e = SSL_get_error(s->ssl, n);
            if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && s->rlen > 0)) {
                check_answer(s); /* the server closed: what came is the answer */
                return;
            }
            (void)io_step(s, n);
            return;
        }
        s->rlen += (size_t)n;
        size_t total = 0;
        int r = bench_est_answer_length(s->resp, s->rlen, &total);
        if (r < 0) {
            end(s, false, "bad-answer", "malformed or oversized HTTP headers");
            return;
        }
        if (r > 0 && s->rlen >= total) {
            check_answer(s);
            return;
        }
    }
}

static void drive(struct est_slot *s)
{
    struct est_item *it = &s->b->items[s->idx];
    switch (s->st) {
    case EST_CONNECT:
        connected(s);
        return;
    case EST_HANDSHAKE:
        if (io_step(s, SSL_connect(s->ssl)) <= 0)
            return;
        s->t_hs = bench_now_us();
        s->st = EST_WRITE;
        /* fallthrough */
    case EST_WRITE:
        while (s->wdone < it->req_len) {
            int n = SSL_write(s->ssl, it->req + s->wdone, (int)(it->req_len - s->wdone));
            if (io_step(s, n) <= 0)
                return;
            s->wdone += (size_t)n;
        }
        s->st = EST_READ;
        /* fallthrough */
    case EST_READ:
        read_answer(s);
        return;
    case EST_IDLE:
        return;
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct est_slot *s = arg;
    s->ev_added = false;
    if (what & EV_TIMEOUT)
        end(s, false, "timeout", "no progress within the timeout");
    else
        drive(s);
}
