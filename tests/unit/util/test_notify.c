/* util/notify: the sd_notify datagram as systemd receives it, on a path and in the abstract
 * namespace; silence without $NOTIFY_SOCKET; an unreachable socket is -1, not a crash;
 * $WATCHDOG_USEC / $WATCHDOG_PID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/notify.h"

/* A bound datagram socket; name "@..." is abstract. */
static int listener(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    assert_int_equal(
        bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)),
        0);
    return fd;
}

static void receive(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
}

static void test_path_socket(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/tw-notify-unit-%ld", (long)getpid());
    unlink(path);
    int fd = listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_true(notify_enabled());
    assert_int_equal(notify_send("READY=1\nSTATUS=generation %d serving", 3), 0);
    char buf[NOTIFY_MSG_MAX + 1];
    receive(fd, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1\nSTATUS=generation 3 serving");

    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    assert_int_equal(notify_reloading(), 0);
    clock_gettime(CLOCK_MONOTONIC, &after);
    receive(fd, buf, sizeof(buf));
    unsigned long long usec = 0;
    assert_int_equal(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec), 1);
    assert_true(usec >= (unsigned long long)before.tv_sec * 1000000ULL + before.tv_nsec / 1000);
    assert_true(usec <= (unsigned long long)after.tv_sec * 1000000ULL + after.tv_nsec / 1000);
    close(fd);
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket_and_long_message(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@tw-notify-unit-%ld", (long)getpid());
    int fd = listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    char big[2 * NOTIFY_MSG_MAX];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(notify_send("STATUS=%s", big), 0);
    char buf[2 * NOTIFY_MSG_MAX];
    receive(fd, buf, sizeof(buf));
    assert_int_equal(strlen(buf), NOTIFY_MSG_MAX - 1); /* cut, still one datagram */
    assert_memory_equal(buf, "STATUS=xxx", 10);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_off_and_unreachable(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_false(notify_enabled());
    assert_int_equal(notify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_false(notify_enabled());
    assert_int_equal(notify_send("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1); /* neither a path nor abstract: ignored */
    assert_false(notify_enabled());
    setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
    assert_true(notify_enabled());
    errno = 0;
    assert_int_equal(notify_send("READY=1"), -1);
    assert_int_equal(errno, ENOENT);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog(void **state)
{
    (void)state;
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_int_equal(notify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    assert_int_equal(notify_watchdog_usec(), 30000000);
    setenv("WATCHDOG_PID", pid, 1);
    assert_int_equal(notify_watchdog_usec(), 30000000);
    setenv("WATCHDOG_PID", "1", 1); /* meant for another process */
    assert_int_equal(notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "30s", 1);
    assert_int_equal(notify_watchdog_usec(), 0);
    setenv("WATCHDOG_USEC", "0", 1);
    assert_int_equal(notify_watchdog_usec(), 0);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket_and_long_message),
        cmocka_unit_test(test_off_and_unreachable),
        cmocka_unit_test(test_watchdog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
