/* A small blocking HTTPS/1.1 client for `twoway enroll` and `twoway renew`: one request per
 * connection (Connection: close), bounded reads, timeouts, and TLS failures in plain words.
 * Blocking is fine here: a command makes a handful of requests and waits for each. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "est/internal.h"
#include "tlsx/tlsx.h"
#include "util/buf.h"

#define CONNECT_TIMEOUT_MS 10000
#define IO_TIMEOUT_SECS 30
#define HEAD_MAX (16u * 1024)

int est_url_parse(const char *url, struct est_url *out, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    static const char scheme[] = "https://";
    TW_ENSURE(url != NULL && strncasecmp(url, scheme, sizeof(scheme) - 1) == 0, err, TW_ERR_USAGE,
              "URL '%s' must start with https://", url != NULL ? url : "");
    const char *h = url + sizeof(scheme) - 1;
    const char *hend = h[0] == '[' ? strchr(h, ']') : h + strcspn(h, ":/");
    TW_ENSURE(hend != NULL && hend > h, err, TW_ERR_USAGE, "URL '%s' has no host", url);
    if (h[0] == '[')
        hend++;
    TW_ENSURE((size_t)(hend - h) < sizeof(out->host), err, TW_ERR_USAGE, "URL '%s': host too long",
              url);
    memcpy(out->host, h, (size_t)(hend - h));
    const char *p = hend;
    snprintf(out->port, sizeof(out->port), "443");
    if (*p == ':') {
        size_t n = strspn(p + 1, "0123456789");
        TW_ENSURE(n > 0 && n < 6 && (p[1 + n] == '\0' || p[1 + n] == '/'), err, TW_ERR_USAGE,
                  "URL '%s': bad port", url);
        long port = strtol(p + 1, NULL, 10);
        TW_ENSURE(port > 0 && port <= 65535, err, TW_ERR_USAGE, "URL '%s': bad port", url);
        snprintf(out->port, sizeof(out->port), "%ld", port);
        p += 1 + n;
    }
    TW_ENSURE(*p == '\0' || *p == '/', err, TW_ERR_USAGE, "URL '%s' is not https://HOST[:PORT]",
              url);
    for (const char *c = p; *c != '\0'; c++)
        TW_ENSURE(*c > ' ' && *c < 127 && *c != '?' && *c != '#', err, TW_ERR_USAGE,
                  "URL '%s': unsupported character in the path", url);
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    const char *wk = "/.well-known/est";
    int has = memmem(p, plen, wk, strlen(wk)) != NULL;
    TW_ENSURE(plen + strlen(wk) < sizeof(out->est_base), err, TW_ERR_USAGE, "URL '%s' too long",
              url);
    snprintf(out->est_base, sizeof(out->est_base), "%.*s%s", (int)plen, p, has ? "" : wk);
    snprintf(out->origin, sizeof(out->origin), "https://%s:%s", out->host, out->port);
    return 0;
}

void est_response_clear(struct est_response *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -1;
    int rc = connect(fd, sa, len);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        rc = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
        if (rc == 0)
            errno = ETIMEDOUT;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
            errno = soerr;
        rc = rc > 0 && soerr == 0 ? 0 : -1;
    }
    if (rc == 0 && fcntl(fd, F_SETFL, flags) != 0)
        return -1;
    return rc;
}

static int dial(const struct est_url *u, int *out, struct tw_err *err)
{
    char host[256];
    size_t n = strlen(u->host);
    if (u->host[0] == '[')
        snprintf(host, sizeof(host), "%.*s", (int)(n - 2), u->host + 1);
    else
        snprintf(host, sizeof(host), "%s", u->host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, u->port, &hints, &res);
    TW_ENSURE(gai == 0, err, TW_ERR_IO, "%s: cannot resolve %s: %s", u->origin, host,
              gai_strerror(gai));
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect_timeout(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = saved;
        return tw_err_sys(err, TW_ERR_IO, "cannot connect to %s", u->origin);
    }
    struct timeval tv = {IO_TIMEOUT_SECS, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    *out = fd;
    return 0;
}

static int handshake(SSL *ssl, const struct est_url *u, struct tw_err *err)
{
    if (SSL_connect(ssl) == 1)
        return 0;
    char detail[160] = "";
    enum tlsx_reason why = tlsx_handshake_reason(ssl, detail, sizeof(detail));
    ERR_clear_error();
    long v = SSL_get_verify_result(ssl);
    return tw_err_set(err, v != X509_V_OK ? TW_ERR_VERIFY : TW_ERR_TLS,
                      "TLS handshake with %s failed: %s%s%s%s", u->origin, tlsx_reason_text(why),
                      detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
}

static int send_all(SSL *ssl, const void *data, size_t len, const struct est_url *u,
                    struct tw_err *err)
{
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        if (SSL_write_ex(ssl, (const char *)data + done, len - done, &n) != 1) {
            ERR_clear_error();
            return tw_err_set(err, TW_ERR_IO, "%s closed the connection while sending", u->origin);
        }
        done += n;
    }
    return 0;
}

static int recv_all(SSL *ssl, struct tw_buf *in, const struct est_url *u, struct tw_err *err)
{
    char chunk[16384];
    for (;;) {
        size_t n = 0;
        if (SSL_read_ex(ssl, chunk, sizeof(chunk), &n) == 1) {
            if (tw_buf_append(in, chunk, n, err) != 0)
                return tw_err_set(err, TW_ERR_IO, "%s: response larger than %u bytes", u->origin,
                                  EST_RESPONSE_MAX);
            continue;
        }
        int e = SSL_get_error(ssl, 0);
        ERR_clear_error();
        /* A close without close_notify ends the body too: Content-Length says if it is whole. */
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0) ||
            (e == SSL_ERROR_SSL && in->len > 0))
            return 0;
        return tw_err_sys(err, TW_ERR_IO, "reading the answer from %s", u->origin);
    }
}

