/* The HTTP request-stream processor (see http.h for the contract).
 *
 * How one chunk of client bytes is handled:
 *   HEAD  a small scanner finds where the request head ends (the first empty line), rejects
 *         obs-fold lines and counts the head against its limit; exactly those bytes go through
 *         http-parser, whose callbacks collect the request line and fields. When the head is
 *         complete it is checked (smuggling rules, Host) and rebuilt into the output with the
 *         identity headers removed and the connection's identity lines added.
 *   BODY  the rest goes through http-parser; body callbacks stream the body out as parsed
 *         (chunked bodies re-framed). The parser is paused in on_message_complete so that
 *         http_parser_execute returns exactly where the message ends; the next message starts
 *         in HEAD again.
 * Feeding the parser exactly the head bytes, and only re-emitting what it parsed, means the
 * backend frames each request the way the gateway did: nothing the client sent reaches the
 * backend without having been through the parser and the filter. */
#include "gateway/http.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "util/buf.h"

/* Built-in names that carry an identity: removed from every request whatever the config. */
static const char *const identity_headers[] = {
    "Client-Cert",
    "Client-Cert-Chain",
    "X-Forwarded-Client-Cert",
};

/* Fields that frame or route a message: never accepted from trailers. */
static const char *const not_in_trailers[] = {
    "Content-Length", "Transfer-Encoding", "Host", "Connection", "Upgrade", "Expect",
};

#define MAX_HEADERS_CAP 10000

enum state {
    ST_HEAD,     /* reading a request head */
    ST_BODY,     /* streaming a request body */
    ST_DISCARD,  /* after a request that closes the connection: ignore the rest */
    ST_TUNNEL,   /* an Upgrade was forwarded; the core relays raw bytes now */
    ST_REJECTED, /* status and reason are set */
};

/* Offsets into gw_http.text: stored as offsets because text may move when it grows. */
struct field {
    size_t name_off, name_len;
    size_t val_off, val_len;
    bool drop;
};

struct gw_http {
    http_parser parser;
    enum state state;

    const char *const *hosts;
    size_t n_hosts;
    const char *const *strip;
    size_t n_strip;
    char *inject;
    size_t inject_len;
    size_t max_header_bytes;
    size_t max_headers;

    /* The head (or trailer block) being parsed. */
    struct tw_buf text;
    size_t url_len;
    struct field *fields;
    size_t n_fields;
    enum { CB_NONE, CB_FIELD, CB_VALUE } last_cb;
    bool in_trailers;

    /* Head scanner. */
    size_t head_bytes;
    size_t line_len;
    bool seen_line;
    bool cr_pending;   /* the last head byte seen was CR */
    bool scan_end;     /* the chunk being parsed holds the end of the head */
    bool headers_done; /* http-parser agreed: on_headers_complete ran */

    bool message_done;
    bool keep_alive;
    bool tunnel;

    struct evbuffer *out; /* during gw_http_feed only */
    uint64_t requests;
    int status;
    const char *reason;
};

static int reject_cb(struct gw_http *h, int status, const char *reason)
{
    if (h->status == 0) {
        h->status = status;
        h->reason = reason;
    }
    return -1;
}

static bool name_is(const struct gw_http *h, const struct field *f, const char *name)
{
    return f->name_len == strlen(name) &&
           strncasecmp((const char *)h->text.data + f->name_off, name, f->name_len) == 0;
}

static bool span_is(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

bool gw_http_name_stripped(const char *const *strip, size_t n_strip, const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(identity_headers) / sizeof(identity_headers[0]); i++)
        if (span_is(name, len, identity_headers[i]))
            return true;
    for (size_t i = 0; i < n_strip; i++)
        if (strip[i] != NULL && span_is(name, len, strip[i]))
            return true;
    return false;
}

bool gw_http_name_mimics_te(const char *name, size_t len)
{
    static const char te[] = "Transfer-Encoding";
    return len > sizeof(te) - 1 && strncasecmp(name, te, sizeof(te) - 1) == 0;
}

