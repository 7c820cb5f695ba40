#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void tw_buf_init(struct tw_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void tw_buf_free(struct tw_buf *b)
{
    if (b->data != NULL)
        OPENSSL_cleanse(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

static int reserve(struct tw_buf *b, size_t extra, struct tw_err *err)
{
    /* +1 keeps room for a terminating NUL after text. */
    if (extra > b->limit || b->len > b->limit - extra)
        return tw_err_set(err, TW_ERR_IO, "buffer limit of %zu bytes exceeded", b->limit);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap != 0 ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    b->data = p;
    b->cap = cap;
    return 0;
}

int tw_buf_append(struct tw_buf *b, const void *data, size_t len, struct tw_err *err)
{
    TW_GUARD(reserve(b, len, err));
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int tw_buf_appendf(struct tw_buf *b, struct tw_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "bad format");
    TW_GUARD(reserve(b, (size_t)n, err));
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void tw_cursor_init(struct tw_cursor *c, const void *data, size_t len)
{
    c->data = data;
    c->len = len;
    c->pos = 0;
}

size_t tw_cursor_remaining(const struct tw_cursor *c)
{
    return c->len - c->pos;
}

int tw_cursor_bytes(struct tw_cursor *c, size_t n, const uint8_t **out)
{
    if (n > tw_cursor_remaining(c))
        return -1;
    *out = c->data + c->pos;
    c->pos += n;
    return 0;
}

int tw_cursor_skip(struct tw_cursor *c, size_t n)
{
    const uint8_t *ignored;
    return tw_cursor_bytes(c, n, &ignored);
}

int tw_cursor_u8(struct tw_cursor *c, uint8_t *out)
{
    const uint8_t *p;
    if (tw_cursor_bytes(c, 1, &p) != 0)
        return -1;
    *out = p[0];
    return 0;
}

int tw_cursor_u16be(struct tw_cursor *c, uint16_t *out)
{
    const uint8_t *p;
    if (tw_cursor_bytes(c, 2, &p) != 0)
        return -1;
    *out = (uint16_t)((p[0] << 8) | p[1]);
    return 0;
}

int tw_cursor_u32be(struct tw_cursor *c, uint32_t *out)
{
    const uint8_t *p;
    if (tw_cursor_bytes(c, 4, &p) != 0)
        return -1;
    *out = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return 0;
}

char *tw_hex_encode(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 0xf];
    }
    out[2 * len] = '\0';
    return out;
}

bool tw_str_copy(char *out, size_t cap, const char *src)
{
    static const char cut[] = "...";
    size_t n = strlen(src);
    if (n < cap) {
        memcpy(out, src, n + 1);
        return false;
    }
    size_t keep = cap - sizeof(cut);
    memcpy(out, src, keep);
    memcpy(out + keep, cut, sizeof(cut));
    return true;
}
