/* The EST client's HTTPS requests, through libcurl: proxies from the environment (CONNECT
 * with the proxy's own credentials), timeouts, HTTP/2 when a server offers it. The TLS side
 * stays twoway's: libcurl's SSL_CTX gets an empty trust store and then exactly the set-up of
 * tlsx_client_ctx_setup, so only the given CAs (or, during the bootstrap, nothing yet) are
 * trusted; the name check is ours too. One request per connection: a command makes a handful.
 * Failures are said in plain words by est/http_error.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/err.h>

#include "est/internal.h"
#include "util/buf.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
static int xfer_index = -1;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    xfer_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

void est_response_clear(struct est_response *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
    r->retry_after = -1;
}

/* Why a handshake failed and, for the bootstrap, the chain the server sent: all gone with the
 * SSL object by the time curl_easy_perform returns, so they are noted while it lives. */
static void info_cb(const SSL *ssl, int where, int ret)
{
    struct est_xfer *x = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), xfer_index);
    if (x == NULL)
        return;
    /* Fatal alerts only: a close_notify at the end says nothing about a failure. */
    int fatal = (where & SSL_CB_ALERT) != 0 && (ret >> 8) == SSL3_AL_FATAL;
    if (fatal && (where & SSL_CB_READ) != 0)
        x->alert_received = ret & 0xff;
    if (fatal && (where & SSL_CB_WRITE) != 0)
        x->verify_result = SSL_get_verify_result(ssl);
    /* libcurl clears the error queue before each SSL_connect: a reason in it at the exit is
     * why the handshake failed (a mere "want read" leaves none). Peeked, not taken. */
    if ((where & SSL_CB_EXIT) != 0 && ret <= 0 && x->why == TLSX_R_OK && ERR_peek_error() != 0)
        x->why = tlsx_handshake_reason(NULL, x->why_detail, sizeof(x->why_detail));
    if ((where & SSL_CB_HANDSHAKE_DONE) != 0 && x->want_chain && x->chain == NULL) {
        STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
        x->chain = sk_X509_new_null();
        for (int i = 0; x->chain != NULL && i < sk_X509_num(sent); i++)
            if (sk_X509_push(x->chain, sk_X509_value(sent, i)) > 0)
                X509_up_ref(sk_X509_value(sent, i));
    }
}

/* libcurl's SSL_CTX, before its first connection: nothing trusted but what tls names. */
static CURLcode ssl_ctx_cb(CURL *curl, void *sslctx, void *arg)
{
    (void)curl;
    SSL_CTX *ctx = sslctx;
    struct est_xfer *x = arg;
    X509_STORE *empty = X509_STORE_new();
    if (empty == NULL) {
        x->setup_failed = tw_err_set(&x->setup_err, TW_ERR_INTERNAL, "out of memory");
        return CURLE_OUT_OF_MEMORY;
    }
    SSL_CTX_set_cert_store(ctx, empty);
    if (tlsx_client_ctx_setup(ctx, x->tls, &x->setup_err) != 0 ||
        (!x->skip_name && tlsx_client_ctx_expect_name(ctx, x->u->host, &x->setup_err) != 0)) {
        x->setup_failed = -1;
        return CURLE_SSL_CERTPROBLEM;
    }
    if (SSL_CTX_set_ex_data(ctx, xfer_index, x) != 1) {
        x->setup_failed = tw_err_set(&x->setup_err, TW_ERR_INTERNAL, "out of memory");
        return CURLE_OUT_OF_MEMORY;
    }
    SSL_CTX_set_info_callback(ctx, info_cb);
    return CURLE_OK;
}

static size_t body_cb(char *data, size_t size, size_t n, void *arg)
{
    struct est_xfer *x = arg;
    if (tw_buf_append(&x->body, data, size * n, NULL) != 0) {
        x->too_large = 1;
        return 0; /* libcurl stops the transfer: CURLE_WRITE_ERROR */
    }
    return size * n;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    struct est_xfer *x = arg;
    x->header_bytes += size * n;
    if (x->header_bytes > EST_CLIENT_HEADERS_MAX) {
        x->headers_too_large = 1;
        return 0;
    }
    return size * n;
}

static void header_copy(CURL *h, const char *name, char *out, size_t cap)
{
    struct curl_header *hv = NULL;
    out[0] = '\0';
    if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hv) == CURLHE_OK)
        snprintf(out, cap, "%s", hv->value);
}

/* RFC 9110 §10.2.3: Retry-After is delay-seconds or an HTTP-date. -1 when absent or neither. */
static long retry_after(const char *v)
{
    if (v[0] == '\0')
        return -1;
    char *end = NULL;
    long secs = strtol(v, &end, 10);
    if (v[0] >= '0' && v[0] <= '9' && end != NULL && *end == '\0')
        return secs;
    int64_t when = est_http_date_parse(v);
    if (when < 0)
        return -1;
    int64_t left = when - (int64_t)time(NULL);
    return left > 0 ? (long)left : 0;
}