static void header_copy(const char *line, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t len = strcspn(v, "\r\n");
    snprintf(out, cap, "%.*s", (int)len, v);
}

/* The next "\r\n" at or after p and before end (memmem: the bytes may hold NULs). */
static const char *line_end(const char *p, const char *end)
{
    return p < end ? memmem(p, (size_t)(end - p), "\r\n", 2) : NULL;
}

int est_http_response_parse(const void *data_in, size_t len, const char *origin,
                            struct est_response *r, struct tw_err *err)
{
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
    const char *data = data_in;
    const char *end = len > 0 ? memmem(data, len, "\r\n\r\n", 4) : NULL;
    TW_ENSURE(end != NULL && (size_t)(end - data) < HEAD_MAX, err, TW_ERR_IO,
              "%s: no HTTP response (connection closed early)", origin);
    const char *eol = line_end(data, end + 2);
    char status_line[64];
    snprintf(status_line, sizeof(status_line), "%.*s", (int)(eol - data), data);
    int minor = 0;
    char rest = 0;
    TW_ENSURE(sscanf(status_line, "HTTP/1.%1d %3d%c", &minor, &r->status, &rest) >= 2 &&
                  (rest == 0 || rest == ' ') && r->status >= 100 && r->status <= 599,
              err, TW_ERR_IO, "%s: malformed HTTP status line", origin);
    char clen[32] = "", retry[32] = "", te[32] = "";
    for (const char *line = eol + 2; line < end; line = line_end(line, end + 2) + 2) {
        char one[1024];
        snprintf(one, sizeof(one), "%.*s", (int)(line_end(line, end + 2) - line), line);
        header_copy(one, "Content-Type", r->content_type, sizeof(r->content_type));
        header_copy(one, "Content-Transfer-Encoding", r->transfer_encoding,
                    sizeof(r->transfer_encoding));
        header_copy(one, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
        header_copy(one, "Content-Length", clen, sizeof(clen));
        header_copy(one, "Retry-After", retry, sizeof(retry));
        header_copy(one, "Transfer-Encoding", te, sizeof(te));
    }
    TW_ENSURE(te[0] == '\0' || strcasecmp(te, "identity") == 0, err, TW_ERR_IO,
              "%s: unsupported Transfer-Encoding '%s'", origin, te);
    r->retry_after = retry[0] != '\0' ? strtol(retry, NULL, 10) : -1;
    const char *body = end + 4;
    size_t have = len - (size_t)(body - data);
    if (clen[0] != '\0') {
        char *cend = NULL;
        unsigned long long want = strtoull(clen, &cend, 10);
        TW_ENSURE(clen[0] >= '0' && clen[0] <= '9' && cend != NULL && *cend == '\0' && want <= have,
                  err, TW_ERR_IO, "%s: answer cut short (%zu of %s bytes)", origin, have, clen);
        have = (size_t)want;
    }
    r->body = malloc(have + 1);
    TW_ENSURE(r->body != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(r->body, body, have);
    r->body[have] = '\0';
    r->len = have;
    return 0;
}

static int build_request(struct tw_buf *out, const struct est_url *u, const char *method,
                         const char *path, const char *auth, const char *ctype, size_t len,
                         struct tw_err *err)
{
    TW_GUARD(tw_buf_appendf(out, err,
                            "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: twoway/%s\r\n"
                            "Accept: */*\r\nConnection: close\r\n",
                            method, path, u->host, u->port, TWOWAY_VERSION));
    if (auth != NULL)
        TW_GUARD(tw_buf_appendf(out, err, "Authorization: %s\r\n", auth));
    if (ctype != NULL)
        TW_GUARD(tw_buf_appendf(out, err, "Content-Type: %s\r\n", ctype));
    if (strcmp(method, "POST") == 0)
        TW_GUARD(tw_buf_appendf(out, err, "Content-Length: %zu\r\n", len));
    return tw_buf_appendf(out, err, "\r\n");
}

static STACK_OF(X509) * copy_chain(SSL *ssl)
{
    STACK_OF(X509) *in = SSL_get_peer_cert_chain(ssl);
    STACK_OF(X509) *out = sk_X509_new_null();
    for (int i = 0; out != NULL && i < sk_X509_num(in); i++)
        if (sk_X509_push(out, sk_X509_value(in, i)) > 0)
            X509_up_ref(sk_X509_value(in, i));
    return out;
}

static int exchange(SSL *ssl, const struct est_url *u, const struct tw_buf *req, const void *body,
                    size_t len, struct est_response *resp, struct tw_err *err)
{
    TW_GUARD(handshake(ssl, u, err));
    TW_GUARD(send_all(ssl, req->data, req->len, u, err));
    if (len > 0)
        TW_GUARD(send_all(ssl, body, len, u, err));
    struct tw_buf in;
    tw_buf_init(&in, EST_RESPONSE_MAX + HEAD_MAX);
    int rc = recv_all(ssl, &in, u, err);
    if (rc == 0)
        rc = est_http_response_parse(in.data, in.len, u->origin, resp, err);
    tw_buf_free(&in);
    return rc;
}

int est_http_request(SSL_CTX *ctx, const struct est_url *u, int skip_name_check, const char *method,
                     const char *path, const char *auth, const char *content_type, const void *body,
                     size_t len, struct est_response *resp, STACK_OF(X509) * *peer_chain,
                     struct tw_err *err)
{
    memset(resp, 0, sizeof(*resp));
    resp->retry_after = -1;
    struct tw_buf req;
    tw_buf_init(&req, HEAD_MAX);
    if (build_request(&req, u, method, path, auth, content_type, len, err) != 0) {
        tw_buf_free(&req);
        return -1;
    }
    int fd = -1;
    SSL *ssl = NULL;
    int rc = dial(u, &fd, err);
    if (rc == 0 && (ssl = SSL_new(ctx)) == NULL)
        rc = tw_err_ossl(err, TW_ERR_INTERNAL, "cannot start TLS");
    if (rc == 0)
        rc = tlsx_client_ssl_setup(ssl, skip_name_check ? NULL : u->host, err);
    if (rc == 0 && (tlsx_ssl_watch_alerts(ssl, err) != 0 || SSL_set_fd(ssl, fd) != 1))
        rc = -1;
    if (rc == 0)
        rc = exchange(ssl, u, &req, body, len, resp, err);
    if (rc == 0 && peer_chain != NULL)
        *peer_chain = copy_chain(ssl);
    if (ssl != NULL)
        SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    tw_buf_free(&req);
    if (rc != 0)
        est_response_clear(resp);
    return rc;
}
