/* bench tallies and option checks: percentiles, failure tallies, /proc sampling and every
 * refusal of bench_run before it opens a connection, each with its error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/internal.h"

static void test_percentiles(void **state)
{
    (void)state;
    struct bench_samples s = {0};
    assert_int_equal(bench_samples_pct(&s, 50), 0); /* empty */
    for (int64_t v = 100; v >= 1; v--)
        assert_int_equal(bench_samples_add(&s, v), 0);
    assert_int_equal(bench_samples_pct(&s, 50), 50);
    assert_int_equal(bench_samples_pct(&s, 90), 90);
    assert_int_equal(bench_samples_pct(&s, 99), 99);
    assert_int_equal(bench_samples_pct(&s, 100), 100);
    assert_int_equal(bench_samples_pct(&s, 0), 1);
    assert_int_equal(bench_samples_mean(&s), 50);
    bench_samples_free(&s);
    assert_null(s.v);
}

static void test_fail_tally(void **state)
{
    (void)state;
    struct bench_result r;
    memset(&r, 0, sizeof(r));
    bench_fail_note(&r, "timeout", "no progress");
    bench_fail_note(&r, "unknown-ca", NULL);
    bench_fail_note(&r, "timeout", "again");
    assert_int_equal(r.failed, 3);
    assert_int_equal(r.nerrors, 2);
    assert_string_equal(r.errors[0].code, "timeout");
    assert_int_equal(r.errors[0].n, 2);
    assert_string_equal(r.first_error, "timeout: no progress");
    /* More distinct reasons than rows: the last row collects them as "other". */
    char code[16];
    for (int i = 0; i < BENCH_ERR_KINDS + 5; i++) {
        snprintf(code, sizeof(code), "r%d", i);
        bench_fail_note(&r, code, NULL);
    }
    assert_int_equal(r.nerrors, BENCH_ERR_KINDS);
    assert_string_equal(r.errors[BENCH_ERR_KINDS - 1].code, "other");
}

static void test_proc_sample(void **state)
{
    (void)state;
    struct bench_proc_sample p;
    struct tw_err err;
    assert_int_equal(bench_proc_sample(getpid(), &p, &err), 0);
    assert_true(p.ok);
    assert_true(p.rss_kb > 0);
    assert_true(p.cpu_us >= 0);
    tw_err_clear(&err);
    assert_int_equal(bench_proc_sample(4000000, &p, &err), -1); /* above pid_max */
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "process 4000000"));
    assert_false(p.ok);
}

static void test_derived_not_measured(void **state)
{
    (void)state;
    struct bench_result r;
    memset(&r, 0, sizeof(r));
    assert_true(bench_server_us_per_conn(&r) < 0);
    assert_true(bench_server_s_per_gb(&r) < 0);
    assert_true(bench_server_kb_per_held(&r) < 0);
    r.before = (struct bench_proc_sample){.ok = true, .cpu_us = 1000, .rss_kb = 100};
    r.after = (struct bench_proc_sample){.ok = true, .cpu_us = 3000, .rss_kb = 300};
    r.ok = 4;
    r.held = 10;
    r.bytes_down = 1000000000;
    assert_true(bench_server_us_per_conn(&r) == 500.0);
    assert_true(bench_server_s_per_gb(&r) == 0.002);
    assert_true(bench_server_kb_per_held(&r) == 20.0);
}

static int run_opts(struct bench_opts *o, struct tw_err *err)
{
    struct bench_result r;
    tw_err_clear(err);
    return bench_run(o, &r, err);
}

static void base_opts(struct bench_opts *o)
{
    bench_opts_init(o);
    o->host = "127.0.0.1";
    o->port = "1";
    o->cert_file = "/nonexistent/client.pem";
    o->key_file = "/nonexistent/client.key";
}

static void test_run_refusals(void **state)
{
    (void)state;
    struct bench_opts o;
    struct tw_err err;
    base_opts(&o);
    o.conns = 0;
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "--conns"));

    base_opts(&o);
    o.count = 0;
    o.duration_ms = 0;
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);

    base_opts(&o);
    o.mode = BENCH_MODE_HOLD;
    o.hold = 0;
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);

    base_opts(&o);
    o.request = BENCH_MAX_REQUEST + 1;
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);

    base_opts(&o);
    o.cert_file = NULL;
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);

    base_opts(&o);
    o.pid = 4000000;
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);

    base_opts(&o); /* the certificate file cannot be read */
    assert_int_equal(run_opts(&o, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/client.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles),  cmocka_unit_test(test_fail_tally),
        cmocka_unit_test(test_proc_sample),  cmocka_unit_test(test_derived_not_measured),
        cmocka_unit_test(test_run_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
