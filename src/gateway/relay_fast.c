/* The fast TCP relay (issue 6, docs/performance.md "Bulk data", lever 3): a `mode = tcp`
 * service with a TLS client and a plaintext backend (host:port or unix:) relays with plain
 * events on the two sockets and calls SSL_read/SSL_write itself.
 *
 * Why not bufferevents here: libevent 2.1 reads at most 4 KiB per evbuffer_read, its OpenSSL
 * bufferevent does one SSL_write (one 4 KiB record) per evbuffer chain and never writes from
 * the callback that queued the data (EPOLLOUT on and off per chunk). Here the backend is read
 * FAST_CHUNK bytes at a time and SSL_write sends full 16 KiB records at once from the same
 * callback; EV_WRITE is only watched while a side does not take what it is given.
 *
 * Backpressure: at most one chunk per direction is held. While the client does not take a
 * chunk (SSL_write: WANT_WRITE) the backend is not read; while the backend does not take one
 * (write: EAGAIN) the client is not read. Buffers exist only while data is in flight: an idle
 * connection holds the four events and nothing else. TLS backends, `twoway tunnel`'s plaintext
 * listener and HTTP mode stay on the bufferevent relay (relay.c).
 *
 * Handover: the handshake stays on bufferevent_openssl (created without BEV_OPT_CLOSE_ON_FREE,
 * so the connection owns the SSL and the socket): it is a few packets, and conn.c's handshake
 * error reporting and timeouts stay as they are. Once the backend is connected, whatever the
 * bufferevent already decrypted (client bytes sent with or right after Finished) goes to the
 * backend first, after the PROXY v2 header; then the bufferevent is freed (its finalizer runs
 * later but touches neither the SSL nor the socket), the SSL keeps its socket BIO for reading
 * and writes through relay_bio.c's BIO, which sends a chunk's records in one send. Bytes
 * OpenSSL buffered but not yet returned are not reported by epoll, so the first client read is
 * triggered by hand.
 *
 * Memory: a bulk stream (a full chunk at once) keeps the TLS record buffers and reads ahead
 * (one recv for several records); a quiet second gives them back (SSL_free_buffers) and
 * SSL_MODE_RELEASE_BUFFERS applies again, so idle connections hold none. */
#include "gateway/internal.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "gateway/proxy_v2.h"
#include "util/buf.h"
#include "util/log.h"

#define FAST_CHUNK (64u * 1024) /* per read: four full TLS records */
#define FAST_MIN_CHUNK (16u * 1024)
#define FAST_ROUNDS 4 /* chunks per wakeup and direction before other connections get a turn */
/* A streaming connection keeps its TLS record buffers; after this long without a byte read
 * they are released again (SSL_MODE_RELEASE_BUFFERS for idle connections). */
#define FAST_QUIET_MS 1000
#define FAST_READ_BUF (FAST_CHUNK + 4 * (SSL3_RT_HEADER_LENGTH + 256))

struct gw_fbuf {
    size_t off, len, cap;
    unsigned char data[];
};

struct gw_fast {
    int bfd; /* the backend socket */
    size_t chunk;
    struct event cl_rd, cl_wr, be_rd, be_wr;
    bool cl_wr_on, be_wr_on;
    bool connected;
    bool flush_client;     /* FLUSH: the client's buffer is written out (else the backend's) */
    bool read_wants_write; /* SSL_read needs the client writable (a TLS 1.3 KeyUpdate answer) */
    bool streaming;        /* record buffers kept: SSL_MODE_RELEASE_BUFFERS is off */
    struct gw_fbuf *up;    /* client -> backend, not yet written */
    struct gw_fbuf *down;  /* backend -> client, not yet sent (taken by SSL_write or not) */
    BIO *out;              /* the SSL's write BIO once relaying (relay_bio.c; the SSL owns it) */
};

static struct gw_fbuf *fbuf_new(size_t cap)
{
    struct gw_fbuf *b = malloc(sizeof(*b) + cap);
    if (b != NULL) {
        b->off = b->len = 0;
        b->cap = cap;
    }
    return b;
}

bool gw_fast_eligible(const struct gw_conn *c)
{
    return c->ssl != NULL && c->svc->backend_ctx == NULL && c->svc->cfg->mode == GW_MODE_TCP;
}

static void set_write(struct event *ev, bool *on, bool want)
{
    if (*on == want)
        return;
    *on = want;
    if (want)
        event_add(ev, NULL);
    else
        event_del(ev);
}

static void pause_read(struct gw_conn *c, struct event *ev, bool *paused)
{
    if (!*paused) {
        *paused = true;
        event_del(ev);
    }
    (void)c;
}