/* A name the client may not send: the identity headers and the configured extras. */
static bool is_stripped(const struct gw_http *h, const char *s, size_t n)
{
    return gw_http_name_stripped(h->strip, h->n_strip, s, n);
}

static void reset_head(struct gw_http *h)
{
    h->text.len = 0;
    h->url_len = 0;
    h->n_fields = 0;
    h->last_cb = CB_NONE;
    h->in_trailers = false;
    h->head_bytes = 0;
    h->line_len = 0;
    h->seen_line = false;
    h->cr_pending = false;
    h->scan_end = false;
    h->headers_done = false;
    h->tunnel = false;
}

/* ---- http-parser callbacks: collect the head ---------------------------------------------- */

static int store(struct gw_http *h, const char *at, size_t n)
{
    struct tw_err err;
    if (tw_buf_append(&h->text, at, n, &err) != 0)
        return reject_cb(h, 431, "header block too large");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct gw_http *h = p->data;
    h->text.len = 0;
    h->url_len = 0;
    h->n_fields = 0;
    h->last_cb = CB_NONE;
    h->in_trailers = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct gw_http *h = p->data;
    h->url_len += n;
    return store(h, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct gw_http *h = p->data;
    if (h->last_cb != CB_FIELD) {
        if (h->n_fields == h->max_headers)
            return reject_cb(h, 431, "too many header fields");
        h->fields[h->n_fields++] = (struct field){.name_off = h->text.len};
    }
    h->last_cb = CB_FIELD;
    h->fields[h->n_fields - 1].name_len += n;
    return store(h, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct gw_http *h = p->data;
    if (h->n_fields == 0)
        return reject_cb(h, 400, "header value without a name");
    struct field *f = &h->fields[h->n_fields - 1];
    if (h->last_cb != CB_VALUE)
        f->val_off = h->text.len;
    h->last_cb = CB_VALUE;
    f->val_len += n;
    return store(h, at, n);
}

/* ---- checking fields ------------------------------------------------------------------------ */

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Trim trailing whitespace (http-parser already skips the leading) and check characters:
 * names are tokens; values are VCHAR, SP, HTAB or obs-text (RFC 9110 §5.5). */
static int check_field(struct gw_http *h, struct field *f)
{
    const unsigned char *name = h->text.data + f->name_off;
    const unsigned char *val = h->text.data + f->val_off;
    if (f->name_len == 0)
        return reject_cb(h, 400, "empty header name");
    for (size_t i = 0; i < f->name_len; i++)
        if (!is_tchar(name[i]))
            return reject_cb(h, 400, "bad character in a header name");
    while (f->val_len > 0 && (val[f->val_len - 1] == ' ' || val[f->val_len - 1] == '\t'))
        f->val_len--;
    for (size_t i = 0; i < f->val_len; i++)
        if ((val[i] < 0x20 && val[i] != '\t') || val[i] == 0x7f)
            return reject_cb(h, 400, "control character in a header value");
    return 0;
}

/* Does a Connection header list a name the gateway owns? A hop-by-hop listing would make a
 * downstream proxy drop the identity header the gateway adds. */
static bool connection_names_stripped(const struct gw_http *h, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (i > start && is_stripped(h, v + start, i - start))
            return true;
    }
    return false;
}

/* The Host check for an absolute-form target ("http://host:port/path"): its authority. */
static int check_absolute_target(struct gw_http *h)
{
    const char *url = (const char *)h->text.data;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, h->url_len, 0, &u) != 0)
        return reject_cb(h, 400, "malformed request target");
    if (!(u.field_set & (1 << UF_HOST)) || h->n_hosts == 0)
        return 0;
    size_t start = u.field_data[UF_HOST].off;
    size_t end = start + u.field_data[UF_HOST].len;
    if (start > 0 && url[start - 1] == '[' && end < h->url_len && url[end] == ']') {
        start--;
        end++;
    }
    if (u.field_set & (1 << UF_PORT))
        end = (size_t)u.field_data[UF_PORT].off + u.field_data[UF_PORT].len;
    if (!gw_http_host_allowed(h->hosts, h->n_hosts, url + start, end - start))
        return reject_cb(h, 421, "request target host does not match the service");
    return 0;
}

