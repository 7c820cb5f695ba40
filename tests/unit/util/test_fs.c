#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tw-fs-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1; /* checksrc only scans src/ */
}

static void write_then_read_round_trips(void **state)
{
    (void)state;
    char path[128];
    struct tw_err err;
    assert_int_equal(fs_path_join(path, sizeof(path), dir, "a.txt", &err), 0);
    assert_int_equal(fs_write_atomic(path, "hello", 5, 0600, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *data;
    size_t len;
    assert_int_equal(fs_read_file(path, 100, &data, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
}

static void read_over_limit_fails_with_io(void **state)
{
    (void)state;
    char path[128];
    struct tw_err err;
    assert_int_equal(fs_path_join(path, sizeof(path), dir, "big", &err), 0);
    assert_int_equal(fs_write_atomic(path, "0123456789", 10, 0644, &err), 0);
    char *data;
    size_t len;
    assert_int_equal(fs_read_file(path, 9, &data, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "big"));
}

static void read_missing_names_the_path(void **state)
{
    (void)state;
    struct tw_err err;
    char *data;
    size_t len;
    assert_int_equal(fs_read_file("/nonexistent/x.pem", 100, &data, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.pem"));
}

static void fault_injection_keeps_old_contents(void **state)
{
    (void)state;
    char path[128];
    struct tw_err err;
    assert_int_equal(fs_path_join(path, sizeof(path), dir, "keep.txt", &err), 0);
    assert_int_equal(fs_write_atomic(path, "old", 3, 0600, &err), 0);
    setenv("TWOWAY_FAULT_WRITE", "keep.txt", 1);
    assert_int_equal(fs_write_atomic(path, "new", 3, 0600, &err), -1);
    unsetenv("TWOWAY_FAULT_WRITE");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(err.sys_errno, 28 /* ENOSPC */);
    char *data;
    size_t len;
    assert_int_equal(fs_read_file(path, 100, &data, &len, &err), 0);
    assert_string_equal(data, "old");
    free(data);
}

static void write_new_refuses_existing(void **state)
{
    (void)state;
    char path[128];
    struct tw_err err;
    assert_int_equal(fs_path_join(path, sizeof(path), dir, "once", &err), 0);
    assert_int_equal(fs_write_new(path, "1", 1, 0600, &err), 0);
    assert_int_equal(fs_write_new(path, "2", 1, 0600, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
}

static void key_perms_refuse_group_readable(void **state)
{
    (void)state;
    char path[128];
    struct tw_err err;
    assert_int_equal(fs_path_join(path, sizeof(path), dir, "k.pem", &err), 0);
    assert_int_equal(fs_write_atomic(path, "k", 1, 0640, &err), 0);
    assert_int_equal(fs_check_key_perms(path, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(fs_check_key_perms(path, &err), 0);
}

static void mkdir_private_makes_parents_0700(void **state)
{
    (void)state;
    char path[128];
    struct tw_err err;
    assert_int_equal(fs_path_join(path, sizeof(path), dir, "a/b/c", &err), 0);
    assert_int_equal(fs_mkdir_private(path, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(fs_mkdir_private(path, &err), 0);
}

static void path_join_too_long_is_usage(void **state)
{
    (void)state;
    char small[8];
    struct tw_err err;
    assert_int_equal(fs_path_join(small, sizeof(small), "/long/dir", "name", &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_then_read_round_trips),
        cmocka_unit_test(read_over_limit_fails_with_io),
        cmocka_unit_test(read_missing_names_the_path),
        cmocka_unit_test(fault_injection_keeps_old_contents),
        cmocka_unit_test(write_new_refuses_existing),
        cmocka_unit_test(key_perms_refuse_group_readable),
        cmocka_unit_test(mkdir_private_makes_parents_0700),
        cmocka_unit_test(path_join_too_long_is_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
