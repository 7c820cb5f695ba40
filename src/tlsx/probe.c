/* doctor, online half: one two-way handshake against HOST:PORT on a blocking socket with
 * timeouts, recorded step by step through OpenSSL's message, verify and certificate
 * callbacks. The probe never trusts what it learns: it completes the handshake even when the
 * server's chain or name fails (so the rest can be shown) and sends no application data. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tlsx/internal.h"
#include "tlsx/probe_internal.h"
#include "util/buf.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_VERDICT_MS 1000
#define MAX_VERDICT_READS 64 /* session tickets and the like before giving up */

/* TLS handshake message types (RFC 8446 §4). */
enum {
    HS_CLIENT_HELLO = 1,
    HS_SERVER_HELLO = 2,
    HS_CERTIFICATE = 11,
    HS_CERTIFICATE_REQUEST = 13,
};

struct run {
    const struct tlsx_probe_opts *o;
    struct tlsx_probe *p;
    bool pending_hello, pending_cert, hello_emitted, cert_emitted;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(struct run *r, enum tlsx_probe_step step)
{
    if (r->o->on_step != NULL)
        r->o->on_step(step, r->p, r->o->arg);
}

static void record_server_hello(struct run *r, const SSL *ssl)
{
    snprintf(r->p->version, sizeof(r->p->version), "%s", SSL_get_version(ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    snprintf(r->p->cipher, sizeof(r->p->cipher), "%s", c != NULL ? SSL_CIPHER_get_name(c) : "");
}

static void record_server_chain(struct run *r, const SSL *ssl)
{
    STACK_OF(X509) *sk = SSL_get_peer_cert_chain(ssl);
    r->p->nserver_chain = 0;
    for (int i = 0; i < sk_X509_num(sk) && r->p->nserver_chain < TLSX_PROBE_MAX_CHAIN; i++)
        tlsx_cert_info_fill(sk_X509_value(sk, i), &r->p->server_chain[r->p->nserver_chain++]);
}

/* Messages are processed after the callback announcing them, so what a message set (the
 * version, the peer chain and its verification) is read at the next callback. */
static void flush(struct run *r, const SSL *ssl)
{
    if (r->pending_hello && !r->hello_emitted) {
        r->pending_hello = false;
        r->hello_emitted = true;
        record_server_hello(r, ssl);
        emit(r, TLSX_STEP_SERVER_HELLO);
    }
    if (r->pending_cert && !r->cert_emitted) {
        r->pending_cert = false;
        r->cert_emitted = true;
        record_server_chain(r, ssl);
        emit(r, TLSX_STEP_SERVER_CERT);
    }
}

/* Count the certificates in our own Certificate message (header included in msg). TLS 1.3
 * adds a request context before the list and extensions after each entry. */
static size_t count_certs(const unsigned char *msg, size_t len, bool tls13)
{
    struct tw_cursor c;
    tw_cursor_init(&c, msg, len);
    uint8_t ctx_len, b[3];
    const uint8_t *bytes;
    if (tw_cursor_skip(&c, 4) != 0)
        return 0;
    if (tls13 && (tw_cursor_u8(&c, &ctx_len) != 0 || tw_cursor_skip(&c, ctx_len) != 0))
        return 0;
    if (tw_cursor_bytes(&c, 3, &bytes) != 0)
        return 0;
    size_t n = 0;
    while (tw_cursor_remaining(&c) >= 3) {
        if (tw_cursor_u8(&c, &b[0]) != 0 || tw_cursor_u8(&c, &b[1]) != 0 ||
            tw_cursor_u8(&c, &b[2]) != 0)
            break;
        size_t clen = (size_t)b[0] << 16 | (size_t)b[1] << 8 | b[2];
        if (tw_cursor_skip(&c, clen) != 0)
            break;
        uint16_t ext;
        if (tls13 && (tw_cursor_u16be(&c, &ext) != 0 || tw_cursor_skip(&c, ext) != 0))
            break;
        n++;
    }
    return n;
}

static void on_handshake_msg(struct run *r, SSL *ssl, int write_p, const unsigned char *msg,
                             size_t len)
{
    flush(r, ssl);
    int type = msg[0];
    if (write_p && type == HS_CLIENT_HELLO) {
        r->p->hello_sent = true;
        emit(r, TLSX_STEP_CLIENT_HELLO);
    } else if (write_p && type == HS_CERTIFICATE) {
        r->p->client_cert_msg = true;
        r->p->client_certs_sent = count_certs(msg, len, SSL_version(ssl) == TLS1_3_VERSION);
        r->p->client_cert_sent = r->p->client_certs_sent > 0;
        if (r->p->client_cert_sent)
            tlsx_cert_info_fill(SSL_get_certificate(ssl), &r->p->client_cert);
        emit(r, TLSX_STEP_CLIENT_CERT);
    } else if (!write_p && type == HS_SERVER_HELLO) {
        r->p->server_hello = true;
        r->pending_hello = true;
    } else if (!write_p && type == HS_CERTIFICATE) {
        r->p->server_cert_seen = true;
        r->pending_cert = true;
    } else if (!write_p && type == HS_CERTIFICATE_REQUEST) {
        r->p->cert_requested = true;
    }
}

static void on_alert(struct run *r, SSL *ssl, int write_p, const unsigned char *msg)
{
    flush(r, ssl);
    int desc = msg[1];
    if (desc == SSL_AD_CLOSE_NOTIFY) {
        if (!write_p)
            r->p->server_closed = true;
        return;
    }
    if (write_p) {
        r->p->alert_sent = desc;
    } else {
        r->p->alert_received = desc;
        r->p->alert_after_handshake = r->p->handshake_done;
    }
    r->p->alert_last_sent = write_p != 0;
    emit(r, TLSX_STEP_ALERT);
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    struct run *r = arg;
    const unsigned char *msg = buf;
    if (content_type == SSL3_RT_HANDSHAKE && len >= 4)
        on_handshake_msg(r, ssl, write_p, msg, len);
    else if (content_type == SSL3_RT_ALERT && len == 2)
        on_alert(r, ssl, write_p, msg);
}

/* Called with every error of the server chain: record the first chain problem and the name
 * check separately, and carry on so the handshake (and the rest of the story) completes. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct run *r = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    if (ok || r == NULL)
        return 1;
    long e = X509_STORE_CTX_get_error(x);
    if (e == X509_V_ERR_HOSTNAME_MISMATCH || e == X509_V_ERR_IP_ADDRESS_MISMATCH ||
        e == X509_V_ERR_EMAIL_MISMATCH) {
        if (r->p->name_err == X509_V_OK)
            r->p->name_err = e;
    } else if (r->p->chain_err == X509_V_OK) {
        r->p->chain_err = e;
        r->p->chain_err_depth = X509_STORE_CTX_get_error_depth(x);
    }
    return 1;
}

/* The server asked for our certificate: the CA names and signature algorithms it accepts. */
static int cert_cb(SSL *ssl, void *arg)
{
    struct run *r = arg;
    flush(r, ssl);
    struct tlsx_probe *p = r->p;
    const STACK_OF(X509_NAME) *names = SSL_get0_peer_CA_list(ssl);
    p->nca_names_total = (size_t)sk_X509_NAME_num(names);
    for (int i = 0; i < sk_X509_NAME_num(names) && p->nca_names < TLSX_PROBE_MAX_CA_NAMES; i++)
        tlsx_probe_name_text(sk_X509_NAME_value(names, i), p->ca_names[p->nca_names++],
                             TLSX_PROBE_NAME_MAX);
    int n = SSL_get_sigalgs(ssl, -1, NULL, NULL, NULL, NULL, NULL);
    for (int i = 0; i < n && p->nsigalgs < TLSX_PROBE_MAX_SIGALGS; i++) {
        unsigned char rsig = 0, rhash = 0;
        if (SSL_get_sigalgs(ssl, i, NULL, NULL, NULL, &rsig, &rhash) == 0)
            continue;
        char buf[32];
        const char *name = tlsx_sigalg_name((unsigned)rhash << 8 | rsig, buf, sizeof(buf));
        snprintf(p->sigalgs[p->nsigalgs++], sizeof(p->sigalgs[0]), "%s", name);
    }
    emit(r, TLSX_STEP_CERT_REQUEST);
    return 1;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    }
}

/* Non-blocking connect bounded by timeout_ms, then back to blocking. -1 with errno. */
static int connect_one(const struct addrinfo *ai, int64_t timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        goto fail;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int rc = poll(&pfd, 1, (int)timeout_ms);
    if (rc == 0)
        errno = ETIMEDOUT;
    if (rc <= 0)
        goto fail;
    int so = 0;
    socklen_t slen = sizeof(so);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &slen) != 0)
        goto fail;
    if (so != 0) {
        errno = so;
        goto fail;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0)
        goto fail;
    return fd;
fail : {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}
}