/* What the head says, gathered in one pass over the fields. */
struct head_facts {
    const struct field *host;
    size_t n_host, n_cl, n_te;
    const struct field *upgrade;
    size_t n_upgrade;
};

static int gather(struct gw_http *h, struct head_facts *hf)
{
    memset(hf, 0, sizeof(*hf));
    for (size_t i = 0; i < h->n_fields; i++) {
        struct field *f = &h->fields[i];
        TW_GUARD(check_field(h, f));
        const char *val = (const char *)h->text.data + f->val_off;
        const char *name = (const char *)h->text.data + f->name_off;
        f->drop = is_stripped(h, name, f->name_len);
        if (gw_http_name_mimics_te(name, f->name_len))
            return reject_cb(h, 400, "header name begins with Transfer-Encoding");
        if (name_is(h, f, "Host")) {
            hf->host = f;
            hf->n_host++;
        } else if (name_is(h, f, "Content-Length")) {
            hf->n_cl++;
        } else if (name_is(h, f, "Transfer-Encoding")) {
            hf->n_te++;
        } else if (name_is(h, f, "Upgrade")) {
            hf->upgrade = f;
            hf->n_upgrade++;
        } else if (name_is(h, f, "Connection") && connection_names_stripped(h, val, f->val_len)) {
            return reject_cb(h, 400, "Connection lists an identity header");
        }
    }
    return 0;
}

