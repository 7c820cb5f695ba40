/* One HTTP/2 request stream (see h2.h): the request as nghttp2 validated it, checked with the
 * same rules as an HTTP/1.1 client's request and kept as a header list for the backend side:
 *   - identity: the client's copies of the identity headers are dropped
 *     (gw_http_name_stripped) and the connection's verified identity lines are added by the
 *     backend side;
 *   - :authority (or Host) must name the SNI-selected service where the listener is shared
 *     (gw_http_host_allowed), else 421 (RFC 9110 §15.5.20), as for HTTP/1.1;
 *   - max-header-bytes / max-headers over the decoded header list: 431;
 *   - CONNECT: 400; anything nghttp2 finds malformed: RST_STREAM PROTOCOL_ERROR.
 * The response, whichever backend side made it, goes back through nghttp2's flow control from
 * s->body; a status of the gateway's own (400, 421, 431, 502, 504) is an HTTP/2 response on
 * the stream, or RST_STREAM once a response has begun (RFC 9113 §8.1). */
#include "gateway/h2.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/err.h>

#include "gateway/http_resp.h"
#include "util/log.h"

/* ---- header lists --------------------------------------------------------------------------- */

int gw_nvlist_add(struct gw_nvlist *l, const char *name, size_t nlen, const char *value,
                  size_t vlen)
{
    size_t need = nlen + vlen + 2;
    if (l->used + need > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->used + need)
            cap *= 2;
        char *grown = realloc(l->buf, cap);
        if (grown == NULL)
            return -1;
        /* Re-point the entries into the moved storage. */
        for (size_t i = 0; i < l->n; i++) {
            l->nv[i].name = (uint8_t *)grown + ((char *)l->nv[i].name - l->buf);
            l->nv[i].value = (uint8_t *)grown + ((char *)l->nv[i].value - l->buf);
        }
        l->buf = grown;
        l->cap = cap;
    }
    if (l->n == l->cap_n) {
        size_t cap_n = l->cap_n ? l->cap_n * 2 : 16;
        nghttp2_nv *grown = realloc(l->nv, cap_n * sizeof(*grown));
        if (grown == NULL)
            return -1;
        l->nv = grown;
        l->cap_n = cap_n;
    }
    char *p = l->buf + l->used;
    memcpy(p, name, nlen);
    p[nlen] = '\0';
    memcpy(p + nlen + 1, value, vlen);
    p[nlen + 1 + vlen] = '\0';
    l->nv[l->n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + nlen + 1, nlen, vlen,
                                 NGHTTP2_NV_FLAG_NONE};
    l->used += need;
    return 0;
}

void gw_nvlist_clear(struct gw_nvlist *l)
{
    l->used = 0;
    l->n = 0;
}

void gw_nvlist_free(struct gw_nvlist *l)
{
    free(l->buf);
    free(l->nv);
    memset(l, 0, sizeof(*l));
}

/* ---- lifetime ------------------------------------------------------------------------------- */

/* Streams kept per worker for reuse: enough for the churn of many streams in flight (a stream
 * closed is mostly taken again within the same loop turn), small against the memory of the
 * connections (a kept stream holds about 16 kB, most of it the response reader's tables).
 * Under AddressSanitizer (TW_ASAN) none are kept, so a stale pointer to a closed stream is
 * reported as a use after free instead of silently reaching the stream that reused it. */
#ifdef TW_ASAN
static const size_t spares_max = 0;
#else
static const size_t spares_max = 128;
#endif
/* A header list that grew past this is freed rather than kept with its stream. */
#define KEEP_LIST_BYTES 4096

const struct gw_svc *gw_h2_stream_svc(const struct gw_h2_stream *s)
{
    return s->h->c->svc;
}

static void destroy(struct gw_h2_stream *s)
{
    if (s->timer != NULL)
        event_free(s->timer);
    if (s->rd != NULL)
        event_free(s->rd);
    if (s->cookie != NULL)
        evbuffer_free(s->cookie);
    if (s->body != NULL)
        evbuffer_free(s->body);
    if (s->req_body != NULL)
        evbuffer_free(s->req_body);
    gw_nvlist_free(&s->pseudo);
    gw_nvlist_free(&s->fields);
    gw_nvlist_free(&s->trailers);
    gw_nvlist_free(&s->up_head);
    gw_nvlist_free(&s->rtrail);
    gw_http_resp_free(s->resp_mem);
    free(s);
}