static void response_fill(CURL *h, struct est_xfer *x, struct est_response *r)
{
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    r->status = (int)status;
    header_copy(h, "Content-Type", r->content_type, sizeof(r->content_type));
    header_copy(h, "Content-Transfer-Encoding", r->transfer_encoding,
                sizeof(r->transfer_encoding));
    header_copy(h, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
    char retry[64];
    header_copy(h, "Retry-After", retry, sizeof(retry));
    r->retry_after = retry_after(retry);
    /* The body keeps a NUL after it, so a text reason can be read as a string. */
    r->len = x->body.len;
    r->body = x->body.data;
    memset(&x->body, 0, sizeof(x->body));
}

static int setopts(CURL *h, struct est_xfer *x, const char *url, const struct est_http_req *req,
                   struct curl_slist *headers)
{
    int fail = 0;
#define OPT(o, v) fail |= curl_easy_setopt(h, o, v) != CURLE_OK
    OPT(CURLOPT_URL, url);
    OPT(CURLOPT_PROTOCOLS_STR, "https");
    OPT(CURLOPT_ERRORBUFFER, x->curl_msg);
    OPT(CURLOPT_NOSIGNAL, 1L);
    OPT(CURLOPT_USERAGENT, "twoway/" TWOWAY_VERSION);
    OPT(CURLOPT_HTTPHEADER, headers);
    OPT(CURLOPT_FORBID_REUSE, 1L);
    OPT(CURLOPT_CONNECTTIMEOUT, (long)EST_CLIENT_CONNECT_SECS);
    OPT(CURLOPT_TIMEOUT, (long)EST_CLIENT_TOTAL_SECS);
    OPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    OPT(CURLOPT_LOW_SPEED_TIME, (long)EST_CLIENT_STALL_SECS);
    OPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)EST_RESPONSE_MAX);
    OPT(CURLOPT_WRITEFUNCTION, body_cb);
    OPT(CURLOPT_WRITEDATA, x);
    OPT(CURLOPT_HEADERFUNCTION, header_cb);
    OPT(CURLOPT_HEADERDATA, x);
    /* TLS: twoway's set-up (ssl_ctx_cb) and nothing of libcurl's own trust store. */
    OPT(CURLOPT_CAINFO, NULL);
    OPT(CURLOPT_CAPATH, NULL);
    OPT(CURLOPT_SSL_SESSIONID_CACHE, 0L);
    OPT(CURLOPT_SSL_VERIFYPEER, x->tls->insecure_skip_verify ? 0L : 1L);
    OPT(CURLOPT_SSL_VERIFYHOST, x->tls->insecure_skip_verify || x->skip_name ? 0L : 2L);
    OPT(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    OPT(CURLOPT_SSL_CTX_DATA, x);
    /* Whatever scheme a company proxy asks for (Basic, Digest, NTLM, Negotiate), with the
     * credentials of the proxy URL (http://USER:PASSWORD@HOST:PORT). */
    OPT(CURLOPT_PROXYAUTH, (long)CURLAUTH_ANY);
    if (req->user != NULL) {
        OPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        OPT(CURLOPT_USERNAME, req->user);
        OPT(CURLOPT_PASSWORD, req->pass);
    }
    if (strcmp(req->method, "POST") == 0) {
        OPT(CURLOPT_POST, 1L);
        OPT(CURLOPT_POSTFIELDS, req->body);
        OPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    }
#undef OPT
    return fail ? -1 : 0;
}

static struct curl_slist *headers_make(const struct est_http_req *req)
{
    char ctype[160];
    snprintf(ctype, sizeof(ctype), "Content-Type: %s",
             req->content_type != NULL ? req->content_type : "");
    /* No "Expect: 100-continue" round trip before a CSR of a few hundred bytes. */
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    if (list != NULL && req->content_type != NULL) {
        struct curl_slist *more = curl_slist_append(list, ctype);
        if (more == NULL)
            curl_slist_free_all(list);
        list = more;
    }
    return list;
}

static int perform(struct est_xfer *x, const struct est_http_req *req, struct est_response *resp,
                   struct tw_err *err)
{
    char url[sizeof(x->u->origin) + sizeof(x->u->est_base) + 32];
    snprintf(url, sizeof(url), "%s%s/%s", x->u->origin, x->u->est_base, req->op);
    CURL *h = curl_easy_init();
    struct curl_slist *headers = headers_make(req);
    int rc = -1;
    if (h == NULL || headers == NULL || setopts(h, x, url, req, headers) != 0)
        tw_err_set(err, TW_ERR_INTERNAL, "cannot set up the HTTP client");
    else if ((x->rc = curl_easy_perform(h)) != CURLE_OK)
        est_http_explain(h, x, err);
    else {
        response_fill(h, x, resp);
        rc = 0;
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

int est_http_request(const struct tlsx_client_opts *tls, const struct est_url *u,
                     int skip_name_check, const struct est_http_req *req,
                     struct est_response *resp, STACK_OF(X509) * *peer_chain, struct tw_err *err)
{
    memset(resp, 0, sizeof(*resp));
    resp->retry_after = -1;
    pthread_once(&global_once, global_init);
    TW_ENSURE(global_rc == CURLE_OK && xfer_index >= 0, err, TW_ERR_INTERNAL,
              "cannot start the HTTP client (libcurl)");
    struct est_xfer x;
    memset(&x, 0, sizeof(x));
    x.tls = tls;
    x.u = u;
    x.skip_name = skip_name_check;
    x.want_chain = peer_chain != NULL;
    x.alert_received = -1;
    x.verify_result = X509_V_OK;
    tw_buf_init(&x.body, EST_RESPONSE_MAX);
    int rc = perform(&x, req, resp, err);
    tw_buf_free(&x.body);
    if (rc == 0 && peer_chain != NULL) {
        *peer_chain = x.chain;
        x.chain = NULL;
    }
    sk_X509_pop_free(x.chain, X509_free);
    return rc;
}
