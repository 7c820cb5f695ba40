/* The console's output pieces: HTML escaping of every special character (and nothing else,
 * so UTF-8 passes intact), the SVG charts' and QR code's shape, and the buffer limit turning
 * into an error rather than a truncated page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "console/internal.h"

static void test_escape_specials_and_keeps_utf8(void **state)
{
    (void)state;
    struct tw_buf b;
    tw_buf_init(&b, 4096);
    struct tw_err err;
    assert_int_equal(console_html_esc(&b, "<script>alert(\"Zo\xc3\xab's\")&</script>", &err), 0);
    assert_int_equal(tw_buf_append(&b, "", 1, &err), 0);
    assert_string_equal((char *)b.data, "&lt;script&gt;alert(&quot;Zo\xc3\xab&#39;s&quot;)&amp;"
                                        "&lt;/script&gt;");
    tw_buf_free(&b);
}

static void test_escape_over_the_limit_fails(void **state)
{
    (void)state;
    struct tw_buf b;
    tw_buf_init(&b, 8);
    struct tw_err err;
    assert_int_equal(console_html_esc(&b, "<<<", &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    tw_buf_free(&b);
}

static void test_bars_scale_to_the_largest(void **state)
{
    (void)state;
    struct tw_buf b;
    tw_buf_init(&b, 65536);
    struct tw_err err;
    int64_t counts[3] = {0, 5, 10};
    assert_int_equal(console_svg_bars(&b, "a <title>", counts, 3, "week", &err), 0);
    assert_int_equal(tw_buf_append(&b, "", 1, &err), 0);
    const char *svg = (const char *)b.data;
    assert_non_null(strstr(svg, "height=\"120\"><title>week 2: 10</title>")); /* the tallest */
    assert_non_null(strstr(svg, "height=\"60\"><title>week 1: 5</title>"));
    assert_non_null(strstr(svg, "<title>a &lt;title&gt;</title>"));
    assert_null(strstr(svg, "<title>a <title>"));
    tw_buf_free(&b);
}

static void test_qr_is_square_svg(void **state)
{
    (void)state;
    struct tw_buf b;
    tw_buf_init(&b, 1 << 20);
    struct tw_err err;
    assert_int_equal(console_svg_qr(&b, "twoway enroll https://127.0.0.1:8443 --name a", &err), 0);
    assert_int_equal(tw_buf_append(&b, "", 1, &err), 0);
    const char *svg = (const char *)b.data;
    assert_true(strncmp(svg, "<svg class=\"qr\"", 15) == 0);
    assert_non_null(strstr(svg, "M4 4h1v1h-1z")); /* the finder pattern's corner */
    tw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_specials_and_keeps_utf8),
        cmocka_unit_test(test_escape_over_the_limit_fails),
        cmocka_unit_test(test_bars_scale_to_the_largest),
        cmocka_unit_test(test_qr_is_square_svg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