static struct gw_h2_stream *take_spare(struct gw_worker *w)
{
    struct gw_h2_stream *s = w->h2_spare;
    if (s != NULL) {
        w->h2_spare = s->next;
        w->h2_spare_len--;
        return s;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cookie = evbuffer_new();
    s->body = evbuffer_new();
    s->req_body = evbuffer_new();
    if (s->cookie == NULL || s->body == NULL || s->req_body == NULL) {
        destroy(s);
        return NULL;
    }
    return s;
}

static void empty_list(struct gw_nvlist *l)
{
    if (l->cap > KEEP_LIST_BYTES)
        gw_nvlist_free(l);
    else
        gw_nvlist_clear(l);
}

/* Empty the kept storage and keep the stream for the worker's next one (or free it). */
static void recycle(struct gw_h2_stream *s)
{
    struct gw_worker *w = s->h->c->w;
    if (w->h2_spare_len >= spares_max) {
        destroy(s);
        return;
    }
    if (s->timer != NULL)
        evtimer_del(s->timer);
    if (s->rd != NULL)
        event_del(s->rd);
    evbuffer_drain(s->cookie, evbuffer_get_length(s->cookie));
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    evbuffer_drain(s->req_body, evbuffer_get_length(s->req_body));
    empty_list(&s->pseudo);
    empty_list(&s->fields);
    empty_list(&s->trailers);
    empty_list(&s->up_head);
    empty_list(&s->rtrail);
    s->next = w->h2_spare;
    w->h2_spare = s;
    w->h2_spare_len++;
}

void gw_h2_spares_free(struct gw_worker *w)
{
    while (w->h2_spare != NULL) {
        struct gw_h2_stream *s = w->h2_spare;
        w->h2_spare = s->next;
        destroy(s);
    }
    w->h2_spare_len = 0;
}

struct gw_h2_stream *gw_h2_stream_new(struct gw_h2 *h, int32_t id)
{
    struct gw_h2_stream *s = take_spare(h->c->w);
    if (s == NULL)
        return NULL;
    /* Everything but the kept storage starts from zero, as from calloc. */
    memset(s, 0, offsetof(struct gw_h2_stream, pseudo));
    s->h = h;
    s->id = id;
    s->detail = "";
    s->started_ms = gw_now_ms();
    s->next = h->streams;
    if (h->streams != NULL)
        h->streams->prev = s;
    h->streams = s;
    h->nstreams++;
    return s;
}

struct event *gw_h2_stream_timer(struct gw_h2_stream *s, event_callback_fn cb)
{
    struct event_base *base = s->h->c->w->base;
    if (s->timer == NULL)
        return s->timer = evtimer_new(base, cb, s);
    if (event_get_callback(s->timer) != cb) {
        evtimer_del(s->timer);
        if (evtimer_assign(s->timer, base, cb, s) != 0)
            return NULL;
    }
    return s->timer;
}

void gw_h2_stream_free(struct gw_h2_stream *s)
{
    struct gw_h2 *h = s->h;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    h->nstreams--;
    if (h->sess != NULL) {
        (void)nghttp2_session_set_stream_user_data(h->sess, s->id, NULL);
        /* Request bytes never passed on still count against the client's connection window. */
        size_t owed = evbuffer_get_length(s->req_body) + s->unconsumed;
        if (owed > 0)
            (void)nghttp2_session_consume_connection(h->sess, owed);
    }
    gw_h2_h1_stop(s);
    gw_h2_up_stop(s);
    recycle(s);
}

/* ---- request headers ------------------------------------------------------------------------ */

static void refuse(struct gw_h2_stream *s, int status, const char *why)
{
    if (s->refuse == 0) {
        s->refuse = status;
        s->detail = why;
    }
}

static bool name_is(const uint8_t *n, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(n, want, len) == 0;
}

/* :method, :path, :authority or Host, kept in one list of the stream's (no allocation of its
 * own per request); anything else is left alone (:scheme: the backend is reached by its own
 * scheme). A repeated field counts by its last value. */
static int keep_pseudo(struct gw_h2_stream *s, const uint8_t *n, size_t nlen, const uint8_t *v,
                       size_t vlen)
{
    const char **slots[] = {&s->method, &s->path, &s->authority, &s->host};
    size_t which = name_is(n, nlen, ":method")      ? 0
                   : name_is(n, nlen, ":path")      ? 1
                   : name_is(n, nlen, ":authority") ? 2
                   : name_is(n, nlen, "host")       ? 3
                                                    : 4;
    if (which == 4)
        return 0;
    /* The list's storage may move: the values taken before are re-pointed by offset. */
    size_t off[4];
    for (size_t i = 0; i < 4; i++)
        off[i] = *slots[i] != NULL ? (size_t)(*slots[i] - s->pseudo.buf) : SIZE_MAX;
    TW_GUARD(gw_nvlist_add(&s->pseudo, (const char *)n, nlen, (const char *)v, vlen));
    for (size_t i = 0; i < 4; i++)
        if (off[i] != SIZE_MAX)
            *slots[i] = s->pseudo.buf + off[i];
    *slots[which] = (const char *)s->pseudo.nv[s->pseudo.n - 1].value;
    return 0;
}

void gw_h2_stream_header(struct gw_h2_stream *s, const uint8_t *name, size_t nlen,
                         const uint8_t *value, size_t vlen, bool trailer)
{
    const struct gw_service *cfg = gw_h2_stream_svc(s)->cfg;
    /* RFC 9113 §6.5.2: the size of a field is its name, its value and 32 bytes. */
    s->hdr_bytes += nlen + vlen + 32;
    s->n_hdrs++;
    if (s->hdr_bytes > cfg->limits.max_header_bytes + 32 * (size_t)cfg->limits.max_headers)
        refuse(s, 431, "header list too large");
    if (s->n_hdrs > cfg->limits.max_headers + 4) /* the pseudo-header fields besides */
        refuse(s, 431, "too many header fields");
    if (s->refuse != 0)
        return; /* keep nothing more of a refused request */
    if (nlen > 0 && name[0] == ':') {
        if (!trailer && keep_pseudo(s, name, nlen, value, vlen) != 0)
            refuse(s, 500, "out of memory");
        return;
    }
    if (gw_http_name_stripped(NULL, 0, (const char *)name, nlen))
        return;
    if (gw_http_name_mimics_te((const char *)name, nlen)) {
        refuse(s, 400, "header name begins with Transfer-Encoding");
        return;
    }
    if (name_is(name, nlen, "te")) {
        s->te_trailers = true; /* nghttp2 let through only "trailers" (RFC 9113 §8.2.2) */
        return;
    }
    int rc = 0;
    if (trailer) {
        if (!name_is(name, nlen, "content-length") && !name_is(name, nlen, "host"))
            rc = gw_nvlist_add(&s->trailers, (const char *)name, nlen, (const char *)value,
                               vlen);
    } else if (name_is(name, nlen, "host")) {
        rc = keep_pseudo(s, name, nlen, value, vlen);
    } else if (name_is(name, nlen, "cookie")) {
        rc = (evbuffer_get_length(s->cookie) > 0 && evbuffer_add(s->cookie, "; ", 2) != 0) ||
                     evbuffer_add(s->cookie, value, vlen) != 0
                 ? -1
                 : 0;
    } else {
        /* nghttp2 has checked the name is a lower-case token and the value holds no CR, LF
         * or NUL (RFC 9113 §8.2.1): neither codec can be made to split it. */
        rc = gw_nvlist_add(&s->fields, (const char *)name, nlen, (const char *)value, vlen);
    }
    if (rc != 0)
        refuse(s, 500, "out of memory");
}

/* ---- responses ------------------------------------------------------------------------------ */

static const char *status_text(int status)
{
    switch (status) {
    case 400:
        return "400 Bad Request\n";
    case 421:
        return "421 Misdirected Request\n";
    case 431:
        return "431 Request Header Fields Too Large\n";
    case 502:
        return "502 Bad Gateway\n";
    case 504:
        return "504 Gateway Timeout\n";
    default:
        return "500 Internal Server Error\n";
    }
}

static ssize_t read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src;
    (void)ud;
    struct gw_h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = evbuffer_get_length(s->body);
    if (n > len)
        n = len;
    if (n > 0 && evbuffer_remove(s->body, buf, n) != (int)n)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->bytes_out += n;
    gw_h2_h1_drained(s);
    if (n > 0)
        gw_h2_up_consumed(s, n);
    if (s->resp_end && evbuffer_get_length(s->body) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->rtrail.n > 0 && nghttp2_submit_trailer(sess, id, s->rtrail.nv, s->rtrail.n) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return (ssize_t)n;
    }
    if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

int gw_h2_stream_respond(struct gw_h2_stream *s, int status, const nghttp2_nv *nv, size_t n,
                         bool end)
{
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    s->status = status;
    s->submitted = true;
    s->resp_end = s->resp_end || end;
    return nghttp2_submit_response(s->h->sess, s->id, nv, n, end ? NULL : &prd) == 0 ? 0 : -1;
}

static void wake(struct gw_h2_stream *s)
{
    if (s->deferred) {
        s->deferred = false;
        (void)nghttp2_session_resume_data(s->h->sess, s->id);
    }
}

int gw_h2_stream_body(struct gw_h2_stream *s, const uint8_t *data, size_t len)
{
    if (evbuffer_add(s->body, data, len) != 0)
        return -1;
    wake(s);
    return 0;
}

void gw_h2_stream_done(struct gw_h2_stream *s)
{
    s->resp_end = true;
    wake(s);
}

void gw_h2_stream_error(struct gw_h2_stream *s, int status, const char *why)
{
    struct gw_h2 *h = s->h;
    s->detail = why;
    if (s->submitted) {
        /* Too late for a status: the response has begun. RFC 9113 §8.1: reset the stream. */
        (void)nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
        return;
    }
    const char *text = status_text(status);
    char code[4], clen[24];
    snprintf(code, sizeof(code), "%d", status);
    snprintf(clen, sizeof(clen), "%zu", strlen(text));
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    gw_nvlist_clear(&s->rtrail);
    (void)evbuffer_add(s->body, text, strlen(text));
    s->resp_end = true;
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)code, 7, strlen(code), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen), NGHTTP2_NV_FLAG_NONE},
    };
    if (gw_h2_stream_respond(s, status, nv, 3, false) != 0)
        (void)nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
}