static void set_timeout(int fd, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int tcp_connect(const struct tlsx_probe_opts *o, struct tlsx_probe *p, int64_t timeout_ms,
                       struct tw_err *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    TW_ENSURE(rc == 0 && res != NULL, err, TW_ERR_USAGE, "cannot resolve '%s': %s", o->host,
              rc != 0 ? gai_strerror(rc) : "no address");
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        addr_text(ai->ai_addr, p->address, sizeof(p->address));
        fd = connect_one(ai, timeout_ms);
        if (fd < 0)
            p->connect_errno = errno;
    }
    freeaddrinfo(res);
    p->tcp_ok = fd >= 0;
    p->timed_out = fd < 0 && p->connect_errno == ETIMEDOUT;
    if (fd < 0)
        snprintf(p->detail, sizeof(p->detail), "%s", strerror(p->connect_errno));
    return fd;
}

static SSL_CTX *make_ctx(const struct tlsx_probe_opts *o, struct tw_err *err)
{
    struct tlsx_client_opts co;
    tlsx_client_opts_init(&co);
    co.ca_file = o->ca_file;
    co.cert_file = o->cert_file;
    co.key_file = o->key_file;
    co.min_version = o->min_version;
    co.max_version = o->max_version;
    co.ciphers = o->ciphers;
    co.insecure_skip_verify = true; /* the probe's verify_cb records; doctor reports */
    return tlsx_client_ctx_new(&co, err);
}

