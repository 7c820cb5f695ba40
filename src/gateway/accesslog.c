/* One JSON line per connection (jansson), written whole under the log sink's lock. */
#include "gateway/internal.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <jansson.h>
#include <nghttp2/nghttp2.h>

#include "util/clock.h"
#include "util/log.h"

char *gw_addr_text(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    out[0] = '\0';
    if (sa == NULL || len < sizeof(sa_family_t)) {
        snprintf(out, cap, "-");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(out, cap, "unix");
    } else {
        snprintf(out, cap, "family-%d", sa->sa_family);
    }
    return out;
}

static void set_str(json_t *o, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0')
        json_object_set_new(o, key, json_string(value));
}

static void add_tls(json_t *o, const struct gw_conn *c)
{
    if (c->ssl == NULL || c->svc == NULL) /* svc is set once the handshake finished */
        return;
    set_str(o, "tls_version", SSL_get_version(c->ssl));
    set_str(o, "cipher", SSL_get_cipher_name(c->ssl));
    json_object_set_new(o, "resumed", json_boolean(c->resumed));
}

static void add_identity(json_t *o, const struct gw_conn *c)
{
    if (c->id == NULL)
        return;
    set_str(o, "subject", c->id->subject);
    set_str(o, "issuer", c->id->issuer);
    set_str(o, "serial", c->id->serial_hex);
    set_str(o, "sha256", c->id->sha256_hex);
}

/* The fields every line starts with; NULL when logging is off. */
static json_t *line_start(const struct gw_conn *c, FILE **fp)
{
    *fp = atomic_load_explicit(&c->w->srv->access, memory_order_acquire);
    if (*fp == NULL)
        return NULL;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    char stamp[32];
    set_str(o, "time", clock_iso8601(time(NULL), stamp, sizeof(stamp)));
    set_str(o, "service", c->svc != NULL ? c->svc->cfg->name : c->listen->svcs[0]->cfg->name);
    set_str(o, "listen", c->listen->cfg->addr.text);
    set_str(o, "client", c->peer_text);
    return o;
}

static void line_end(FILE *fp, json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line != NULL)
        log_line(fp, line);
    free(line);
    json_decref(o);
}

void gw_access_log_request(const struct gw_conn *c, const struct gw_req_log *r)
{
    FILE *fp;
    json_t *o = line_start(c, &fp);
    if (o == NULL)
        return;
    set_str(o, "protocol", "h2");
    json_object_set_new(o, "stream", json_integer(r->stream));
    add_identity(o, c);
    set_str(o, "method", r->method);
    set_str(o, "authority", r->authority);
    set_str(o, "path", r->path);
    if (r->status != 0)
        json_object_set_new(o, "status", json_integer(r->status));
    if (r->reset != 0)
        set_str(o, "reset", nghttp2_http2_strerror(r->reset));
    set_str(o, "detail", r->detail);
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)r->bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)r->bytes_out));
    json_object_set_new(o, "duration_ms", json_integer(gw_now_ms() - r->started_ms));
    line_end(fp, o);
}

void gw_access_log(const struct gw_conn *c, const char *why)
{
    FILE *fp;
    json_t *o = line_start(c, &fp);
    if (o == NULL)
        return;
    set_str(o, "sni", gw_conn_sni(c));
    add_tls(o, c);
    add_identity(o, c);
    set_str(o, "verdict", c->verdict);
    set_str(o, "reason", c->reason >= 0 ? gw_reason_code(c->reason) : "closed");
    set_str(o, "detail", c->detail);
    set_str(o, "close", why);
    if (c->http_status != 0)
        json_object_set_new(o, "http_status", json_integer(c->http_status));
    if (c->http != NULL)
        json_object_set_new(o, "requests", json_integer((json_int_t)gw_http_requests(c->http)));
    if (c->h2 != NULL) {
        set_str(o, "protocol", "h2");
        json_object_set_new(o, "requests", json_integer((json_int_t)gw_h2_requests(c->h2)));
    }
    json_object_set_new(o, "bytes_in", json_integer((json_int_t)c->bytes_in));
    json_object_set_new(o, "bytes_out", json_integer((json_int_t)c->bytes_out));
    json_object_set_new(o, "duration_ms", json_integer(gw_now_ms() - c->started_ms));
    line_end(fp, o);
}