/* ---- the request, to the backend side -------------------------------------------------------- */

void gw_h2_stream_head_done(struct gw_h2_stream *s, bool end)
{
    struct gw_h2 *h = s->h;
    s->ended = end;
    if (s->refuse == 0 && s->method != NULL && strcmp(s->method, "CONNECT") == 0)
        refuse(s, 400, "CONNECT is not allowed");
    const char *authority = s->authority != NULL ? s->authority : s->host;
    if (s->refuse == 0 && (authority == NULL || authority[0] == '\0'))
        refuse(s, 400, "missing :authority");
    if (s->refuse == 0 && h->n_hosts > 0 &&
        !gw_http_host_allowed(h->hosts, h->n_hosts, authority, strlen(authority)))
        refuse(s, 421, ":authority does not match the service");
    if (s->refuse == 0 && (s->method == NULL || s->path == NULL))
        refuse(s, 400, "missing :method or :path");
    if (s->refuse != 0) {
        gw_h2_stream_error(s, s->refuse, s->detail);
        return;
    }
    struct tw_err err;
    bool up = gw_h2_up_wanted(gw_h2_stream_svc(s));
    if ((up ? gw_h2_up_start(s, authority, &err) : gw_h2_h1_start(s, authority, &err)) != 0) {
        ERR_clear_error();
        gw_stat_add(&h->c->w->stats.backend_errors, 1);
        gw_h2_h1_stop(s);
        gw_h2_stream_error(s, 502, "backend connection failed");
        log_warnx("client %s stream %d: %s", h->c->peer_text, (int)s->id, err.msg);
    }
}

