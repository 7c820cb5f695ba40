/* twoway bench --est: the run. Tokens loaded and every enrollment prepared first (not timed),
 * then the measured window: closed loop (each of --clients slots starts its next enrollment
 * when the last one ends) or open loop (arrival i is due at t0 + i / rate; a due arrival
 * starts on a free slot, later if none is free, and its latency still counts from when it was
 * due, so a slow server is not hidden by a generator that waits for it). Bounded by the
 * enrollment count, --duration and a hard limit; each connection by an inactivity timeout. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>

#include "bench/est_internal.h"
#include "tlsx/tlsx.h"
#include "util/fs.h"

#define HARD_GRACE_MS 5000
/* No enrollment got an HTTP answer so far, this many times: stop (nothing listens, TLS fails).
 * Refusals do not count: a server answering 401 to spent tokens works (the token race). */
#define GIVE_UP_FAILURES(b) (3 * (int64_t)(b)->nslots + 10)
#define OPEN_LOOP_CLIENTS 256 /* --rate without --clients: enrollments in flight at most */
#define CLOSED_LOOP_CLIENTS 8
#define RESUME_DELAY_US 1000 /* after a failed enrollment, before the slot goes on */
#define LATE_US 1000 /* open loop: an arrival started this much after it was due is late */

void bench_est_opts_init(struct bench_est_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 10000;
}

static struct timeval us_tv(int64_t us)
{
    if (us < 0)
        us = 0;
    struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
    return tv;
}

static bool want_more(const struct est_bench *b)
{
    return !b->stopping && b->next < b->n;
}

static int64_t due_at(const struct est_bench *b, size_t i)
{
    return b->t0 + (int64_t)((double)i * b->interval_us + 0.5);
}

static struct est_slot *free_slot(struct est_bench *b)
{
    for (int i = 0; i < b->nslots; i++)
        if (b->slots[i].st == EST_IDLE)
            return &b->slots[i];
    return NULL;
}

static void start_on(struct est_bench *b, struct est_slot *s)
{
    size_t i = b->next++;
    int64_t sched = b->o->rate > 0 ? due_at(b, i) : 0;
    int64_t lag = sched > 0 ? bench_now_us() - sched : 0;
    if (lag > b->res->lat_max_sched_us)
        b->res->lat_max_sched_us = lag;
    b->res->behind += lag > LATE_US;
    est_slot_start(s, i, sched);
}

/* Open loop: start every due arrival a slot is free for, then wait for the next one. */
static void arrivals(struct est_bench *b)
{
    int64_t now = bench_now_us();
    while (want_more(b) && due_at(b, b->next) <= now) {
        struct est_slot *s = free_slot(b);
        if (s == NULL)
            return; /* started when a slot frees (est_after_end), late */
        start_on(b, s);
        now = bench_now_us();
    }
    if (want_more(b)) {
        struct timeval tv = us_tv(due_at(b, b->next) - now);
        event_add(b->arrival_ev, &tv);
    }
}

static void on_arrival(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    arrivals(arg);
}

/* After a failure the next start waits for the loop, so a server refusing at once does not
 * turn into a recursion as deep as the enrollment count. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct est_slot *s = arg;
    s->ev_added = false;
    est_after_end(s, false);
}

void est_after_end(struct est_slot *s, bool failed)
{
    struct est_bench *b = s->b;
    struct bench_result *r = &b->res->r;
    if (failed && b->answered == 0 && r->failed >= GIVE_UP_FAILURES(b)) {
        b->stopping = true; /* nothing works: say so now rather than after every token */
        r->gave_up = true;
    }
    if (failed && want_more(b)) {
        struct timeval tv = us_tv(RESUME_DELAY_US);
        event_assign(&s->ev, b->base, -1, 0, on_resume, s);
        event_add(&s->ev, &tv);
        s->ev_added = true;
        return;
    }
    if (b->o->rate > 0)
        arrivals(b);
    else if (want_more(b))
        start_on(b, s);
    if (b->active == 0 && !want_more(b))
        event_base_loopbreak(b->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct est_bench *b = arg;
    b->stopping = true;
    b->res->r.hit_time_limit = true;
    if (b->active == 0)
        event_base_loopbreak(b->base);
}

static void on_hard_limit(evutil_socket_t fd, short what, void *arg)
{
    struct est_bench *b = arg;
    on_stop(fd, what, arg);
    for (int i = 0; i < b->nslots; i++)
        est_slot_abort(&b->slots[i]);
    event_base_loopbreak(b->base);
}