static SSL *make_ssl(SSL_CTX *ctx, struct run *r, int fd, struct tw_err *err)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) {
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot create a TLS connection");
        return NULL;
    }
    const char *name = r->p->server_name;
    /* Send the chain exactly as the certificate file holds it, as most clients would. */
    SSL_set_mode(ssl, SSL_MODE_NO_AUTO_CHAIN);
    /* A server that closes right after the handshake is a verdict too, not a library error. */
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (tlsx_client_ssl_setup(ssl, name, err) != 0 || tlsx_ssl_watch_alerts(ssl, err) != 0 ||
        SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_app_data(ssl, r);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
    SSL_set_msg_callback(ssl, msg_cb);
    SSL_set_msg_callback_arg(ssl, r);
    SSL_set_cert_cb(ssl, cert_cb, r);
    return ssl;
}

/* The server's alert, when there is one, is the best detail. */
static void name_alert(struct tlsx_probe *p)
{
    if (p->alert_received >= 0)
        snprintf(p->detail, sizeof(p->detail), "the server sent the alert \"%s\"",
                 tlsx_alert_name(p->alert_received));
}

/* A failed SSL_connect: timeout, EOF, or an alert / library error in plain words. */
static void handshake_failed(struct run *r, SSL *ssl, int rc)
{
    struct tlsx_probe *p = r->p;
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        p->timed_out = true;
        p->reason = p->server_hello ? TLSX_R_OTHER : TLSX_R_NOT_TLS;
        snprintf(p->detail, sizeof(p->detail), "no answer within the timeout");
    } else if (e == SSL_ERROR_SYSCALL && p->alert_received < 0) {
        p->reason = p->server_hello ? TLSX_R_CLOSED : TLSX_R_NOT_TLS;
        snprintf(p->detail, sizeof(p->detail), "%s",
                 errno != 0 ? strerror(errno) : "connection closed");
    } else {
        /* The server chain is reported separately: only the server's verdict and the
         * library's own failure count here. */
        SSL_set_verify_result(ssl, X509_V_OK);
        p->reason = tlsx_handshake_reason(ssl, p->detail, sizeof(p->detail));
        name_alert(p);
        if (p->alert_received == SSL_AD_HANDSHAKE_FAILURE && !p->server_hello)
            p->reason = TLSX_R_CIPHER;
        else if (!p->server_hello && p->alert_received < 0 &&
                 (p->reason == TLSX_R_OTHER || p->reason == TLSX_R_CLOSED))
            p->reason = TLSX_R_NOT_TLS;
    }
    ERR_clear_error();
}