static void resume_read(struct gw_conn *c, struct event *ev, bool *paused)
{
    if (*paused) {
        *paused = false;
        event_add(ev, NULL);
    }
    (void)c;
}

/* SSL_free_buffers keeps the buffers (fails) while OpenSSL holds unread or unsent bytes.
 * Before 3.0.14 it could free a partly read record (CVE-2024-4741): not called there, the
 * buffers then go with the next record (SSL_MODE_RELEASE_BUFFERS). */
static bool free_buffers(SSL *ssl)
{
    return OpenSSL_version_num() >= 0x300000e0L && !SSL_has_pending(ssl) &&
           SSL_free_buffers(ssl) == 1;
}

/* Bytes moved. A full chunk at once means a bulk stream: keep the TLS record buffers until
 * the connection is quiet again instead of freeing and allocating them per record. Small
 * exchanges keep SSL_MODE_RELEASE_BUFFERS (held for a second by every connection, the
 * buffers would raise the resident memory of many mostly idle connections). */
static void moved(struct gw_conn *c, bool bulk)
{
    struct gw_fast *f = c->fast;
    c->last_io_ms = gw_now_ms();
    if (f->streaming || !bulk)
        return;
    f->streaming = true;
    SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    /* One recv for several records instead of two (header, body) per record. Bytes OpenSSL
     * read ahead are not reported by epoll: pump_up reads until WANT_READ or re-arms itself,
     * and resumes by hand after the backend drained (SSL_has_pending). The read buffer gets
     * room for a chunk of records: the record buffers OpenSSL holds now (sized for one
     * record) go, when nothing is in them, so that the next read allocates the larger one. */
    SSL_set_read_ahead(c->ssl, 1);
    SSL_set_default_read_buffer_len(c->ssl, FAST_READ_BUF);
    (void)free_buffers(c->ssl);
    gw_conn_arm_timer(c);
}

int64_t gw_fast_quiet_at(const struct gw_conn *c)
{
    if (c->fast == NULL || !c->fast->streaming)
        return INT64_MAX;
    return c->last_io_ms + FAST_QUIET_MS;
}

void gw_fast_tick(struct gw_conn *c, int64_t now)
{
    struct gw_fast *f = c->fast;
    if (f == NULL || !f->streaming || now < c->last_io_ms + FAST_QUIET_MS)
        return;
    if (f->up != NULL || f->down != NULL || SSL_has_pending(c->ssl))
        return; /* still waiting for a side to take its bytes: retried on the next tick */
    if (!free_buffers(c->ssl) && OpenSSL_version_num() >= 0x300000e0L)
        return;
    SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_set_read_ahead(c->ssl, 0);
    SSL_set_default_read_buffer_len(c->ssl, 0); /* one record's worth again */
    f->streaming = false;
}

bool gw_fast_client_pending(const struct gw_conn *c)
{
    return c->fast != NULL && (c->fast->down != NULL || gw_outbio_pending(c->fast->out));
}

/* One side is gone: stop reading, write out what is buffered for the other side (client:
 * what the backend sent; backend: what the client sent), then close. -1: c was closed. */
static int enter_flush(struct gw_conn *c, bool to_client, const char *why)
{
    struct gw_fast *f = c->fast;
    c->state = GW_CONN_FLUSH;
    c->close_reason = why;
    f->flush_client = to_client;
    pause_read(c, &f->cl_rd, &c->paused_client);
    pause_read(c, &f->be_rd, &c->paused_backend);
    f->read_wants_write = false;
    if ((to_client ? f->down : f->up) == NULL) {
        gw_conn_close(c, why);
        return -1;
    }
    /* The other direction's leftovers have nowhere to go. */
    if (to_client) {
        free(f->up);
        f->up = NULL;
        set_write(&f->be_wr, &f->be_wr_on, false);
    } else {
        free(f->down);
        f->down = NULL;
        set_write(&f->cl_wr, &f->cl_wr_on, false);
    }
    c->deadline_ms = gw_now_ms() + GW_FLUSH_LIMIT_MS;
    gw_conn_arm_timer(c);
    return 0;
}

/* The client finished sending: pass the half-close on to the backend once everything it
 * sent was written, and keep relaying the answer until the backend closes. */
static void half_close_backend(struct gw_conn *c)
{
    if (c->fast->up != NULL || c->backend_shut)
        return;
    c->backend_shut = true;
    (void)shutdown(c->fast->bfd, SHUT_WR);
}

