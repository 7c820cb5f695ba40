/* The HTTP/1.1 response reader (see http_resp.h). Fields are collected into one text buffer
 * with offsets (the buffer may move as it grows), filtered, lower-cased and handed over as a
 * header list once the head (or the trailer section) is complete. */
#include "gateway/http_resp.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "util/buf.h"

struct name {
    const char *text;
    size_t len;
};
#define NAME(t) {t, sizeof(t) - 1}

/* RFC 9113 §8.2.2: connection-specific fields never cross into HTTP/2. */
static const struct name hop_by_hop[] = {
    NAME("connection"), NAME("keep-alive"), NAME("proxy-connection"),
    NAME("transfer-encoding"), NAME("upgrade"), NAME("te"),
};

/* Fields that frame a message: meaningless (and dangerous) in a trailer section. */
static const struct name not_in_trailers[] = {NAME("content-length"), NAME("host"),
                                              NAME("trailer")};

struct span {
    size_t name_off, name_len, val_off, val_len;
    bool drop;
};

struct gw_http_resp {
    http_parser p;
    struct gw_http_resp_cb cb;
    void *arg;
    bool head_request;
    struct tw_buf text;
    size_t n;
    enum { CB_NONE, CB_FIELD, CB_VALUE } last;
    bool in_trailers;
    bool started, done, stopped, keep_alive;
    bool extra; /* bytes were fed after the end */
    const char *reason;
    /* Last and never zeroed (14 kB, written before read: entries below n only). */
    struct span fields[GW_HTTP_RESP_MAX_FIELDS];
    struct gw_hdr list[GW_HTTP_RESP_MAX_FIELDS];
};

static int fail(struct gw_http_resp *r, const char *reason)
{
    if (r->reason == NULL)
        r->reason = reason;
    return -1;
}

static int store(struct gw_http_resp *r, const char *at, size_t n)
{
    struct tw_err err;
    if (tw_buf_append(&r->text, at, n, &err) != 0)
        return fail(r, "response head too large");
    return 0;
}

static void reset_fields(struct gw_http_resp *r)
{
    r->text.len = 0;
    r->n = 0;
    r->last = CB_NONE;
}

static int on_message_begin(http_parser *p)
{
    reset_fields(p->data);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_http_resp *r = p->data;
    if (r->last != CB_FIELD) {
        if (r->n == GW_HTTP_RESP_MAX_FIELDS)
            return fail(r, "too many response header fields");
        r->fields[r->n++] = (struct span){.name_off = r->text.len};
    }
    r->last = CB_FIELD;
    r->fields[r->n - 1].name_len += n;
    return store(r, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_http_resp *r = p->data;
    if (r->n == 0)
        return fail(r, "malformed response");
    struct span *f = &r->fields[r->n - 1];
    if (r->last != CB_VALUE)
        f->val_off = r->text.len;
    r->last = CB_VALUE;
    f->val_len += n;
    return store(r, at, n);
}

static bool span_in(const char *s, size_t n, const struct name *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (names[i].len == n && strncasecmp(s, names[i].text, n) == 0)
            return true;
    return false;
}

/* Names listed by Connection are connection-specific too (RFC 9110 §7.6.1). */
static void drop_listed(struct gw_http_resp *r, const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        for (size_t k = 0; k < r->n && i > start; k++) {
            struct span *f = &r->fields[k];
            if (f->name_len == i - start &&
                strncasecmp((const char *)r->text.data + f->name_off, v + start, i - start) == 0)
                f->drop = true;
        }
    }
}

/* Filter, lower-case and list the collected fields; trim trailing whitespace of values and
 * refuse control characters (a value must never carry a line break into another codec). */