/* RFC 9112 §6.1-6.3 and §3.2: the framing and routing rules the gateway enforces itself. */
static int check_head(struct gw_http *h, const struct head_facts *hf)
{
    const http_parser *p = &h->parser;
    if (!h->scan_end)
        return reject_cb(h, 400, "malformed request head");
    if (p->method == HTTP_CONNECT)
        return reject_cb(h, 400, "CONNECT is not allowed");
    if (p->http_major != 1 || p->http_minor > 1)
        return reject_cb(h, 400, "unsupported HTTP version");
    if (hf->n_cl > 0 && hf->n_te > 0)
        return reject_cb(h, 400, "Content-Length with Transfer-Encoding");
    if (hf->n_cl > 1)
        return reject_cb(h, 400, "repeated Content-Length");
    if (hf->n_te > 0 && p->http_minor == 0)
        return reject_cb(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (hf->n_te > 0 && !(p->flags & F_CHUNKED))
        return reject_cb(h, 400, "Transfer-Encoding does not end in chunked");
    /* The fields forwarded must frame the body exactly as http-parser did. */
    if ((hf->n_cl > 0) != ((p->flags & F_CONTENTLENGTH) != 0) ||
        (hf->n_te > 0) != ((p->flags & F_CHUNKED) != 0))
        return reject_cb(h, 400, "ambiguous message framing");
    if (hf->n_host > 1)
        return reject_cb(h, 400, "repeated Host");
    if (hf->n_host == 0 && (p->http_minor == 1 || h->n_hosts > 0))
        return reject_cb(h, 400, "missing Host");
    const char *url = (const char *)h->text.data;
    if (h->url_len > 0 && url[0] != '/' && !(h->url_len == 1 && url[0] == '*'))
        TW_GUARD(check_absolute_target(h));
    if (hf->host != NULL && h->n_hosts > 0 &&
        !gw_http_host_allowed(h->hosts, h->n_hosts, (const char *)h->text.data + hf->host->val_off,
                              hf->host->val_len))
        return reject_cb(h, 421, "Host does not match the service");
    return 0;
}

/* WebSocket is the only upgrade the gateway tunnels (RFC 6455 §4.1). Any other Upgrade header
 * is removed so the backend cannot switch protocols behind the gateway's back. */
static void decide_upgrade(struct gw_http *h, const struct head_facts *hf)
{
    h->tunnel = false;
    if (hf->n_upgrade == 0)
        return;
    const struct field *u = hf->upgrade;
    const char *v = (const char *)h->text.data + u->val_off;
    if (h->parser.upgrade && hf->n_upgrade == 1 && span_is(v, u->val_len, "websocket")) {
        h->tunnel = true;
        return;
    }
    for (size_t i = 0; i < h->n_fields; i++)
        if (name_is(h, &h->fields[i], "Upgrade"))
            h->fields[i].drop = true;
}

static int emit_fields(struct gw_http *h)
{
    for (size_t i = 0; i < h->n_fields; i++) {
        const struct field *f = &h->fields[i];
        if (f->drop)
            continue;
        if (evbuffer_add(h->out, h->text.data + f->name_off, f->name_len) != 0 ||
            evbuffer_add(h->out, ": ", 2) != 0 ||
            evbuffer_add(h->out, h->text.data + f->val_off, f->val_len) != 0 ||
            evbuffer_add(h->out, "\r\n", 2) != 0)
            return reject_cb(h, 500, "out of memory");
    }
    return 0;
}

static int emit_head(struct gw_http *h)
{
    const http_parser *p = &h->parser;
    const char *method = http_method_str((enum http_method)p->method);
    if (evbuffer_add_printf(h->out, "%s ", method) < 0 ||
        evbuffer_add(h->out, h->text.data, h->url_len) != 0 ||
        evbuffer_add_printf(h->out, " HTTP/%u.%u\r\n", p->http_major, p->http_minor) < 0)
        return reject_cb(h, 500, "out of memory");
    TW_GUARD(emit_fields(h));
    if ((h->inject_len > 0 && evbuffer_add(h->out, h->inject, h->inject_len) != 0) ||
        evbuffer_add(h->out, "\r\n", 2) != 0)
        return reject_cb(h, 500, "out of memory");
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct gw_http *h = p->data;
    struct head_facts hf;
    TW_GUARD(gather(h, &hf));
    TW_GUARD(check_head(h, &hf));
    decide_upgrade(h, &hf);
    /* Emitted by step() once http-parser has accepted the whole head: it still checks the
     * framing after this callback returns. */
    h->headers_done = true;
    return 0;
}

/* ---- body ----------------------------------------------------------------------------------- */

/* Body callbacks while only head bytes are being parsed would mean http-parser ended the head
 * somewhere the scanner did not: refuse rather than stream a body before its head. */
static int body_allowed(struct gw_http *h)
{
    return h->state == ST_BODY ? 0 : reject_cb(h, 400, "malformed request head");
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_http *h = p->data;
    TW_GUARD(body_allowed(h));
    if (evbuffer_add(h->out, at, n) != 0)
        return reject_cb(h, 500, "out of memory");
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    struct gw_http *h = p->data;
    TW_GUARD(body_allowed(h));
    if (p->content_length == 0) {
        /* Last chunk: trailer fields follow and reuse the head storage. */
        h->in_trailers = true;
        h->text.len = 0;
        h->url_len = 0;
        h->n_fields = 0;
        h->last_cb = CB_NONE;
    }
    if (evbuffer_add_printf(h->out, "%llx\r\n", (unsigned long long)p->content_length) < 0)
        return reject_cb(h, 500, "out of memory");
    return 0;
}

static int on_chunk_complete(http_parser *p)
{
    struct gw_http *h = p->data;
    TW_GUARD(body_allowed(h));
    if (h->in_trailers) {
        for (size_t i = 0; i < h->n_fields; i++) {
            struct field *f = &h->fields[i];
            TW_GUARD(check_field(h, f));
            const char *name = (const char *)h->text.data + f->name_off;
            f->drop = is_stripped(h, name, f->name_len);
            for (size_t j = 0; j < sizeof(not_in_trailers) / sizeof(not_in_trailers[0]); j++)
                if (span_is(name, f->name_len, not_in_trailers[j]))
                    f->drop = true;
        }
        TW_GUARD(emit_fields(h));
    }
    if (evbuffer_add(h->out, "\r\n", 2) != 0)
        return reject_cb(h, 500, "out of memory");
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct gw_http *h = p->data;
    h->message_done = true;
    h->keep_alive = http_should_keep_alive(p) != 0;
    /* Stop here so http_parser_execute reports exactly where this message ends. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

/* ---- driving -------------------------------------------------------------------------------- */

static enum gw_http_result reject(struct gw_http *h, int status, const char *reason)
{
    reject_cb(h, status, reason);
    h->state = ST_REJECTED;
    return GW_HTTP_REJECT;
}

/* Find how many of the n bytes belong to the current head; reject obs-fold, bare CR and
 * oversize. Lines end in LF or CRLF; the head ends at the first empty line after a non-empty
 * one (empty lines before a request are skipped, RFC 9112 §2.2). A CR not followed by LF is
 * refused because http-parser would read it as the end of the head while this scanner would
 * not: the two must always agree on where the head ends. */
static int scan_head(struct gw_http *h, const uint8_t *p, size_t n, size_t *take)
{
    size_t i = 0;
    h->scan_end = false;
    for (; i < n && !h->scan_end; i++) {
        uint8_t c = p[i];
        if (h->cr_pending && c != '\n')
            return reject_cb(h, 400, "bare CR in the request head");
        h->cr_pending = c == '\r';
        if (c == '\n') {
            if (h->line_len == 0 && h->seen_line)
                h->scan_end = true;
            h->seen_line = h->seen_line || h->line_len > 0;
            h->line_len = 0;
        } else if (c != '\r') {
            /* RFC 9112 §5.2: obs-fold (a line starting with whitespace) is rejected. */
            if (h->line_len == 0 && h->seen_line && (c == ' ' || c == '\t'))
                return reject_cb(h, 400, "obsolete line folding");
            h->line_len++;
        }
    }
    *take = i;
    h->head_bytes += i;
    if (h->head_bytes > h->max_header_bytes)
        return reject_cb(h, 431, "header block too large");
    return 0;
}

/* Run http-parser over n bytes; -1 (status set) on a parse error. */
static int run_parser(struct gw_http *h, const uint8_t *p, size_t n, size_t *got)
{
    *got = http_parser_execute(&h->parser, &settings, (const char *)p, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_OK || (e == HPE_PAUSED && h->message_done))
        return 0;
    if (e == HPE_HEADER_OVERFLOW)
        return reject_cb(h, 431, "header block too large");
    return reject_cb(h, 400, http_errno_description(e));
}

/* The message that just ended decides what the connection does next. */
static enum gw_http_result finish_message(struct gw_http *h)
{
    http_parser_pause(&h->parser, 0);
    h->message_done = false;
    if (h->tunnel) {
        h->state = ST_TUNNEL;
        return GW_HTTP_TUNNEL;
    }
    h->state = h->keep_alive ? ST_HEAD : ST_DISCARD;
    reset_head(h);
    return GW_HTTP_OK;
}

static enum gw_http_result step(struct gw_http *h, const uint8_t *p, size_t n, size_t *used)
{
    size_t take = n, got = 0;
    if (h->state == ST_DISCARD) {
        *used = n;
        return GW_HTTP_OK;
    }
    if (h->state == ST_HEAD && scan_head(h, p, n, &take) != 0)
        return reject(h, h->status, h->reason);
    if (run_parser(h, p, take, &got) != 0)
        return reject(h, h->status, h->reason);
    *used = got;
    if (h->state == ST_HEAD && h->headers_done) {
        /* Only exactly the head's bytes were parsed, so no body has been streamed yet. */
        if (emit_head(h) != 0)
            return reject(h, h->status, h->reason);
        h->requests++;
    }
    if (h->message_done)
        return finish_message(h);
    if (got != take)
        return reject(h, 400, "malformed request");
    if (h->state == ST_HEAD && (h->scan_end || h->headers_done)) {
        /* The scanner and http-parser must agree on where the head ends. */
        if (!h->headers_done || !h->scan_end)
            return reject(h, 400, "malformed request head");
        h->state = ST_BODY;
    }
    return GW_HTTP_OK;
}

enum gw_http_result gw_http_feed(struct gw_http *h, const void *data, size_t len,
                                 struct evbuffer *out, size_t *used)
{
    const uint8_t *p = data;
    size_t pos = 0;
    *used = 0;
    if (h->state == ST_REJECTED)
        return GW_HTTP_REJECT;
    if (h->state == ST_TUNNEL)
        return reject(h, 500, "fed after the tunnel began");
    h->out = out;
    while (pos < len) {
        size_t n = 0;
        enum gw_http_result r = step(h, p + pos, len - pos, &n);
        pos += n;
        if (r != GW_HTTP_OK) {
            *used = pos;
            h->out = NULL;
            return r;
        }
    }
    *used = pos;
    h->out = NULL;
    return GW_HTTP_OK;
}

enum gw_http_result gw_http_process(struct gw_http *h, struct evbuffer *in, struct evbuffer *out)
{
    for (;;) {
        size_t n = evbuffer_get_contiguous_space(in);
        if (n == 0)
            return h->state == ST_REJECTED ? GW_HTTP_REJECT : GW_HTTP_OK;
        const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
        if (p == NULL)
            return reject(h, 500, "out of memory");
        size_t used = 0;
        enum gw_http_result r = gw_http_feed(h, p, n, out, &used);
        evbuffer_drain(in, used);
        if (r != GW_HTTP_OK)
            return r;
    }
}

/* ---- lifetime and accessors ---------------------------------------------------------------- */

/* inject must be complete "Name: value\r\n" lines with no other CR or LF. */
static bool inject_ok(const char *s, size_t n)
{
    size_t line = 0;
    bool colon = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            if (i + 1 >= n || s[i + 1] != '\n' || line == 0 || !colon)
                return false;
            i++;
            line = 0;
            colon = false;
        } else if (s[i] == '\n') {
            return false;
        } else {
            colon = colon || (s[i] == ':' && line > 0);
            line++;
        }
    }
    return line == 0;
}