/* Write f->up to the backend. 0: all written (buffer freed) or waiting for EV_WRITE (kept,
 * client reads paused); -1: c was closed. */
static int flush_up(struct gw_conn *c)
{
    struct gw_fast *f = c->fast;
    struct gw_fbuf *b = f->up;
    while (b->off < b->len) {
        ssize_t n = send(f->bfd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
        if (n > 0) {
            b->off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pause_read(c, &f->cl_rd, &c->paused_client);
            set_write(&f->be_wr, &f->be_wr_on, true);
            return 0;
        }
        gw_stat_add(&c->w->stats.backend_errors, 1);
        free(f->up);
        f->up = NULL;
        return enter_flush(c, true, "backend closed");
    }
    free(b);
    f->up = NULL;
    set_write(&f->be_wr, &f->be_wr_on, false);
    if (c->state == GW_CONN_FLUSH) {
        if (!f->flush_client) {
            gw_conn_close(c, c->close_reason);
            return -1;
        }
        return 0;
    }
    if (c->client_eof) {
        half_close_backend(c);
        return 0;
    }
    resume_read(c, &f->cl_rd, &c->paused_client);
    return 0;
}

/* Hand f->down to SSL_write: full records, at once. 0: all taken (buffer freed) or waiting
 * for the client (kept, backend reads paused); -1: c was closed. */
static int flush_down(struct gw_conn *c)
{
    struct gw_fast *f = c->fast;
    struct gw_fbuf *b = f->down;
    int e = SSL_ERROR_NONE;
    while (b->off < b->len) {
        size_t left = b->len - b->off;
        int n = SSL_write(c->ssl, b->data + b->off, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0) {
            b->off += (size_t)n;
            continue;
        }
        e = SSL_get_error(c->ssl, n);
        break;
    }
    /* Everything taken: send the records (the buffer stays until they left). */
    if (e == SSL_ERROR_NONE) {
        int r = gw_outbio_send(f->out);
        e = r > 0 ? SSL_ERROR_NONE : r == 0 ? SSL_ERROR_WANT_WRITE : SSL_ERROR_SYSCALL;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        pause_read(c, &f->be_rd, &c->paused_backend);
        set_write(&f->cl_wr, &f->cl_wr_on, true);
        return 0;
    }
    if (e != SSL_ERROR_NONE) {
        /* WANT_READ would need renegotiation, which the server ctx refuses: a dead client. */
        ERR_clear_error();
        free(f->down);
        f->down = NULL;
        set_write(&f->cl_wr, &f->cl_wr_on, false);
        return enter_flush(c, false, "client closed");
    }
    free(b);
    f->down = NULL;
    if (!f->read_wants_write)
        set_write(&f->cl_wr, &f->cl_wr_on, false);
    if (c->state == GW_CONN_FLUSH) {
        if (f->flush_client) {
            gw_conn_close(c, c->close_reason);
            return -1;
        }
        return 0;
    }
    resume_read(c, &f->be_rd, &c->paused_backend);
    return 0;
}

enum fill { FILL_FULL, FILL_DRAINED, FILL_EOF, FILL_ERROR, FILL_WANT_WRITE };

/* SSL_read into b until it is full or OpenSSL has nothing more. */
static enum fill ssl_fill(struct gw_conn *c, struct gw_fbuf *b)
{
    while (b->len < b->cap) {
        size_t room = b->cap - b->len;
        int n = SSL_read(c->ssl, b->data + b->len, room > INT32_MAX ? INT32_MAX : (int)room);
        if (n > 0) {
            b->len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        ERR_clear_error();
        switch (e) {
        case SSL_ERROR_WANT_READ:
            return FILL_DRAINED;
        case SSL_ERROR_WANT_WRITE:
            return FILL_WANT_WRITE;
        case SSL_ERROR_ZERO_RETURN:
            return FILL_EOF; /* close_notify: a half-close (RFC 8446 §6.1) */
        default:
            /* A bare FIN (no close_notify) or a protocol error: the SSL cannot write any
             * more, so this ends the connection as the bufferevent relay does. */
            return FILL_ERROR;
        }
    }
    return FILL_FULL;
}

/* Client -> backend: decrypt up to a chunk at a time, write it straight to the backend. */
static void pump_up(struct gw_conn *c)
{
    struct gw_fast *f = c->fast;
    for (int round = 0; round < FAST_ROUNDS; round++) {
        if (f->up == NULL && (f->up = fbuf_new(f->chunk)) == NULL) {
            gw_conn_close(c, "out of memory");
            return;
        }
        enum fill st = ssl_fill(c, f->up);
        if (f->up->len > 0) {
            c->bytes_in += f->up->len - f->up->off;
            moved(c, st == FILL_FULL);
        }
        if (st == FILL_EOF) {
            c->client_eof = true;
            pause_read(c, &f->cl_rd, &c->paused_client);
        } else if (st == FILL_ERROR) {
            if (f->up->len == 0) { /* nothing to flush: enter_flush closes */
                free(f->up);
                f->up = NULL;
            }
            if (enter_flush(c, false, "client closed") != 0)
                return;
        } else if (st == FILL_WANT_WRITE) {
            f->read_wants_write = true;
            set_write(&f->cl_wr, &f->cl_wr_on, true);
        }
        if (f->up->len == 0) {
            free(f->up);
            f->up = NULL;
            if (c->client_eof)
                half_close_backend(c);
            return;
        }
        if (flush_up(c) != 0 || f->up != NULL || st != FILL_FULL)
            return; /* closed, blocked on the backend, or nothing more to read now */
    }
    /* Out of turns: OpenSSL may hold bytes epoll will not report. */
    event_active(&f->cl_rd, EV_READ, 1);
}

/* Backend -> client: read a chunk, SSL_write it at once. */
static void pump_down(struct gw_conn *c)
{
    struct gw_fast *f = c->fast;
    for (int round = 0; round < FAST_ROUNDS; round++) {
        if ((f->down = fbuf_new(f->chunk)) == NULL) {
            gw_conn_close(c, "out of memory");
            return;
        }
        ssize_t n = recv(f->bfd, f->down->data, f->down->cap, 0);
        if (n > 0) {
            f->down->len = (size_t)n;
            c->bytes_out += (size_t)n;
            moved(c, (size_t)n == f->chunk);
            if (flush_down(c) != 0 || f->down != NULL)
                return;
            if ((size_t)n < f->chunk)
                return; /* the socket is most likely empty: save the EAGAIN read */
            continue;
        }
        int e = n < 0 ? errno : 0;
        free(f->down);
        f->down = NULL;
        if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR))
            return;
        if (n < 0)
            gw_stat_add(&c->w->stats.backend_errors, 1);
        (void)enter_flush(c, true, "backend closed");
        return;
    }
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_conn *c = arg;
    if (c->state == GW_CONN_RELAY && !c->client_eof && c->fast->up == NULL)
        pump_up(c);
}