static int loop(struct est_bench *b, struct tw_err *err)
{
    const struct bench_est_opts *o = b->o;
    b->arrival_ev = evtimer_new(b->base, on_arrival, b);
    b->stop_ev = evtimer_new(b->base, on_stop, b);
    b->hard_ev = evtimer_new(b->base, on_hard_limit, b);
    TW_ENSURE(b->arrival_ev && b->stop_ev && b->hard_ev, err, TW_ERR_INTERNAL, "out of memory");
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    int64_t hard_ms = (int64_t)BENCH_MAX_DURATION_S * 1000;
    if (o->duration_ms > 0)
        hard_ms = o->duration_ms + timeout + HARD_GRACE_MS;
    struct timeval tv = us_tv(hard_ms * 1000);
    event_add(b->hard_ev, &tv);
    if (o->duration_ms > 0) {
        tv = us_tv(o->duration_ms * 1000);
        event_add(b->stop_ev, &tv);
    }
    if (b->o->pid > 0 && bench_proc_sample(b->o->pid, &b->res->r.before, err) != 0)
        return -1;
    b->cpu0 = bench_self_cpu_us();
    b->t0 = bench_now_us();
    if (o->rate > 0)
        arrivals(b);
    else
        for (int i = 0; i < b->nslots && want_more(b); i++)
            start_on(b, &b->slots[i]);
    if (b->active > 0 || want_more(b))
        TW_ENSURE(event_base_dispatch(b->base) >= 0, err, TW_ERR_INTERNAL, "event loop failed");
    b->stopping = true;
    for (int i = 0; i < b->nslots; i++) { /* what a hard limit left open */
        est_slot_abort(&b->slots[i]);
        if (b->slots[i].ev_added)
            event_del(&b->slots[i].ev);
        b->slots[i].ev_added = false;
    }
    struct bench_result *r = &b->res->r;
    r->client_cpu_us = bench_self_cpu_us() - b->cpu0;
    r->elapsed_us = (b->t_end > 0 ? b->t_end : bench_now_us()) - b->t0;
    struct tw_err ignore;
    if (o->pid > 0 && bench_proc_sample(o->pid, &r->after, &ignore) != 0)
        r->after.ok = false; /* the server died mid-run: "not measured" */
    return 0;
}

static int check_opts(const struct bench_est_opts *o, struct tw_err *err)
{
    TW_ENSURE(o->host != NULL && o->port != NULL, err, TW_ERR_USAGE, "no EST server given");
    TW_ENSURE(o->tokens_file != NULL, err, TW_ERR_USAGE,
              "give --tokens FILE (make one with `twoway ca token NAME --count N --out FILE`)");
    TW_ENSURE(o->clients >= 0 && o->clients <= BENCH_MAX_CONNS, err, TW_ERR_USAGE,
              "--clients %d: give 1 to %d", o->clients, BENCH_MAX_CONNS);
    TW_ENSURE(o->enrollments >= 0 && o->enrollments <= BENCH_EST_MAX_ENROLLMENTS, err,
              TW_ERR_USAGE, "--enrollments %lld: give 1 to %d", (long long)o->enrollments,
              BENCH_EST_MAX_ENROLLMENTS);
    TW_ENSURE(o->rate >= 0 && o->rate <= BENCH_EST_MAX_RATE, err, TW_ERR_USAGE,
              "--rate %g: give a number of enrollments per second up to %.0f", o->rate,
              BENCH_EST_MAX_RATE);
    TW_ENSURE(o->duration_ms >= 0 && o->duration_ms <= BENCH_MAX_DURATION_S * 1000LL, err,
              TW_ERR_USAGE, "--duration: at most %ds", BENCH_MAX_DURATION_S);
    return 0;
}

