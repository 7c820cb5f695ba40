#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "util/err.h"

static int guarded(int ok, struct tw_err *err)
{
    TW_ENSURE(ok, err, TW_ERR_CONFIG, "value %d is bad", 7);
    return 0;
}

static void ensure_fills_code_and_message(void **state)
{
    (void)state;
    struct tw_err err;
    tw_err_clear(&err);
    assert_int_equal(guarded(1, &err), 0);
    assert_int_equal(err.code, TW_OK);
    assert_int_equal(guarded(0, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_string_equal(err.msg, "value 7 is bad");
    assert_int_equal(tw_err_exit_code(&err), 1);
}

static void sys_appends_strerror(void **state)
{
    (void)state;
    struct tw_err err;
    errno = ENOENT;
    tw_err_sys(&err, TW_ERR_IO, "open x");
    assert_int_equal(err.sys_errno, ENOENT);
    assert_non_null(strstr(err.msg, "No such file"));
}

static void ossl_drains_queue(void **state)
{
    (void)state;
    struct tw_err err;
    BIO *bio = BIO_new_mem_buf("garbage", -1);
    assert_null(PEM_read_bio_X509(bio, NULL, NULL, NULL));
    BIO_free(bio);
    assert_int_not_equal(ERR_peek_error(), 0);
    tw_err_ossl(&err, TW_ERR_PKI, "reading cert");
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_int_not_equal(err.ossl, 0);
    assert_int_equal(ERR_peek_error(), 0);
    assert_non_null(strstr(err.msg, "reading cert: "));
}

static void usage_exits_two(void **state)
{
    (void)state;
    struct tw_err err;
    tw_err_set(&err, TW_ERR_USAGE, "bad flag");
    assert_int_equal(tw_err_exit_code(&err), 2);
    assert_string_equal(tw_errc_name(TW_ERR_NOTFOUND), "not-found");
    assert_int_equal(tw_err_set(NULL, TW_ERR_IO, "x"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ensure_fills_code_and_message),
        cmocka_unit_test(sys_appends_strerror),
        cmocka_unit_test(ossl_drains_queue),
        cmocka_unit_test(usage_exits_two),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
