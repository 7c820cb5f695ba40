/* Routing: two tables, not an if chain. Top-level paths (/crl, /ocsp, /ca.crt, /chain.pem,
 * /healthz) and EST operations under /.well-known/est/ with an optional profile label (RFC 7030
 * §3.2.2). The plain HTTP listener serves only the top-level routes marked plain: what relying
 * parties fetch without TLS (RFC 5280 §4.2.1.13, RFC 6960 appendix A); enrollment never.
 * Every request is rate-limited per client address first and logged once when answered. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "est/internal.h"
#include "util/clock.h"
#include "util/log.h"

struct route {
    const char *path;
    int prefix; /* path is a prefix ("/ocsp/"): the rest goes to r->tail */
    int methods;
    est_handler run;
    int plain; /* also served on the plain HTTP listener */
};

static const struct route top_routes[] = {
    {"/crl", 0, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, est_h_crl, 1},
    {"/ocsp", 0, EVHTTP_REQ_POST, est_h_ocsp, 1},
    {"/ocsp/", 1, EVHTTP_REQ_GET, est_h_ocsp, 1},
    {"/ca.crt", 0, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, est_h_ca_crt, 1},
    {"/chain.pem", 0, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, est_h_chain_pem, 1},
    {"/healthz", 0, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, est_h_healthz, 0},
    {"/revocations", 0, EVHTTP_REQ_GET, est_h_revocations, 0},
    {NULL, 0, 0, NULL, 0},
};

/* RFC 7030 §3.2.2 operation paths; RFC 7030 §3.2 requires TLS for all of them. */
static const struct route est_routes[] = {
    {"cacerts", 0, EVHTTP_REQ_GET, est_h_cacerts, 0},
    {"simpleenroll", 0, EVHTTP_REQ_POST, est_h_simpleenroll, 0},
    {"simplereenroll", 0, EVHTTP_REQ_POST, est_h_simplereenroll, 0},
    {"csrattrs", 0, EVHTTP_REQ_GET, est_h_csrattrs, 0},
    {NULL, 0, 0, NULL, 0},
};

/* Labels name the profile the certificate gets. */
static const struct {
    const char *name;
    enum pki_profile profile;
} labels[] = {
    {"client", PKI_PROFILE_CLIENT},
    {"server", PKI_PROFILE_SERVER},
};

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

static void access_log(struct est_req *r)
{
    FILE *fp = r->srv->opts->access_log;
    if (fp == NULL)
        return;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    json_int_t us = (json_int_t)(end.tv_sec - r->start.tv_sec) * 1000000 +
                    (json_int_t)(end.tv_nsec - r->start.tv_nsec) / 1000;
    char when[32];
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:I}", "time",
                          clock_iso8601(time(NULL), when, sizeof(when)), "peer", r->peer, "method",
                          method_name(evhttp_request_get_command(r->req)), "path",
                          r->path != NULL ? r->path : "", "status", r->status, "bytes",
                          (json_int_t)r->bytes, "us", us);
    if (o == NULL)
        return;
    if (r->plain)
        json_object_set_new(o, "scheme", json_string("http"));
    if (r->client[0] != '\0')
        json_object_set_new(o, "client", json_string(r->client));
    if (r->detail[0] != '\0')
        json_object_set_new(o, "detail", json_string(r->detail));
    char *line = json_dumps(o, JSON_COMPACT);
    if (line != NULL) {
        log_line(fp, line);
        free(line);
    }
    json_decref(o);
}

/* evhttp queues the status line and headers and the body as separate buffer chains, and the
 * TLS bufferevent writes each chain as its own record and write(2). A small answer (an OCSP
 * response, a health check) is made one chain so it leaves as one record in one segment:
 * fewer syscalls and records, and no second segment for Nagle or delayed ACK to hold. */
static void coalesce(struct bufferevent *bev)
{
    struct evbuffer *out = bev != NULL ? bufferevent_get_output(bev) : NULL;
    size_t n = out != NULL ? evbuffer_get_length(out) : 0;
    if (n > 0 && n <= EST_COALESCE_MAX)
        (void)evbuffer_pullup(out, (ev_ssize_t)n);
}

void est_reply(struct est_req *r, int status, const char *content_type, const void *body,
               size_t len, const char *const *headers)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    if (content_type != NULL)
        evhttp_add_header(out, "Content-Type", content_type);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2)
        evhttp_add_header(out, headers[i], headers[i + 1]);
    struct evbuffer *buf = evbuffer_new();
    int head = evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD;
    if (buf != NULL && body != NULL && len > 0 && !head)
        evbuffer_add(buf, body, len);
    r->status = status;
    r->bytes = buf != NULL ? evbuffer_get_length(buf) : 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    evhttp_send_reply(r->req, status, NULL, buf);
    if (buf != NULL)
        evbuffer_free(buf);
    coalesce(bev);
    access_log(r);
}

void est_reply_text(struct est_req *r, int status, const char *reason)
{
    if (status >= 400 && r->detail[0] == '\0')
        snprintf(r->detail, sizeof(r->detail), "%s", reason);
    char body[TW_ERR_MSG_MAX + 2];
    int n = snprintf(body, sizeof(body), "%s\n", reason);
    est_reply(r, status, "text/plain; charset=utf-8", body, n > 0 ? (size_t)n : 0, NULL);
}

