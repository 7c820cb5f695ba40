/* util/priv: the refusal to serve as root, unknown users, and the switch itself (in a child
 * process, as it cannot be undone). The switch needs root; those checks are skipped without. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/priv.h"

static void test_unknown_user(void **state)
{
    (void)state;
    struct tw_err err = {0};
    assert_int_equal(priv_check("no-such-user-tw", false, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "user 'no-such-user-tw': no such user"));
    assert_int_equal(priv_drop("no-such-user-tw", &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
}

static void test_root_refused_without_user(void **state)
{
    (void)state;
    struct tw_err err = {0};
    unsetenv(PRIV_ALLOW_ROOT_ENV);
    int rc = priv_check(NULL, false, &err);
    if (geteuid() != 0) {
        assert_int_equal(rc, 0); /* nothing to refuse */
        return;
    }
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_non_null(strstr(err.msg, "refusing to serve as root"));
    assert_non_null(strstr(err.msg, "--allow-root"));
    assert_int_equal(priv_check(NULL, true, &err), 0);
    setenv(PRIV_ALLOW_ROOT_ENV, "0", 1);
    assert_int_equal(priv_check(NULL, false, &err), -1);
    setenv(PRIV_ALLOW_ROOT_ENV, "1", 1);
    assert_int_equal(priv_check(NULL, false, &err), 0);
    unsetenv(PRIV_ALLOW_ROOT_ENV);
    assert_int_equal(priv_check("nobody", false, &err), 0);
}

static void test_no_user_is_a_no_op(void **state)
{
    (void)state;
    struct tw_err err = {0};
    uid_t uid = getuid();
    assert_int_equal(priv_drop(NULL, &err), 0);
    assert_int_equal(getuid(), uid);
    /* The user the process already is: nothing to switch (systemd's User= and user = both). */
    struct passwd *pw = getpwuid(geteuid());
    assert_non_null(pw);
    assert_int_equal(priv_drop(pw->pw_name, &err), 0);
    assert_int_equal(priv_check(pw->pw_name, false, &err), 0);
}

static void test_switch_in_child(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct tw_err err = {0};
        if (priv_drop("nobody", &err) != 0)
            _exit(10);
        uid_t r, e, s;
        gid_t rg, eg, sg;
        if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid)
            _exit(11);
        if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid)
            _exit(12);
        gid_t groups[64];
        int n = getgroups(64, groups);
        for (int i = 0; i < n; i++)
            if (groups[i] == 0)
                _exit(13); /* root's supplementary groups are gone */
        if (setuid(0) == 0)
            _exit(14);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_not_root_cannot_switch(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct passwd *pw = getpwnam("nobody");
        if (pw == NULL || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(20);
        struct tw_err err = {0};
        /* As nobody, becoming root (another user) is refused up front, with the reason. */
        if (priv_check("root", false, &err) != -1 || err.code != TW_ERR_USAGE ||
            strstr(err.msg, "switching users needs root") == NULL)
            _exit(21);
        if (priv_drop("root", &err) != -1 || err.code != TW_ERR_IO)
            _exit(22);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_user),
        cmocka_unit_test(test_root_refused_without_user),
        cmocka_unit_test(test_no_user_is_a_no_op),
        cmocka_unit_test(test_switch_in_child),
        cmocka_unit_test(test_not_root_cannot_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
