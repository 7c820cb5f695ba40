/* Lingering close (linger.h): one non-persistent read event per socket, re-armed with the
 * time left until the deadline, so neither a trickling nor a silent peer extends it. */
#include "util/linger.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Bytes read per recv; a burst larger than the bound ends the linger at once anyway. */
#define DISCARD_CHUNK 16384

struct tw_linger {
    struct tw_linger *prev, *next;
    struct tw_linger_set *set;
    struct event *ev;
    int fd;
    size_t discarded, limit;
    int64_t deadline_ms;
    tw_linger_done_fn done;
    void *arg;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void unlink_free(struct tw_linger *l)
{
    struct tw_linger_set *set = l->set;
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        set->head = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    set->count--;
    if (l->ev != NULL)
        event_free(l->ev);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

static int arm(struct tw_linger *l)
{
    int64_t left = l->deadline_ms - now_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    return event_add(l->ev, &tv);
}

/* Whether the linger is over: the peer closed or failed, or the byte bound was reached. */
static int drain(struct tw_linger *l)
{
    char buf[DISCARD_CHUNK];
    while (l->discarded < l->limit) {
        ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            l->discarded += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
    return 1;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct tw_linger *l = arg;
    if ((what & EV_READ) && !drain(l) && now_ms() < l->deadline_ms && arm(l) == 0)
        return;
    tw_linger_done_fn done = l->done;
    void *done_arg = l->arg;
    unlink_free(l);
    if (done != NULL)
        done(done_arg);
}

struct tw_linger *tw_linger_start(struct tw_linger_set *set, struct event_base *base, int fd,
                                  tw_linger_done_fn done, void *arg)
{
    if (fd < 0 || (set->max > 0 && set->count >= set->max))
        return NULL;
    struct tw_linger *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->ev = event_new(base, fd, EV_READ, on_event, l);
    if (l->ev == NULL || shutdown(fd, SHUT_WR) != 0) {
        if (l->ev != NULL)
            event_free(l->ev);
        free(l);
        return NULL;
    }
    l->set = set;
    l->fd = fd;
    l->limit = set->bytes > 0 ? set->bytes : TW_LINGER_BYTES;
    l->deadline_ms = now_ms() + (set->ms > 0 ? set->ms : TW_LINGER_MS);
    l->done = done;
    l->arg = arg;
    l->next = set->head;
    if (set->head != NULL)
        set->head->prev = l;
    set->head = l;
    set->count++;
    if (arm(l) != 0) {
        l->fd = -1; /* handed back: the caller closes it */
        unlink_free(l);
        return NULL;
    }
    return l;
}

void tw_linger_abort(struct tw_linger *l)
{
    if (l != NULL)
        unlink_free(l);
}

void tw_linger_abort_all(struct tw_linger_set *set)
{
    while (set->head != NULL)
        unlink_free(set->head);
}