static int setup(struct est_bench *b, struct tw_err *err)
{
    const struct bench_est_opts *o = b->o;
    struct tlsx_client_opts co;
    tlsx_client_opts_init(&co);
    co.ca_file = o->ca_file;
    if ((b->ctx = tlsx_client_ctx_new(&co, err)) == NULL)
        return -1;
    /* Every enrollment a full handshake, as a device enrolling for the first time does. */
    SSL_CTX_set_session_cache_mode(b->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(b->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    int rc = getaddrinfo(o->host, o->port, &hints, &b->ai);
    TW_ENSURE(rc == 0, err, TW_ERR_USAGE, "cannot resolve %s:%s: %s", o->host, o->port,
              gai_strerror(rc));
    b->nslots = o->clients > 0 ? o->clients : o->rate > 0 ? OPEN_LOOP_CLIENTS : CLOSED_LOOP_CLIENTS;
    if ((size_t)b->nslots > b->n)
        b->nslots = (int)b->n;
    b->res->clients = b->nslots;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)b->nslots + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)b->nslots + 64 ? rl.rlim_max : (rlim_t)b->nslots + 64;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    b->base = event_base_new();
    b->slots = calloc((size_t)b->nslots, sizeof(*b->slots));
    TW_ENSURE(b->base != NULL && b->slots != NULL, err, TW_ERR_INTERNAL,
              "out of memory for %d clients", b->nslots);
    for (int i = 0; i < b->nslots; i++) {
        b->slots[i].b = b;
        b->slots[i].fd = -1;
    }
    if (o->rate > 0)
        b->interval_us = 1e6 / o->rate;
    return 0;
}

static int prepare(struct est_bench *b, struct tw_err *err)
{
    const struct bench_est_opts *o = b->o;
    struct bench_token *tokens = NULL;
    size_t ntok = 0;
    int64_t t = bench_now_us();
    TW_GUARD(bench_tokens_load(o->tokens_file, &tokens, &ntok, err));
    b->n = o->enrollments > 0 ? (size_t)o->enrollments : ntok;
    int rc = -1;
    if (ntok < b->n) {
        tw_err_set(err, TW_ERR_CONFIG,
                   "%s holds %zu tokens; --enrollments %zu needs one per enrollment",
                   o->tokens_file, ntok, b->n);
        goto out;
    }
    b->items = calloc(b->n, sizeof(*b->items));
    if (b->items == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory for %zu enrollments", b->n);
        goto out;
    }
    if (o->issued_file != NULL && (b->serials = calloc(b->n, sizeof(*b->serials))) == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory for %zu serials", b->n);
        goto out;
    }
    rc = est_items_prepare(o, tokens, b->n, b->items, err);
    b->res->prep_us = bench_now_us() - t;
out:
    bench_tokens_free(tokens, ntok);
    return rc;
}

/* --issued: the serials received, one a line (what the durability tests hold the inventory
 * to after a CA process is killed). */
static int write_issued(struct est_bench *b, struct tw_err *err)
{
    size_t n = (size_t)b->res->r.ok;
    char *text = malloc(n * BENCH_EST_SERIAL_MAX + 1);
    TW_ENSURE(text != NULL, err, TW_ERR_INTERNAL, "out of memory for %zu serials", n);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, BENCH_EST_SERIAL_MAX + 1, "%s\n", b->serials[i]);
    int rc = fs_write_atomic(b->o->issued_file, text, len, 0644, err);
    free(text);
    return rc;
}

static void summarise(struct est_bench *b)
{
    struct bench_result *r = &b->res->r;
    if (r->elapsed_us > 0)
        r->rate = (double)r->ok / ((double)r->elapsed_us / 1e6);
    r->full = r->ok;
    bench_latency_summarise(r, &b->lat, &b->hs);
}

static void teardown(struct est_bench *b)
{
    for (int i = 0; b->slots != NULL && i < b->nslots; i++)
        free(b->slots[i].resp);
    free(b->slots);
    if (b->arrival_ev)
        event_free(b->arrival_ev);
    if (b->stop_ev)
        event_free(b->stop_ev);
    if (b->hard_ev)
        event_free(b->hard_ev);
    if (b->base)
        event_base_free(b->base);
    SSL_CTX_free(b->ctx);
    if (b->ai)
        freeaddrinfo(b->ai);
    est_items_free(b->items, b->n);
    free(b->serials);
    bench_samples_free(&b->lat);
    bench_samples_free(&b->hs);
}

int bench_est_run(const struct bench_est_opts *o, struct bench_est_result *res,
                  struct tw_err *err)
{
    memset(res, 0, sizeof(*res));
    res->r.pid = o->pid;
    TW_GUARD(check_opts(o, err));
    struct est_bench b = {.o = o, .res = res};
    int rc = -1;
    if (prepare(&b, err) == 0 && setup(&b, err) == 0 && loop(&b, err) == 0 &&
        (o->issued_file == NULL || write_issued(&b, err) == 0)) {
        summarise(&b);
        rc = 0;
    }
    teardown(&b);
    ERR_clear_error();
    return rc;
}
