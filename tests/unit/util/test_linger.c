#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/linger.h"

/* A connected loopback TCP pair: *srv is the accepted side (non-blocking, as a server's). */
static void tcp_pair(int *cli, int *srv)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    *cli = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(*cli, (struct sockaddr *)&sa, sizeof(sa)), 0);
    *srv = accept(lfd, NULL, NULL);
    assert_true(*srv >= 0);
    assert_int_equal(fcntl(*srv, F_SETFL, O_NONBLOCK), 0);
    struct timeval tv = {5, 0};
    assert_int_equal(setsockopt(*cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    close(lfd);
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_done(void *arg)
{
    (*(int *)arg)++;
}

/* Run base until *done is set, for at most limit_ms. */
static void run_until(struct event_base *base, const int *done, int64_t limit_ms)
{
    int64_t end = ms_now() + limit_ms;
    while (*done == 0 && ms_now() < end)
        event_base_loop(base, EVLOOP_ONCE);
}

static void send_all(int fd, size_t n)
{
    char chunk[4096];
    memset(chunk, 'x', sizeof(chunk));
    while (n > 0) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        ssize_t w = send(fd, chunk, k, MSG_NOSIGNAL);
        assert_true(w > 0);
        n -= (size_t)w;
    }
}

/* The point of it all: a peer that is still writing reads our last bytes and a clean EOF,
 * where a plain close() with its bytes unread would have sent it a RST. */
static void last_bytes_reach_a_writing_peer(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int cli, srv, done = 0;
    tcp_pair(&cli, &srv);
    send_all(cli, 32 * 1024); /* unread by the server */
    assert_int_equal(send(srv, "ALERT", 5, 0), 5);
    struct tw_linger_set set = {0};
    assert_non_null(tw_linger_start(&set, base, srv, count_done, &done));
    assert_int_equal(set.count, 1);
    char buf[16];
    assert_int_equal(recv(cli, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "ALERT", 5);
    assert_int_equal(recv(cli, buf, sizeof(buf), 0), 0); /* FIN, not ECONNRESET */
    send_all(cli, 8 * 1024);                              /* keeps writing after it */
    close(cli);
    run_until(base, &done, 5000);
    assert_int_equal(done, 1);
    assert_int_equal(set.count, 0);
    assert_int_equal(fcntl(srv, F_GETFD), -1); /* closed by the linger */
    event_base_free(base);
}

/* A peer that never closes holds the socket for the time bound, no longer. */
static void silent_peer_is_bounded_in_time(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int cli, srv, done = 0;
    tcp_pair(&cli, &srv);
    struct tw_linger_set set = {.ms = 200};
    int64_t t0 = ms_now();
    assert_non_null(tw_linger_start(&set, base, srv, count_done, &done));
    run_until(base, &done, 5000);
    int64_t took = ms_now() - t0;
    assert_int_equal(done, 1);
    assert_true(took >= 150);
    assert_true(took < 2000);
    close(cli);
    event_base_free(base);
}

/* A peer that keeps sending ends the linger once the byte bound is read, before the time
 * bound. */
static void flooding_peer_is_bounded_in_bytes(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int cli, srv, done = 0;
    tcp_pair(&cli, &srv);
    send_all(cli, 100 * 1024);
    struct tw_linger_set set = {.ms = 20000, .bytes = 64 * 1024};
    int64_t t0 = ms_now();
    assert_non_null(tw_linger_start(&set, base, srv, count_done, &done));
    run_until(base, &done, 10000);
    assert_int_equal(done, 1);
    assert_true(ms_now() - t0 < 10000);
    close(cli);
    event_base_free(base);
}

/* Beyond max, or on a connection the peer already reset, lingering does not start and the
 * socket stays the caller's. */
static void refusals_leave_the_socket_to_the_caller(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    int cli1, srv1, cli2, srv2, done = 0;
    tcp_pair(&cli1, &srv1);
    tcp_pair(&cli2, &srv2);
    struct tw_linger_set set = {.max = 1};
    assert_non_null(tw_linger_start(&set, base, srv1, count_done, &done));
    assert_null(tw_linger_start(&set, base, srv2, count_done, &done));
    assert_int_equal(fcntl(srv2, F_GETFD), 0);
    tw_linger_abort_all(&set);
    assert_int_equal(set.count, 0);
    assert_int_equal(done, 0);
    assert_int_equal(fcntl(srv1, F_GETFD), -1);

    /* RST from the peer: SO_LINGER with a zero timeout makes close() send one. */
    struct linger zero = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(cli2, SOL_SOCKET, SO_LINGER, &zero, sizeof(zero)), 0);
    close(cli2);
    char b;
    for (int i = 0; i < 100 && recv(srv2, &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN; i++)
        usleep(10000);
    assert_null(tw_linger_start(&set, base, srv2, count_done, &done));
    assert_int_equal(fcntl(srv2, F_GETFD), 0);
    close(srv2);
    close(cli1);
    tw_linger_abort(NULL);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(last_bytes_reach_a_writing_peer),
        cmocka_unit_test(silent_peer_is_bounded_in_time),
        cmocka_unit_test(flooding_peer_is_bounded_in_bytes),
        cmocka_unit_test(refusals_leave_the_socket_to_the_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