struct gw_http *gw_http_new(const struct gw_http_params *params, struct tw_err *err)
{
    TW_ENSURE_PTR(params->inject_len <= GW_HTTP_MAX_INJECT, err, TW_ERR_CONFIG,
                  "identity headers of %zu bytes exceed the limit of %d", params->inject_len,
                  GW_HTTP_MAX_INJECT);
    TW_ENSURE_PTR(params->inject_len == 0 || inject_ok(params->inject, params->inject_len), err,
                  TW_ERR_CONFIG, "identity headers are not complete CRLF-terminated lines");
    struct gw_http *h = calloc(1, sizeof(*h));
    TW_ENSURE_PTR(h != NULL, err, TW_ERR_INTERNAL, "out of memory");
    h->hosts = params->hosts;
    h->n_hosts = params->n_hosts;
    h->strip = params->strip;
    h->n_strip = params->n_strip;
    h->max_header_bytes = params->max_header_bytes ? params->max_header_bytes
                                                   : GW_HTTP_MAX_HEADER_BYTES;
    h->max_headers = params->max_headers ? params->max_headers : GW_HTTP_MAX_HEADERS;
    if (h->max_headers > MAX_HEADERS_CAP)
        h->max_headers = MAX_HEADERS_CAP;
    tw_buf_init(&h->text, h->max_header_bytes);
    h->fields = calloc(h->max_headers, sizeof(*h->fields));
    if (params->inject_len > 0) {
        h->inject = malloc(params->inject_len);
        if (h->inject != NULL)
            memcpy(h->inject, params->inject, params->inject_len);
        h->inject_len = params->inject_len;
    }
    if (h->fields == NULL || (params->inject_len > 0 && h->inject == NULL)) {
        gw_http_free(h);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->state = ST_HEAD;
    h->reason = "";
    return h;
}

void gw_http_free(struct gw_http *h)
{
    if (h == NULL)
        return;
    tw_buf_free(&h->text);
    free(h->fields);
    free(h->inject);
    free(h);
}

int gw_http_status(const struct gw_http *h)
{
    return h->state == ST_REJECTED ? h->status : 0;
}

const char *gw_http_reason(const struct gw_http *h)
{
    return h->state == ST_REJECTED ? h->reason : "";
}

uint64_t gw_http_requests(const struct gw_http *h)
{
    return h->requests;
}

int gw_http_idle(const struct gw_http *h)
{
    return (h->state == ST_HEAD && h->head_bytes == 0) || h->state == ST_DISCARD;
}