static int build_list(struct gw_http_resp *r, size_t *count)
{
    char *t = (char *)r->text.data;
    for (size_t i = 0; i < r->n; i++) {
        struct span *f = &r->fields[i];
        const char *name = t + f->name_off;
        if (f->name_len == 0)
            return fail(r, "malformed response");
        if (span_in(name, f->name_len, hop_by_hop, sizeof(hop_by_hop) / sizeof(hop_by_hop[0])))
            f->drop = true;
        if (r->in_trailers &&
            span_in(name, f->name_len, not_in_trailers,
                    sizeof(not_in_trailers) / sizeof(not_in_trailers[0])))
            f->drop = true;
        if (f->name_len == 10 && strncasecmp(name, "connection", 10) == 0)
            drop_listed(r, t + f->val_off, f->val_len);
    }
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        struct span *f = &r->fields[i];
        if (f->drop)
            continue;
        for (size_t k = 0; k < f->name_len; k++)
            if (t[f->name_off + k] >= 'A' && t[f->name_off + k] <= 'Z') /* ASCII only */
                t[f->name_off + k] = (char)(t[f->name_off + k] - 'A' + 'a');
        while (f->val_len > 0 &&
               (t[f->val_off + f->val_len - 1] == ' ' || t[f->val_off + f->val_len - 1] == '\t'))
            f->val_len--;
        for (size_t k = 0; k < f->val_len; k++) {
            unsigned char c = (unsigned char)t[f->val_off + k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return fail(r, "control character in a response header");
        }
        r->list[n++] = (struct gw_hdr){t + f->name_off, f->name_len, t + f->val_off, f->val_len};
    }
    *count = n;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct gw_http_resp *r = p->data;
    if (p->status_code == 101)
        return fail(r, "unexpected 101 response");
    /* RFC 9110 §15: three digits from 100. http-parser reads "099" as a status with a body
     * up to EOF, which the final response would be mistaken for. */
    if (p->status_code < 100)
        return fail(r, "malformed status code");
    if (p->status_code < 200)
        return 0; /* interim: skipped, the final response follows */
    size_t n;
    if (build_list(r, &n) != 0)
        return -1;
    r->started = true;
    if (r->cb.head(r->arg, (int)p->status_code, r->list, n) != 0)
        return fail(r, "stopped");
    /* 1: no body follows (http-parser's convention) for the answer to a HEAD request. */
    return r->head_request ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_http_resp *r = p->data;
    if (!r->started)
        return fail(r, "malformed response"); /* a body before any final status line */
    if (r->cb.body(r->arg, (const uint8_t *)at, n) != 0)
        return fail(r, "stopped");
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    struct gw_http_resp *r = p->data;
    if (p->content_length == 0) {
        reset_fields(r);
        r->in_trailers = true;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct gw_http_resp *r = p->data;
    if (!r->started) {
        reset_fields(r); /* a 1xx ended: the next message is the real response */
        return 0;
    }
    if (r->in_trailers && r->n > 0) {
        size_t n;
        if (build_list(r, &n) != 0)
            return -1;
        if (n > 0 && r->cb.trailers(r->arg, r->list, n) != 0)
            return fail(r, "stopped");
    }
    r->done = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    if (r->cb.end(r->arg) != 0)
        return fail(r, "stopped");
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* A reader's text above this is released when it starts over (a big head is rare). */
#define KEEP_TEXT_BYTES 4096

static void init(struct gw_http_resp *r, const struct gw_http_resp_cb *cb, void *arg,
                 bool head_request)
{
    struct tw_buf text = r->text;
    memset(r, 0, offsetof(struct gw_http_resp, fields));
    r->cb = *cb;
    r->arg = arg;
    r->head_request = head_request;
    r->text = text;
    r->text.len = 0;
    http_parser_init(&r->p, HTTP_RESPONSE);
    r->p.data = r;
}

struct gw_http_resp *gw_http_resp_new(const struct gw_http_resp_cb *cb, void *arg,
                                      bool head_request, struct tw_err *err)
{
    struct gw_http_resp *r = malloc(sizeof(*r));
    TW_ENSURE_PTR(r != NULL, err, TW_ERR_INTERNAL, "out of memory");
    tw_buf_init(&r->text, GW_HTTP_RESP_MAX_BYTES);
    init(r, cb, arg, head_request);
    return r;
}

void gw_http_resp_reset(struct gw_http_resp *r, const struct gw_http_resp_cb *cb, void *arg,
                        bool head_request)
{
    if (r->text.cap > KEEP_TEXT_BYTES)
        tw_buf_free(&r->text);
    init(r, cb, arg, head_request);
}

void gw_http_resp_free(struct gw_http_resp *r)
{
    if (r == NULL)
        return;
    tw_buf_free(&r->text);
    free(r);
}

int gw_http_resp_feed(struct gw_http_resp *r, const void *data, size_t len)
{
    if (r->reason != NULL)
        return -1;
    if (r->done || len == 0) {
        r->extra = r->extra || len > 0;
        return 0;
    }
    size_t got = http_parser_execute(&r->p, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
    if (e == HPE_PAUSED && r->done) {
        r->extra = got < len;
        return 0;
    }
    if (e != HPE_OK)
        return fail(r, e == HPE_HEADER_OVERFLOW ? "response head too large"
                                                : "malformed response");
    if (got != len)
        return fail(r, "malformed response");
    return 0;
}

int gw_http_resp_eof(struct gw_http_resp *r)
{
    if (r->done)
        return 0;
    if (r->reason != NULL)
        return -1;
    /* A body delimited by the close ends here; anything else was cut short. */
    (void)http_parser_execute(&r->p, &settings, NULL, 0);
    if (r->done)
        return 0;
    return fail(r, "response cut short");
}

bool gw_http_resp_started(const struct gw_http_resp *r)
{
    return r->started;
}

bool gw_http_resp_done(const struct gw_http_resp *r)
{
    return r->done;
}

bool gw_http_resp_keep_alive(const struct gw_http_resp *r)
{
    return r->done && r->keep_alive && !r->extra;
}

const char *gw_http_resp_reason(const struct gw_http_resp *r)
{
    return r->reason != NULL ? r->reason : "";
}
