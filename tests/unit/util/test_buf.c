#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/buf.h"
#include "util/clock.h"

static void buf_respects_limit(void **state)
{
    (void)state;
    struct tw_buf b;
    struct tw_err err;
    tw_buf_init(&b, 8);
    assert_int_equal(tw_buf_append(&b, "12345", 5, &err), 0);
    assert_int_equal(tw_buf_appendf(&b, &err, "%d", 678), 0);
    assert_int_equal(b.len, 8);
    assert_string_equal((char *)b.data, "12345678");
    assert_int_equal(tw_buf_append(&b, "9", 1, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(b.len, 8);
    tw_buf_free(&b);
    assert_null(b.data);
}

static void cursor_never_reads_past_end(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x0d, 0x0a, 0x12, 0x34, 0xde, 0xad, 0xbe};
    struct tw_cursor c;
    tw_cursor_init(&c, bytes, sizeof(bytes));
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    assert_int_equal(tw_cursor_u8(&c, &u8), 0);
    assert_int_equal(u8, 0x0d);
    assert_int_equal(tw_cursor_skip(&c, 1), 0);
    assert_int_equal(tw_cursor_u16be(&c, &u16), 0);
    assert_int_equal(u16, 0x1234);
    assert_int_equal(tw_cursor_u32be(&c, &u32), -1);
    assert_int_equal(tw_cursor_remaining(&c), 3);
    const uint8_t *p;
    assert_int_equal(tw_cursor_bytes(&c, 3, &p), 0);
    assert_int_equal(p[2], 0xbe);
    assert_int_equal(tw_cursor_u8(&c, &u8), -1);
}

static void hex_encodes_lower_case(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x00, 0xab, 0xff};
    char out[7];
    assert_string_equal(tw_hex_encode(bytes, 3, out), "00abff");
}

static void str_copy_marks_a_cut(void **state)
{
    (void)state;
    char out[8];
    assert_false(tw_str_copy(out, sizeof(out), "1234567"));
    assert_string_equal(out, "1234567");
    assert_false(tw_str_copy(out, sizeof(out), ""));
    assert_string_equal(out, "");
    assert_true(tw_str_copy(out, sizeof(out), "12345678"));
    assert_string_equal(out, "1234...");
    assert_true(tw_str_copy(out, sizeof(out), "a much longer reason than fits"));
    assert_string_equal(out, "a mu...");
}

static void durations_parse_with_units(void **state)
{
    (void)state;
    struct tw_err err;
    int64_t s;
    assert_int_equal(clock_duration_parse("90", &s, &err), 0);
    assert_int_equal(s, 90);
    assert_int_equal(clock_duration_parse("15m", &s, &err), 0);
    assert_int_equal(s, 900);
    assert_int_equal(clock_duration_parse("30d", &s, &err), 0);
    assert_int_equal(s, 30 * 86400);
    assert_int_equal(clock_duration_parse("2w", &s, &err), 0);
    assert_int_equal(s, 14 * 86400);
    assert_int_equal(clock_duration_parse("-1d", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(clock_duration_parse("3x", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(clock_duration_parse("99999999999999999999d", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
}

static void iso8601_is_utc(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(clock_iso8601(0, out, sizeof(out)), "1970-01-01T00:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_respects_limit),       cmocka_unit_test(cursor_never_reads_past_end),
        cmocka_unit_test(hex_encodes_lower_case),   cmocka_unit_test(durations_parse_with_units),
        cmocka_unit_test(iso8601_is_utc),           cmocka_unit_test(str_copy_marks_a_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