unsigned char *est_body(struct est_req *r, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t n = in != NULL ? evbuffer_get_length(in) : 0;
    *len = n;
    unsigned char *data = malloc(n + 1);
    if (data == NULL)
        return NULL;
    if (n > 0)
        evbuffer_copyout(in, data, n);
    data[n] = '\0';
    return data;
}

static void not_allowed(struct est_req *r, int methods)
{
    char allow[32] = "";
    static const struct {
        int bit;
        const char *name;
    } ms[] = {{EVHTTP_REQ_GET, "GET"}, {EVHTTP_REQ_HEAD, "HEAD"}, {EVHTTP_REQ_POST, "POST"}};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
        if (methods & ms[i].bit)
            snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
                     allow[0] ? ", " : "", ms[i].name);
    evhttp_add_header(evhttp_request_get_output_headers(r->req), "Allow", allow);
    est_reply_text(r, 405, "method not allowed");
}

static const struct route *lookup(const struct route *table, const char *path, const char **tail)
{
    for (const struct route *rt = table; rt->path != NULL; rt++) {
        size_t n = strlen(rt->path);
        if (rt->prefix ? strncmp(path, rt->path, n) == 0 : strcmp(path, rt->path) == 0) {
            *tail = path + n;
            return rt;
        }
    }
    return NULL;
}

/* "/.well-known/est/[LABEL/]OP" -> the EST route, r->label set. */
static const struct route *lookup_est(struct est_req *r, const char *rest)
{
    const char *slash = strchr(rest, '/');
    if (slash != NULL) {
        for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
            size_t n = strlen(labels[i].name);
            if ((size_t)(slash - rest) == n && strncmp(rest, labels[i].name, n) == 0) {
                r->label = (int)labels[i].profile;
                return lookup(est_routes, slash + 1, &r->tail);
            }
        }
        return NULL;
    }
    return lookup(est_routes, rest, &r->tail);
}

static void peer_address(struct est_req *r)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &addr, &port);
    snprintf(r->peer, sizeof(r->peer), "%s", addr != NULL ? addr : "?");
}

static void note_client(struct est_req *r)
{
    long verr = 0;
    X509 *peer = est_peer_cert(r, &verr);
    if (peer != NULL &&
        pki_name_to_text(X509_get_subject_name(peer), r->client, sizeof(r->client), NULL) != 0)
        snprintf(r->client, sizeof(r->client), "?");
}

static void dispatch(struct evhttp_request *req, struct est_server *srv, int plain)
{
    struct est_req r;
    memset(&r, 0, sizeof(r));
    clock_gettime(CLOCK_MONOTONIC, &r.start);
    r.srv = srv;
    r.req = req;
    r.label = -1;
    r.plain = plain;
    r.path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    peer_address(&r);
    if (!plain)
        note_client(&r);
    long retry = 1;
    double now = (double)r.start.tv_sec + (double)r.start.tv_nsec / 1e9;
    /* The revocation feed is not counted: every gateway asks again right after each answer,
     * so a host or NAT with many gateways would be throttled back into CRL polling at each
     * revocation; held feed requests have their own bound (feed.c). */
    bool feed = !plain && r.path != NULL && strcmp(r.path, "/revocations") == 0;
    if (!feed && !est_ratelimit_take(r.srv->rl, r.peer, now, &retry)) {
        char secs[24];
        snprintf(secs, sizeof(secs), "%ld", retry);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", secs);
        est_reply_text(&r, 429, "too many requests from this address; slow down");
        return;
    }
    if (r.path == NULL) {
        est_reply_text(&r, 400, "bad request path");
        return;
    }
    const struct est_ext *ext = plain ? NULL : est_ext_lookup(srv->opts, r.path);
    if (ext != NULL) {
        ext->run(ext->arg, &r);
        return;
    }
    int est = strncmp(r.path, EST_PREFIX, strlen(EST_PREFIX)) == 0;
    const struct route *rt = est ? lookup_est(&r, r.path + strlen(EST_PREFIX))
                                 : lookup(top_routes, r.path, &r.tail);
    if (plain && rt != NULL && !rt->plain) {
        est_reply_text(&r, 404,
                       est ? "not found: EST is served over HTTPS only (RFC 7030 3.2)"
                           : "not found: plain HTTP serves /crl, /ocsp, /ca.crt and /chain.pem");
        return;
    }
    /* "/ocsp" (POST) and "/ocsp/..." (GET) share a handler but not a method. */
    if (rt == NULL) {
        est_reply_text(&r, 404, "not found");
        return;
    }
    if (!(rt->methods & (int)evhttp_request_get_command(req))) {
        not_allowed(&r, rt->methods);
        return;
    }
    rt->run(&r);
}

void est_dispatch(struct evhttp_request *req, void *arg)
{
    dispatch(req, arg, 0);
}

void est_dispatch_plain(struct evhttp_request *req, void *arg)
{
    dispatch(req, arg, 1);
}