void gw_h2_stream_data(struct gw_h2_stream *s, const uint8_t *data, size_t len)
{
    s->bytes_in += len;
    if (s->up_id > 0 || s->up_wait)
        gw_h2_up_data(s, data, len);
    else if (s->bev != NULL)
        gw_h2_h1_data(s, data, len);
    else /* refused or failed: the bytes go nowhere */
        (void)nghttp2_session_consume(s->h->sess, s->id, len);
}

void gw_h2_stream_end(struct gw_h2_stream *s)
{
    s->ended = true;
    if (s->up_id > 0 || s->up_wait)
        gw_h2_up_end(s);
    else if (s->bev != NULL)
        gw_h2_h1_end(s);
}

void gw_h2_stream_closed(struct gw_h2_stream *s, uint32_t error_code)
{
    struct gw_req_log r = {
        .stream = s->id,
        .method = s->method,
        .path = s->path,
        .authority = s->authority != NULL ? s->authority : s->host,
        .status = s->submitted ? s->status : 0,
        .detail = s->detail,
        .reset = error_code,
        .bytes_in = s->bytes_in,
        .bytes_out = s->bytes_out,
        .started_ms = s->started_ms,
    };
    gw_access_log_request(s->h->c, &r);
    gw_h2_stream_free(s);
}
