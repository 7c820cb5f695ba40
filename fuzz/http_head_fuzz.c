/* Fuzz the HTTP request-stream processor: arbitrary bytes in arbitrary chunk splits must never
 * crash or leak, and what reaches the backend must always be well-formed HTTP in which every
 * identity header is the gateway's own (a client can never smuggle one through).
 *
 * Input layout: byte 0 seeds the chunk splits, byte 1 picks limits; the rest is the stream. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "gateway/http.h"

#define INJECTED_VALUE ":SU5KRUNURUQ=:"
#define INJECT "Client-Cert: " INJECTED_VALUE "\r\n"

/* ---- the backend's view: re-parse the output ------------------------------------------------ */

struct view {
    char name[64];
    size_t name_len;
    char value[64];
    size_t value_len;
    bool value_long;
    int last; /* 1 field, 2 value */
    int client_cert_in_head;
    bool in_head;
    uint64_t heads;
};

static bool is(const struct view *v, const char *name)
{
    return v->name_len == strlen(name) && strncasecmp(v->name, name, v->name_len) == 0;
}

/* Judge the field just completed. */
static void check_field(struct view *v)
{
    if (v->last != 2 && v->last != 1)
        return;
    if (is(v, "Client-Cert")) {
        if (!v->in_head || v->value_long || v->value_len != strlen(INJECTED_VALUE) ||
            memcmp(v->value, INJECTED_VALUE, v->value_len) != 0)
            abort(); /* a client-supplied Client-Cert reached the backend */
        v->client_cert_in_head++;
    } else if (is(v, "Client-Cert-Chain") || is(v, "X-Forwarded-Client-Cert") ||
               is(v, "X-Strip")) {
        abort();
    }
}

static int v_begin(http_parser *p)
{
    struct view *v = p->data;
    v->in_head = true;
    v->client_cert_in_head = 0;
    v->last = 0;
    return 0;
}

static int v_field(http_parser *p, const char *at, size_t n)
{
    struct view *v = p->data;
    if (v->last != 1) {
        check_field(v);
        v->name_len = 0;
        v->value_len = 0;
        v->value_long = false;
    }
    v->last = 1;
    size_t room = sizeof(v->name) - v->name_len;
    size_t k = n < room ? n : room;
    memcpy(v->name + v->name_len, at, k);
    v->name_len += k;
    return 0;
}

static int v_value(http_parser *p, const char *at, size_t n)
{
    struct view *v = p->data;
    v->last = 2;
    size_t room = sizeof(v->value) - v->value_len;
    if (n > room)
        v->value_long = true;
    size_t k = n < room ? n : room;
    memcpy(v->value + v->value_len, at, k);
    v->value_len += k;
    return 0;
}

static int v_headers_complete(http_parser *p)
{
    struct view *v = p->data;
    check_field(v);
    v->last = 0;
    if (v->client_cert_in_head != 1)
        abort(); /* every request carries exactly the gateway's identity */
    v->in_head = false;
    v->heads++;
    return 0;
}

static int v_chunk_complete(http_parser *p)
{
    struct view *v = p->data;
    check_field(v); /* trailers */
    v->last = 0;
    return 0;
}

static const http_parser_settings view_settings = {
    .on_message_begin = v_begin,
    .on_header_field = v_field,
    .on_header_value = v_value,
    .on_headers_complete = v_headers_complete,
    .on_chunk_complete = v_chunk_complete,
};

/* ---- driver --------------------------------------------------------------------------------- */

static const char *const hosts[] = {"example.com", "*.example.org"};
static const char *const strip[] = {"X-Strip"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t rng = data[0] * 2654435761u + 1;
    uint8_t knobs = data[1];
    data += 2;
    size -= 2;

    struct gw_http_params params = {
        .hosts = hosts,
        .n_hosts = (knobs & 1) ? 2 : 0,
        .strip = strip,
        .n_strip = 1,
        .inject = INJECT,
        .inject_len = strlen(INJECT),
        .max_header_bytes = (knobs & 2) ? 256 : 0,
        .max_headers = (knobs & 4) ? 4 : 0,
    };
    struct tw_err err;
    struct gw_http *h = gw_http_new(&params, &err);
    if (h == NULL)
        abort();
    struct evbuffer *out = evbuffer_new();
    struct evbuffer *in = evbuffer_new();
    enum gw_http_result r = GW_HTTP_OK;
    size_t pos = 0;
    while (pos < size && r == GW_HTTP_OK) {
        rng = rng * 1103515245u + 12345u;
        size_t n = 1 + (rng >> 16) % 97;
        if (n > size - pos)
            n = size - pos;
        if (knobs & 8) {
            evbuffer_add(in, data + pos, n);
            r = gw_http_process(h, in, out);
            pos += n;
        } else {
            size_t used = 0;
            r = gw_http_feed(h, data + pos, n, out, &used);
            if (used > n || (r == GW_HTTP_OK && used != n))
                abort();
            pos += used;
        }
    }
    if (r == GW_HTTP_REJECT) {
        size_t len;
        int status = gw_http_status(h);
        if (status != 400 && status != 421 && status != 431 && status != 500)
            abort();
        if (gw_http_error_response(status, &len) == NULL || len == 0)
            abort();
    }

    /* Re-parse everything the backend would have received. */
    size_t olen = evbuffer_get_length(out);
    const char *o = (const char *)evbuffer_pullup(out, (ev_ssize_t)olen);
    struct view v = {0};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &v;
    size_t got = http_parser_execute(&p, &view_settings, o != NULL ? o : "", olen);
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK)
        abort(); /* the gateway produced something the backend cannot parse */
    if (got != olen && !p.upgrade)
        abort();
    if (v.heads != gw_http_requests(h))
        abort();

    evbuffer_free(in);
    evbuffer_free(out);
    gw_http_free(h);
    return 0;
}
