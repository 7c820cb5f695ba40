/* The metrics listener: plain HTTP on the main thread's event_base. /metrics is Prometheus
 * text summed over the workers' counters (relaxed atomics, no locks); /healthz says whether
 * the gateway is serving or draining. */
#include "gateway/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "gateway/revocation.h"
#include "util/buf.h"
#include "util/log.h"

#define METRICS_BODY_MAX (4u * 1024 * 1024)

const char *gw_reason_code(int reason)
{
    if (reason == GW_R_TIMEOUT)
        return "timeout";
    if (reason == GW_R_LIMIT)
        return "max-connections";
    if (reason == GW_R_BACKEND)
        return "backend-error";
    if (reason < 0 || reason > TLSX_R_OTHER)
        return "unknown";
    return tlsx_reason_code((enum tlsx_reason)reason);
}

static uint64_t sum(const struct gw_server *srv, size_t offset)
{
    uint64_t total = 0;
    for (size_t i = 0; i < srv->nworkers; i++) {
        const char *base = (const char *)&srv->workers[i].stats;
        total += atomic_load_explicit((atomic_uint_fast64_t *)(uintptr_t)(base + offset),
                                      memory_order_relaxed);
    }
    return total;
}

#define SUM(srv, field) sum((srv), offsetof(struct gw_stats, field))

/* Prometheus label value: backslash, double quote and newline escaped. */
static void label(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; in != NULL && *in != '\0' && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static int64_t expiry_in(X509 *cert, time_t now)
{
    int days = 0, secs = 0;
    ASN1_TIME *t = ASN1_TIME_new();
    if (t == NULL || ASN1_TIME_set(t, now) == NULL ||
        ASN1_TIME_diff(&days, &secs, t, X509_get0_notAfter(cert)) != 1) {
        ASN1_TIME_free(t);
        return 0;
    }
    ASN1_TIME_free(t);
    return (int64_t)days * 86400 + secs;
}

static int write_expiry(struct tw_buf *b, const struct gw_gen *gen, struct tw_err *err)
{
    time_t now = time(NULL);
    char name[128], subj[512];
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_cert_expiry_seconds Seconds until a certificate "
                            "the gateway uses expires (negative: expired).\n"
                            "# TYPE twoway_cert_expiry_seconds gauge\n"));
    for (size_t i = 0; i < gen->nsvcs; i++) {
        const struct gw_svc *s = &gen->svcs[i];
        label(name, sizeof(name), s->cfg->name);
        if (s->server_cert != NULL) {
            char *dn = X509_NAME_oneline(X509_get_subject_name(s->server_cert), NULL, 0);
            label(subj, sizeof(subj), dn);
            OPENSSL_free(dn);
            TW_GUARD(tw_buf_appendf(b, err,
                                    "twoway_cert_expiry_seconds{service=\"%s\",kind=\"server\","
                                    "subject=\"%s\"} %lld\n",
                                    name, subj, (long long)expiry_in(s->server_cert, now)));
        }
        for (int k = 0; s->cas != NULL && k < sk_X509_num(s->cas); k++) {
            X509 *ca = sk_X509_value(s->cas, k);
            char *dn = X509_NAME_oneline(X509_get_subject_name(ca), NULL, 0);
            label(subj, sizeof(subj), dn);
            OPENSSL_free(dn);
            TW_GUARD(tw_buf_appendf(b, err,
                                    "twoway_cert_expiry_seconds{service=\"%s\",kind=\"client-ca\","
                                    "subject=\"%s\"} %lld\n",
                                    name, subj, (long long)expiry_in(ca, now)));
        }
    }
    return 0;
}

/* Seconds until the earliest nextUpdate of each service's CRLs (negative: a CRL is stale). */
static int write_crl_freshness(struct tw_buf *b, const struct gw_gen *gen, struct tw_err *err)
{
    int64_t now = (int64_t)time(NULL);
    char name[128];
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_crl_next_update_seconds Seconds until the earliest "
                            "CRL nextUpdate of a service (negative: stale).\n"
                            "# TYPE twoway_crl_next_update_seconds gauge\n"));
    for (size_t i = 0; i < gen->nsvcs; i++) {
        const struct gw_svc *s = &gen->svcs[i];
        int64_t next = tlsx_crl_set_next_update(s->crls);
        if (next == 0)
            continue;
        label(name, sizeof(name), s->cfg->name);
        TW_GUARD(tw_buf_appendf(b, err, "twoway_crl_next_update_seconds{service=\"%s\"} %lld\n",
                                name, (long long)(next - now)));
    }
    return 0;
}

static int write_handshakes(struct tw_buf *b, const struct gw_server *srv, struct tw_err *err)
{
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_handshakes_total Client handshakes by result and "
                            "reason.\n# TYPE twoway_handshakes_total counter\n"));
    for (int r = 0; r < GW_R_COUNT; r++) {
        uint64_t n = sum(srv, offsetof(struct gw_stats, handshakes) +
                                  (size_t)r * sizeof(atomic_uint_fast64_t));
        TW_GUARD(tw_buf_appendf(
            b, err, "twoway_handshakes_total{result=\"%s\",reason=\"%s\"} %llu\n",
            r == TLSX_R_OK ? "ok" : "fail", gw_reason_code(r), (unsigned long long)n));
    }
    return 0;
}

