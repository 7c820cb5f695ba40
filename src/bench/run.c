/* bench_run: check the options, build the client SSL_CTX, resolve the target once, run the
 * loop and turn the tallies into the result. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <openssl/err.h>

#include "bench/internal.h"
#include "tlsx/tlsx.h"

void bench_opts_init(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->conns = 8;
    o->count = 1000;
    o->timeout_ms = 10000;
}

static int check_opts(const struct bench_opts *o, struct tw_err *err)
{
    TW_ENSURE(o->host != NULL && o->port != NULL, err, TW_ERR_USAGE, "no target HOST:PORT");
    TW_ENSURE(o->conns >= 1 && o->conns <= BENCH_MAX_CONNS, err, TW_ERR_USAGE,
              "--conns %d: give 1 to %d", o->conns, BENCH_MAX_CONNS);
    TW_ENSURE(o->count >= 0 && o->count <= BENCH_MAX_COUNT, err, TW_ERR_USAGE,
              "--count %lld: give 1 to %d", (long long)o->count, BENCH_MAX_COUNT);
    TW_ENSURE(o->duration_ms >= 0 && o->duration_ms <= BENCH_MAX_DURATION_S * 1000LL, err,
              TW_ERR_USAGE, "--duration: at most %ds", BENCH_MAX_DURATION_S);
    TW_ENSURE(o->count > 0 || o->duration_ms > 0 || o->mode == BENCH_MODE_HOLD, err, TW_ERR_USAGE,
              "give --count N or --duration S");
    TW_ENSURE(o->request <= BENCH_MAX_REQUEST, err, TW_ERR_USAGE, "--request: at most %u bytes",
              BENCH_MAX_REQUEST);
    TW_ENSURE(o->download <= BENCH_MAX_BYTES && o->upload <= BENCH_MAX_BYTES, err, TW_ERR_USAGE,
              "--download/--upload: at most 1 TiB per connection");
    TW_ENSURE(o->mode != BENCH_MODE_HOLD || (o->hold >= 1 && o->hold <= BENCH_MAX_CONNS), err,
              TW_ERR_USAGE, "--hold %d: give 1 to %d", o->hold, BENCH_MAX_CONNS);
    TW_ENSURE(o->h2_streams >= 0 && o->h2_streams <= BENCH_MAX_STREAMS, err, TW_ERR_USAGE,
              "--streams %d: give 1 to %d", o->h2_streams, BENCH_MAX_STREAMS);
    TW_ENSURE(o->h2_streams == 0 || ((o->mode == BENCH_MODE_HANDSHAKE ||
                                      o->mode == BENCH_MODE_HOLD) &&
                                     !o->resume && o->request == 0),
              err, TW_ERR_USAGE,
              "--h2 measures requests (or idle connections with --hold): no --resume, "
              "--request, --download or --upload");
    TW_ENSURE(o->cert_file != NULL && o->key_file != NULL, err, TW_ERR_USAGE,
              "give --cert and --key: the client certificate to present");
    return 0;
}

/* Enough descriptors for every slot (each holds one socket). */
static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)need + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

static SSL_CTX *make_ctx(const struct bench_opts *o, struct tw_err *err)
{
    struct tlsx_client_opts co;
    tlsx_client_opts_init(&co);
    co.ca_file = o->ca_file;
    co.cert_file = o->cert_file;
    co.key_file = o->key_file;
    co.min_version = o->tls_version;
    co.max_version = o->tls_version;
    SSL_CTX *ctx = tlsx_client_ctx_new(&co, err);
    if (ctx != NULL) {
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_sess_set_new_cb(ctx, bench_new_session);
    }
    return ctx;
}

static int resolve(const struct bench_opts *o, struct addrinfo **out, struct tw_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    int rc = getaddrinfo(o->host, o->port, &hints, out);
    TW_ENSURE(rc == 0, err, TW_ERR_USAGE, "cannot resolve %s:%s: %s", o->host, o->port,
              gai_strerror(rc));
    return 0;
}

static void summarise(struct bench *b)
{
    struct bench_result *r = b->res;
    double secs = (double)r->elapsed_us / 1e6;
    if (secs > 0) {
        r->rate = (double)r->ok / secs;
        r->mbytes_per_s = (double)(r->bytes_up + r->bytes_down) / 1e6 / secs;
    }
    bench_latency_summarise(r, &b->lat, &b->hs);
}

static void teardown(struct bench *b)
{
    for (int i = 0; b->slots != NULL && i < b->nslots; i++)
        SSL_SESSION_free(b->slots[i].sess);
    free(b->slots);
    free(b->buf);
    if (b->stop_ev)
        event_free(b->stop_ev);
    if (b->hard_ev)
        event_free(b->hard_ev);
    if (b->base)
        event_base_free(b->base);
    SSL_CTX_free(b->ctx);
    if (b->ai)
        freeaddrinfo(b->ai);
    bench_samples_free(&b->lat);
    bench_samples_free(&b->hs);
}

int bench_run(const struct bench_opts *o, struct bench_result *res, struct tw_err *err)
{
    memset(res, 0, sizeof(*res));
    res->pid = o->pid;
    TW_GUARD(check_opts(o, err));
    if (o->pid > 0) {
        struct bench_proc_sample probe;
        TW_GUARD(bench_proc_sample(o->pid, &probe, err));
    }
    struct bench b = {.o = o, .res = res};
    int rc = -1;
    b.nslots = o->mode == BENCH_MODE_HOLD ? o->hold : o->conns;
    if (o->mode != BENCH_MODE_HOLD && o->count > 0 && o->count < b.nslots)
        b.nslots = (int)o->count;
    raise_nofile(b.nslots);
    if ((b.ctx = make_ctx(o, err)) == NULL || resolve(o, &b.ai, err) != 0)
        goto out;
    b.base = event_base_new();
    b.slots = calloc((size_t)b.nslots, sizeof(*b.slots));
    b.buf = malloc(BENCH_IO_BUF);
    if (b.base == NULL || b.slots == NULL || b.buf == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory for %d connections", b.nslots);
        goto out;
    }
    memset(b.buf, 'x', BENCH_IO_BUF);
    for (int i = 0; i < b.nslots; i++) {
        b.slots[i].b = &b;
        b.slots[i].fd = -1;
    }
    if ((o->h2_streams > 0 ? bench_h2_run(&b, err) : bench_loop_run(&b, err)) != 0)
        goto out;
    summarise(&b);
    rc = 0;
out:
    teardown(&b);
    ERR_clear_error();
    return rc;
}

double bench_server_us_per_conn(const struct bench_result *r)
{
    if (!r->before.ok || !r->after.ok || r->ok == 0)
        return -1;
    return (double)(r->after.cpu_us - r->before.cpu_us) / (double)r->ok;
}

double bench_server_s_per_gb(const struct bench_result *r)
{
    uint64_t bytes = r->bytes_up + r->bytes_down;
    if (!r->before.ok || !r->after.ok || bytes == 0)
        return -1;
    return (double)(r->after.cpu_us - r->before.cpu_us) / 1e6 / ((double)bytes / 1e9);
}

double bench_server_kb_per_held(const struct bench_result *r)
{
    if (!r->before.ok || !r->after.ok || r->held <= 0)
        return -1;
    return (double)(r->after.rss_kb - r->before.rss_kb) / (double)r->held;
}