static void on_client_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_conn *c = arg;
    struct gw_fast *f = c->fast;
    if (f->down == NULL && gw_outbio_pending(f->out)) {
        /* a KeyUpdate answer OpenSSL wrote while reading */
        int r = gw_outbio_send(f->out);
        if (r == 0)
            return;
        if (r < 0) {
            (void)enter_flush(c, false, "client closed");
            return;
        }
    }
    if (f->down != NULL) {
        if (flush_down(c) != 0)
            return;
        if (f->down == NULL && c->state == GW_CONN_RELAY)
            pump_down(c); /* the backend most likely has more */
        return;
    }
    if (f->read_wants_write) {
        f->read_wants_write = false;
        set_write(&f->cl_wr, &f->cl_wr_on, false);
        on_client_read(-1, 0, c);
        return;
    }
    set_write(&f->cl_wr, &f->cl_wr_on, false);
}

static void on_backend_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_conn *c = arg;
    if (c->state == GW_CONN_RELAY && c->fast->down == NULL)
        pump_down(c);
}

static int fast_start(struct gw_conn *c, struct tw_err *err);

static void on_backend_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct gw_conn *c = arg;
    struct gw_fast *f = c->fast;
    if (!f->connected) {
        int e = 0;
        socklen_t len = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
            e = errno;
        if (e == EINPROGRESS || e == EINTR)
            return;
        set_write(&f->be_wr, &f->be_wr_on, false);
        if (e != 0) {
            char why[192];
            snprintf(why, sizeof(why), "backend %s: %s", c->svc->cfg->backend.text, strerror(e));
            gw_conn_backend_failed(c, 502, why);
            return;
        }
        f->connected = true;
        struct tw_err err;
        tw_err_clear(&err);
        if (fast_start(c, &err) != 0) {
            tw_str_copy(c->detail, sizeof(c->detail), err.msg);
            gw_conn_close(c, "relay setup failed");
        }
        return;
    }
    if (f->up == NULL) {
        set_write(&f->be_wr, &f->be_wr_on, false);
        return;
    }
    if (flush_up(c) != 0 || f->up != NULL)
        return;
    if (c->state == GW_CONN_RELAY && !c->client_eof && SSL_has_pending(c->ssl))
        pump_up(c);
}

