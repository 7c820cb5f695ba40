/* Bounded byte buffers and a bounds-checked read cursor for parsers of outside input. */
#ifndef TW_UTIL_BUF_H
#define TW_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* A growable buffer that never grows past limit bytes. */
struct tw_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit;
};

/* Start empty with the given hard limit (no allocation yet). */
void tw_buf_init(struct tw_buf *b, size_t limit);
/* Release memory; the buffer is empty and reusable afterwards. Wipes contents first. */
void tw_buf_free(struct tw_buf *b);
/* Append bytes; fails with TW_ERR_IO ("limit") when the result would exceed b->limit. */
int tw_buf_append(struct tw_buf *b, const void *data, size_t len, struct tw_err *err) TW_MUST_CHECK;
/* Append formatted text (no NUL counted in len, but one is kept after data). */
int tw_buf_appendf(struct tw_buf *b, struct tw_err *err, const char *fmt, ...) TW_PRINTF(3, 4)
    TW_MUST_CHECK;

/* Reads from a fixed span; every read checks the remaining length first. */
struct tw_cursor {
    const uint8_t *data;
    size_t len;
    size_t pos;
};

void tw_cursor_init(struct tw_cursor *c, const void *data, size_t len);
size_t tw_cursor_remaining(const struct tw_cursor *c);
/* Each returns 0 on success, -1 (cursor unchanged) when fewer bytes remain than needed. */
int tw_cursor_u8(struct tw_cursor *c, uint8_t *out) TW_MUST_CHECK;
int tw_cursor_u16be(struct tw_cursor *c, uint16_t *out) TW_MUST_CHECK;
int tw_cursor_u32be(struct tw_cursor *c, uint32_t *out) TW_MUST_CHECK;
/* Point *out at the next n bytes (no copy) and advance. */
int tw_cursor_bytes(struct tw_cursor *c, size_t n, const uint8_t **out) TW_MUST_CHECK;
int tw_cursor_skip(struct tw_cursor *c, size_t n) TW_MUST_CHECK;

/* Lower-case hex of len bytes into out (needs 2*len+1). Returns out. */
char *tw_hex_encode(const uint8_t *data, size_t len, char *out);

/* Copy the string src into out (cap > 3 bytes). A src that does not fit is cut and ends in
 * "...", so a reader of a bounded log field knows text is missing. Returns true if it was cut. */
bool tw_str_copy(char *out, size_t cap, const char *src);

#endif
