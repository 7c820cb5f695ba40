/* Fuzz the HTTP/1.1 response reader (gateway/http_resp.h) that turns a backend's answer into
 * an HTTP/2 response: arbitrary bytes in arbitrary chunk splits must never crash or leak, and
 * every header list it hands over must be safe for an HTTP/2 encoder: names lower-case and
 * non-empty, no connection-specific field (RFC 9113 §8.2.2), values without CR, LF or NUL;
 * the head comes once, before any body byte; trailers and the end come after it.
 *
 * Input layout: byte 0 seeds the chunk splits, byte 1 bit 0 says the request was HEAD; the
 * rest is what the backend sent. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/http_resp.h"

struct seen {
    int heads, ends;
    bool trailers;
    size_t body;
};

static void check_list(const struct gw_hdr *h, size_t n)
{
    static const char *const banned[] = {"connection", "keep-alive", "proxy-connection",
                                         "transfer-encoding", "upgrade", "te"};
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == 0)
            abort();
        for (size_t k = 0; k < h[i].name_len; k++)
            if (h[i].name[k] >= 'A' && h[i].name[k] <= 'Z')
                abort();
        for (size_t k = 0; k < h[i].value_len; k++)
            if (h[i].value[k] == '\r' || h[i].value[k] == '\n' || h[i].value[k] == '\0')
                abort();
        for (size_t b = 0; b < sizeof(banned) / sizeof(banned[0]); b++)
            if (h[i].name_len == strlen(banned[b]) &&
                memcmp(h[i].name, banned[b], h[i].name_len) == 0)
                abort();
    }
}

static int on_head(void *arg, int status, const struct gw_hdr *h, size_t n)
{
    struct seen *s = arg;
    if (s->heads++ != 0 || status < 200 || status > 999 || s->body != 0)
        abort();
    check_list(h, n);
    return 0;
}

static int on_body(void *arg, const uint8_t *data, size_t len)
{
    struct seen *s = arg;
    if (s->heads != 1 || s->ends != 0 || (len > 0 && data == NULL))
        abort();
    s->body += len;
    return 0;
}

static int on_trailers(void *arg, const struct gw_hdr *h, size_t n)
{
    struct seen *s = arg;
    if (s->heads != 1 || s->ends != 0 || s->trailers)
        abort();
    s->trailers = true;
    check_list(h, n);
    return 0;
}

static int on_end(void *arg)
{
    struct seen *s = arg;
    if (s->heads != 1 || s->ends++ != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = data[0];
    bool head = data[1] & 1;
    data += 2;
    size -= 2;
    static const struct gw_http_resp_cb cb = {on_head, on_body, on_trailers, on_end};
    struct seen s = {0};
    struct tw_err err;
    struct gw_http_resp *r = gw_http_resp_new(&cb, &s, head, &err);
    if (r == NULL)
        abort();
    size_t pos = 0;
    int rc = 0;
    while (pos < size && rc == 0) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 512;
        if (n > size - pos)
            n = size - pos;
        rc = gw_http_resp_feed(r, data + pos, n);
        pos += n;
    }
    if (rc == 0 && gw_http_resp_eof(r) == 0 && s.ends != 1)
        abort(); /* a response that ended cleanly must have said so */
    if (gw_http_resp_done(r) != (s.ends == 1) || gw_http_resp_started(r) != (s.heads == 1))
        abort();
    gw_http_resp_free(r);
    return 0;
}