/* TLS 1.3 servers check the client certificate after our side finished: a refusal arrives
 * as an alert on the first read. Wait verdict_ms for it. */
static void await_verdict(struct run *r, SSL *ssl, int fd, int64_t verdict_ms)
{
    struct tlsx_probe *p = r->p;
    int64_t deadline = now_ms() + verdict_ms;
    for (int i = 0; i < MAX_VERDICT_READS; i++) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        set_timeout(fd, left);
        char buf[256];
        errno = 0;
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n > 0) {
            p->got_data = true;
            break;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break; /* the verdict window passed quietly: accepted */
            continue;
        }
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && p->alert_received < 0)) {
            p->server_closed = true;
            break;
        }
        SSL_set_verify_result(ssl, X509_V_OK);
        p->reason = tlsx_handshake_reason(ssl, p->detail, sizeof(p->detail));
        name_alert(p);
        if (p->reason == TLSX_R_OK)
            p->reason = TLSX_R_OTHER;
        break;
    }
    ERR_clear_error();
    p->accepted = p->reason == TLSX_R_OK && !(p->alert_received >= 0);
}

static void handshake(struct run *r, SSL *ssl, int fd, int64_t timeout_ms, int64_t verdict_ms)
{
    struct tlsx_probe *p = r->p;
    set_timeout(fd, timeout_ms);
    errno = 0;
    int rc = SSL_connect(ssl);
    flush(r, ssl);
    if (rc != 1) {
        handshake_failed(r, ssl, rc);
        return;
    }
    p->handshake_done = true;
    if (!r->hello_emitted)
        record_server_hello(r, ssl);
    emit(r, TLSX_STEP_HANDSHAKE_DONE);
    await_verdict(r, ssl, fd, verdict_ms);
}

int tlsx_probe_run(const struct tlsx_probe_opts *o, struct tlsx_probe *p, struct tw_err *err)
{
    memset(p, 0, sizeof(*p));
    p->alert_received = p->alert_sent = -1;
    p->chain_err = p->name_err = X509_V_OK;
    p->reason = TLSX_R_OK;
    int64_t timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    int64_t verdict_ms = o->verdict_ms > 0 ? o->verdict_ms : DEFAULT_VERDICT_MS;
    int64_t start = now_ms();
    struct run r = {.o = o, .p = p};
    snprintf(p->server_name, sizeof(p->server_name), "%s",
             o->server_name != NULL ? o->server_name : o->host);
    SSL_CTX *ctx = make_ctx(o, err);
    if (ctx == NULL)
        return -1;
    int fd = tcp_connect(o, p, timeout_ms, err);
    if (fd < 0 && !p->tcp_ok && p->connect_errno == 0) {
        SSL_CTX_free(ctx);
        return -1; /* not resolvable: err is set */
    }
    emit(&r, TLSX_STEP_TCP);
    if (fd < 0) {
        p->reason = TLSX_R_CLOSED;
        SSL_CTX_free(ctx);
        p->elapsed_ms = now_ms() - start;
        emit(&r, TLSX_STEP_VERDICT);
        return 0;
    }
    SSL *ssl = make_ssl(ctx, &r, fd, err);
    if (ssl == NULL) {
        close(fd);
        SSL_CTX_free(ctx);
        return -1;
    }
    handshake(&r, ssl, fd, timeout_ms, verdict_ms);
    p->elapsed_ms = now_ms() - start;
    emit(&r, TLSX_STEP_VERDICT);
    SSL_set_quiet_shutdown(ssl, 1);
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return 0;
}
