/* The demo's client: a blocking TLS connection to the gateway, as any mTLS client makes one. */
#include "cli/demo.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tlsx/tlsx.h"

#define DEMO_IO_TIMEOUT_S 5

static int connect_loopback(int port, struct tw_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "socket");
    struct timeval tv = {.tv_sec = DEMO_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        tw_err_sys(err, TW_ERR_IO, "connect to 127.0.0.1:%d", port);
        close(fd);
        return -1;
    }
    return fd;
}

/* The server's refusal in words: a TLS alert it sent, else OpenSSL's reason. */
static int tls_failure(struct tw_err *err, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    tw_err_set(err, TW_ERR_TLS, "%s: %s", what, reason != NULL ? reason : "connection closed");
    ERR_clear_error();
    return -1;
}

int demo_client_open(struct demo_client *c, int port, const char *ca, const char *cert,
                     const char *key, struct tw_err *err)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    struct tlsx_client_opts opts;
    tlsx_client_opts_init(&opts);
    opts.ca_file = ca;
    opts.cert_file = cert;
    opts.key_file = key;
    c->ctx = tlsx_client_ctx_new(&opts, err);
    if (c->ctx == NULL)
        return -1;
    c->fd = connect_loopback(port, err);
    if (c->fd < 0)
        return -1;
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return tw_err_ossl(err, TW_ERR_TLS, "SSL_new");
    TW_GUARD(tlsx_client_ssl_setup(c->ssl, "localhost", err));
    if (SSL_connect(c->ssl) != 1)
        return tls_failure(err, "handshake refused");
    return 0;
}

int demo_client_get(struct demo_client *c, const char *path, int *status, char *body, size_t cap,
                    struct tw_err *err)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (SSL_write(c->ssl, req, n) != n) {
        /* A TLS 1.3 server refuses after the client's handshake ended: its alert may be
         * waiting to be read even though the write failed. */
        char byte;
        (void)SSL_read(c->ssl, &byte, 1);
        return tls_failure(err, "refused");
    }
    /* The backend answers with Content-Length; read until the head and that many bytes. */
    char buf[8192];
    size_t used = 0;
    long want = -1;
    char *head_end = NULL;
    while (used < sizeof(buf) - 1) {
        int r = SSL_read(c->ssl, buf + used, (int)(sizeof(buf) - 1 - used));
        if (r <= 0)
            return tls_failure(err, "refused");
        used += (size_t)r;
        buf[used] = '\0';
        if (head_end == NULL && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            want = cl != NULL && cl < head_end ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (head_end != NULL && (long)(used - (size_t)(head_end + 4 - buf)) >= want)
            break;
    }
    if (head_end == NULL || sscanf(buf, "HTTP/1.%*d %d", status) != 1)
        return tw_err_set(err, TW_ERR_IO, "malformed HTTP response from the gateway");
    snprintf(body, cap, "%.*s", (int)want, head_end + 4);
    body[strcspn(body, "\n")] = '\0';
    return 0;
}

int demo_client_wait_closed(struct demo_client *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return 0;
    char byte;
    return SSL_read(c->ssl, &byte, 1) <= 0 ? 1 : 0;
}

void demo_client_close(struct demo_client *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    SSL_CTX_free(c->ctx);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}