int gw_fast_connect(struct gw_conn *c, struct tw_err *err)
{
    struct gw_svc *s = c->svc;
    struct gw_fast *f = calloc(1, sizeof(*f));
    TW_ENSURE(f != NULL, err, TW_ERR_INTERNAL, "backend %s: out of memory", s->cfg->backend.text);
    f->bfd = -1;
    c->fast = f;
    size_t chunk = s->buffer_high < FAST_CHUNK ? s->buffer_high : FAST_CHUNK;
    f->chunk = chunk < FAST_MIN_CHUNK ? FAST_MIN_CHUNK : chunk;
    int family = s->backend_addr.ss_family;
    f->bfd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->bfd < 0)
        return tw_err_sys(err, TW_ERR_IO, "backend %s", s->cfg->backend.text);
    if (family == AF_INET || family == AF_INET6) {
        int one = 1;
        (void)setsockopt(f->bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    struct event_base *base = c->w->base;
    event_assign(&f->cl_rd, base, c->fd, EV_READ | EV_PERSIST, on_client_read, c);
    event_assign(&f->cl_wr, base, c->fd, EV_WRITE | EV_PERSIST, on_client_write, c);
    event_assign(&f->be_rd, base, f->bfd, EV_READ | EV_PERSIST, on_backend_read, c);
    event_assign(&f->be_wr, base, f->bfd, EV_WRITE | EV_PERSIST, on_backend_write, c);
    if (connect(f->bfd, (const struct sockaddr *)&s->backend_addr, s->backend_len) != 0 &&
        errno != EINPROGRESS)
        return tw_err_sys(err, TW_ERR_IO, "backend %s", s->cfg->backend.text);
    set_write(&f->be_wr, &f->be_wr_on, true);
    return 0;
}

/* Backend connected: queue the PROXY v2 header and whatever the handshake bufferevent
 * already decrypted, then free the bufferevent (not the SSL, not the socket). */
static int fast_start(struct gw_conn *c, struct tw_err *err)
{
    struct gw_fast *f = c->fast;
    c->state = GW_CONN_RELAY;
    c->last_io_ms = gw_now_ms();
    struct tw_buf hdr;
    tw_buf_init(&hdr, GW_PP2_MAX_LEN);
    if (c->svc->cfg->forward == GW_FORWARD_PROXY_V2 && gw_relay_proxy_v2(c, &hdr, err) != 0) {
        tw_buf_free(&hdr);
        return -1;
    }
    struct evbuffer *in = bufferevent_get_input(c->client);
    size_t held = evbuffer_get_length(in);
    if (hdr.len + held > 0) {
        size_t cap = hdr.len + held > f->chunk ? hdr.len + held : f->chunk;
        f->up = fbuf_new(cap);
        if (f->up == NULL) {
            tw_buf_free(&hdr);
            return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        }
        if (hdr.len > 0)
            memcpy(f->up->data, hdr.data, hdr.len);
        f->up->len = hdr.len;
        if (held > 0 && evbuffer_remove(in, f->up->data + f->up->len, held) != (int)held) {
            tw_buf_free(&hdr);
            return tw_err_set(err, TW_ERR_INTERNAL, "cannot take the client's early bytes");
        }
        f->up->len += held;
        c->bytes_in += held;
    }
    tw_buf_free(&hdr);
    BIO *out = gw_outbio_new(c->fd);
    if (out == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "cannot set up the relay's TLS output");
    SSL_set0_wbio(c->ssl, out); /* the socket BIO stays the read BIO */
    f->out = out;
    bufferevent_free(c->client);
    c->client = NULL;
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    event_add(&f->be_rd, NULL);
    event_add(&f->cl_rd, NULL);
    gw_conn_arm_timer(c);
    if (f->up != NULL) {
        /* Write it on the next turn of the loop (this callback must not free c). */
        set_write(&f->be_wr, &f->be_wr_on, true);
        pause_read(c, &f->cl_rd, &c->paused_client);
    } else {
        event_active(&f->cl_rd, EV_READ, 1);
    }
    return 0;
}

void gw_fast_free(struct gw_conn *c)
{
    struct gw_fast *f = c->fast;
    if (f == NULL)
        return;
    if (f->bfd >= 0) { /* the events are assigned once the socket exists */
        event_del(&f->cl_rd);
        event_del(&f->cl_wr);
        event_del(&f->be_rd);
        event_del(&f->be_wr);
        close(f->bfd);
    }
    free(f->up);
    free(f->down);
    free(f);
    c->fast = NULL;
}
