/* The run: an optional warm-up (--resume: one full handshake per slot), the measured phase
 * bounded by count and duration, HOLD's idle period, and a hard time limit over all of it. */
#include <string.h>
#include <unistd.h>

#include "bench/internal.h"

#define RELAUNCH_DELAY_MS 10 /* after a failed connection, so a dead server is not hammered */
#define HARD_GRACE_MS 5000
/* Every connection failed so far, this many times: stop. */
#define GIVE_UP_FAILURES(b)                                                                        \
    (3 * (int64_t)(b)->nslots + 10) /* beyond duration + timeout before in-flight work is aborted  \
                                     */

static struct timeval ms_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

static bool want_more(const struct bench *b)
{
    if (b->stopping)
        return false;
    if (b->o->mode == BENCH_MODE_HOLD)
        return b->launched < b->o->hold;
    return b->o->count == 0 || b->launched < b->o->count;
}

static void launch_counted(struct slot *s)
{
    s->counted = true;
    s->priming = false;
    s->b->launched++;
    s->b->res->started++;
    bench_slot_launch(s);
}

static void sample(struct bench *b, struct bench_proc_sample *out)
{
    struct tw_err err;
    if (b->o->pid > 0 && bench_proc_sample(b->o->pid, out, &err) != 0)
        out->ok = false; /* the server died mid-run: reported as "not measured" */
}

static void finish_measure(struct bench *b)
{
    if (b->t0 == 0)
        return; /* the warm-up never finished */
    if (b->t_end == 0 || b->o->mode == BENCH_MODE_HOLD)
        b->t_end = bench_now_us();
    b->res->elapsed_us = b->t_end - b->t0;
    b->res->client_cpu_us = bench_self_cpu_us() - b->cpu0;
    sample(b, &b->res->after);
}

static void hold_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    finish_measure(b);
    b->measuring = false;
    b->stopping = true;
    for (int i = 0; i < b->nslots; i++) {
        struct slot *s = &b->slots[i];
        if (s->st == ST_HELD) {
            (void)SSL_shutdown(s->ssl); /* best effort: one close_notify, no wait */
            bench_slot_end(s, true, NULL, NULL);
        } else {
            bench_slot_abort(s);
        }
    }
}

static void begin_measure(struct bench *b)
{
    sample(b, &b->res->before);
    b->cpu0 = bench_self_cpu_us();
    b->t0 = bench_now_us();
    b->measuring = true;
    if (b->o->duration_ms > 0 && b->o->mode != BENCH_MODE_HOLD) {
        struct timeval tv = ms_tv(b->o->duration_ms);
        event_add(b->stop_ev, &tv);
    }
    for (int i = 0; i < b->nslots && want_more(b); i++)
        if (b->o->mode != BENCH_MODE_HOLD || i < b->o->conns)
            launch_counted(&b->slots[i]);
}

static void relaunch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct slot *s = arg;
    s->ev_added = false;
    if (want_more(s->b))
        launch_counted(s);
    else if (s->b->active == 0)
        event_base_loopbreak(s->b->base);
}

static void hold_progress(struct bench *b)
{
    /* Open the next slot's connection while the handshake concurrency allows. */
    for (int i = 0; i < b->nslots && want_more(b); i++) {
        struct slot *s = &b->slots[i];
        if (s->st == ST_IDLE && !s->counted) {
            launch_counted(s);
            return;
        }
    }
    int settled = 0;
    for (int i = 0; i < b->nslots; i++)
        settled += b->slots[i].counted && (b->slots[i].st == ST_HELD || b->slots[i].st == ST_IDLE);
    if (!b->stopping && settled == b->nslots && b->measuring) {
        struct timeval tv = ms_tv(b->o->hold_ms > 0 ? b->o->hold_ms : 1000);
        event_base_once(b->base, -1, EV_TIMEOUT, hold_done, b, &tv);
        b->stopping = true; /* nothing more opens; hold_done closes the held ones */
    }
}

void bench_after_end(struct slot *s, bool failed)
{
    struct bench *b = s->b;
    if (s->priming) {
        s->priming = false;
        if (--b->priming_left > 0)
            return;
        if (b->res->primed == 0) { /* no slot got a session: resuming cannot be measured */
            b->stopping = b->res->gave_up = true;
            event_base_loopbreak(b->base);
            return;
        }
        begin_measure(b);
        return;
    }
    if (b->o->mode == BENCH_MODE_HOLD && b->measuring) {
        hold_progress(b);
        return;
    }
    if (failed && b->res->ok == 0 && b->res->failed >= GIVE_UP_FAILURES(b)) {
        b->stopping = true; /* nothing works: say so now rather than after every timeout */
        b->res->gave_up = true;
    }
    if (want_more(b) && !failed) {
        launch_counted(s);
    } else if (want_more(b)) {
        event_assign(&s->ev, b->base, -1, 0, relaunch, s);
        struct timeval tv = ms_tv(RELAUNCH_DELAY_MS);
        event_add(&s->ev, &tv);
        s->ev_added = true;
    } else if (b->active == 0) {
        event_base_loopbreak(b->base);
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    b->stopping = true;
    b->res->hit_time_limit = true;
    for (int i = 0; i < b->nslots; i++) { /* failure back-off timers would never relaunch */
        struct slot *s = &b->slots[i];
        if (s->st == ST_IDLE && s->ev_added) {
            event_del(&s->ev);
            s->ev_added = false;
        }
    }
    if (b->active == 0)
        event_base_loopbreak(b->base);
}

static void on_hard_limit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bench *b = arg;
    on_stop(fd, what, arg);
    for (int i = 0; i < b->nslots; i++)
        bench_slot_abort(&b->slots[i]);
    event_base_loopbreak(b->base);
}

int bench_loop_run(struct bench *b, struct tw_err *err)
{
    const struct bench_opts *o = b->o;
    b->stop_ev = evtimer_new(b->base, on_stop, b);
    b->hard_ev = evtimer_new(b->base, on_hard_limit, b);
    TW_ENSURE(b->stop_ev != NULL && b->hard_ev != NULL, err, TW_ERR_INTERNAL, "out of memory");
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    int64_t hard = (int64_t)BENCH_MAX_DURATION_S * 1000;
    if (o->duration_ms > 0 && o->mode != BENCH_MODE_HOLD)
        hard = o->duration_ms + timeout + HARD_GRACE_MS;
    struct timeval tv = ms_tv(hard);
    event_add(b->hard_ev, &tv);
    if (o->resume && o->mode != BENCH_MODE_HOLD) {
        b->priming_left = b->nslots;
        for (int i = 0; i < b->nslots; i++) {
            b->slots[i].priming = true;
            bench_slot_launch(&b->slots[i]);
        }
    } else {
        begin_measure(b);
    }
    TW_ENSURE(event_base_dispatch(b->base) >= 0, err, TW_ERR_INTERNAL, "event loop failed");
    if (b->measuring || b->o->mode != BENCH_MODE_HOLD)
        finish_measure(b);
    /* Whatever is still open (a hard limit hit mid-connection) is closed uncounted. */
    for (int i = 0; i < b->nslots; i++) {
        struct slot *s = &b->slots[i];
        if (s->ev_added)
            event_del(&s->ev);
        s->ev_added = false;
        s->counted = s->priming = false;
        if (s->st != ST_IDLE) {
            SSL_free(s->ssl);
            s->ssl = NULL;
            close(s->fd);
            s->fd = -1;
            s->st = ST_IDLE;
        }
    }
    return 0;
}