static int render(struct tw_buf *b, const struct gw_server *srv, struct tw_err *err)
{
    int active = 0;
    for (size_t i = 0; i < srv->nworkers; i++)
        active += atomic_load_explicit(&srv->workers[i].stats.active, memory_order_relaxed);
    TW_GUARD(write_handshakes(b, srv, err));
    TW_GUARD(tw_buf_appendf(
        b, err,
        "# HELP twoway_resumed_total Handshakes that resumed a session.\n"
        "# TYPE twoway_resumed_total counter\ntwoway_resumed_total %llu\n"
        "# HELP twoway_connections_total Connections accepted.\n"
        "# TYPE twoway_connections_total counter\ntwoway_connections_total %llu\n"
        "# HELP twoway_active_connections Connections open now.\n"
        "# TYPE twoway_active_connections gauge\ntwoway_active_connections %d\n"
        "# HELP twoway_bytes_total Bytes relayed (in: client to backend).\n"
        "# TYPE twoway_bytes_total counter\n"
        "twoway_bytes_total{direction=\"in\"} %llu\ntwoway_bytes_total{direction=\"out\"} %llu\n"
        "# HELP twoway_backend_errors_total Backend connects or responses that failed.\n"
        "# TYPE twoway_backend_errors_total counter\ntwoway_backend_errors_total %llu\n"
        "# HELP twoway_revoked_closed_total Live connections closed after a CRL reload.\n"
        "# TYPE twoway_revoked_closed_total counter\ntwoway_revoked_closed_total %llu\n"
        "# HELP twoway_reloads_total Configuration reloads by result.\n"
        "# TYPE twoway_reloads_total counter\n"
        "twoway_reloads_total{result=\"ok\"} %llu\ntwoway_reloads_total{result=\"failed\"} %llu\n"
        "# HELP twoway_config_generation Current configuration generation.\n"
        "# TYPE twoway_config_generation gauge\ntwoway_config_generation %llu\n",
        (unsigned long long)SUM(srv, resumed), (unsigned long long)SUM(srv, connections), active,
        (unsigned long long)SUM(srv, bytes_in), (unsigned long long)SUM(srv, bytes_out),
        (unsigned long long)SUM(srv, backend_errors), (unsigned long long)SUM(srv, revoked_closed),
        (unsigned long long)srv->reloads_ok, (unsigned long long)srv->reloads_failed,
        (unsigned long long)srv->gen->id));
    TW_GUARD(write_expiry(b, srv->gen, err));
    TW_GUARD(write_crl_freshness(b, srv->gen, err));
    return gw_revoc_metrics(b, srv, err);
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const void *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(out, body, len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct gw_server *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL)
        path = "/";
    if (strcmp(path, "/healthz") == 0) {
        if (srv->stopping)
            reply(req, 503, "Service Unavailable", "text/plain", "draining\n", 9);
        else
            reply(req, 200, "OK", "text/plain", "ok\n", 3);
        return;
    }
    if (strcmp(path, "/metrics") != 0) {
        reply(req, 404, "Not Found", "text/plain", "not found: try /metrics or /healthz\n", 36);
        return;
    }
    struct tw_buf b;
    struct tw_err err;
    tw_buf_init(&b, METRICS_BODY_MAX);
    if (render(&b, srv, &err) != 0) {
        log_warnx("metrics: %s", err.msg);
        reply(req, 500, "Internal Server Error", "text/plain", "error\n", 6);
    } else {
        reply(req, 200, "OK", "text/plain; version=0.0.4", b.data, b.len);
    }
    tw_buf_free(&b);
}

int gw_metrics_start(struct gw_server *srv, const struct gw_addr *addr, struct tw_err *err)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "metrics %s: socket", addr->text);
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 || listen(fd, 64) != 0) {
        tw_err_sys(err, TW_ERR_IO, "cannot listen on metrics address %s", addr->text);
        close(fd);
        return -1;
    }
    srv->metrics = evhttp_new(srv->base);
    if (srv->metrics == NULL || evhttp_accept_socket_with_handle(srv->metrics, fd) == NULL) {
        close(fd);
        return tw_err_set(err, TW_ERR_INTERNAL, "metrics %s: evhttp failed", addr->text);
    }
    evhttp_set_allowed_methods(srv->metrics, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(srv->metrics, 8192);
    evhttp_set_max_body_size(srv->metrics, 0);
    evhttp_set_timeout(srv->metrics, 10);
    evhttp_set_gencb(srv->metrics, on_request, srv);
    return 0;
}

void gw_metrics_stop(struct gw_server *srv)
{
    if (srv->metrics != NULL)
        evhttp_free(srv->metrics);
    srv->metrics = NULL;
}
