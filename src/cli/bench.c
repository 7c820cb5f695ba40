/* twoway bench: the mTLS load generator's command line. Parses flags into bench_opts, runs,
 * prints the result (text or --json). Exit 0 when every measured connection succeeded, 1 when
 * some failed or the run could not start, 2 on usage errors. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/prov_ssl.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "est/est.h"
#include "util/clock.h"

_Static_assert(BENCH_MAX_CONNS == 10000, "--conns: update the usage and messages");

static const char usage[] =
    "usage: twoway bench HOST:PORT --cert F --key F [--ca F] [--server-name N]\n"
    "                    [--conns N] [--count N | --duration D] [--resume] "
    "[--tls 1.2|1.3]\n"
    "                    [--request BYTES] [--download BYTES | --upload BYTES | "
    "--hold N]\n"
    "                    [--h2 [--streams N] [--path P]] [--pid P] [--timeout D] [--json]\n"
    "       twoway bench --est URL|HOST:PORT --tokens FILE [--enrollments N] [--clients C]\n"
    "                    [--rate R] [--ca F] [--server-name N] [--duration D] [--pid P]\n"
    "                    [--issued FILE] [--json]\n\n"
    "Opens mutual-TLS connections to HOST:PORT, N at a time, back to back, and measures\n"
    "connections per second and latency percentiles. Each connection: full (or with\n"
    "--resume, resumed) handshake presenting --cert, an optional request read back in\n"
    "full (an echo backend), close_notify, then the server's close (a TLS 1.3 server\n"
    "refuses a client certificate only after the handshake: that counts as a failure).\n"
    "--download/--upload move bulk data per connection instead; --hold keeps N\n"
    "connections idle at once. With --pid, the server process's CPU time and resident\n"
    "memory are read from /proc before and after: CPU per connection, per GB, and kB\n"
    "per idle connection. Exit 0 when every connection succeeded, 1 otherwise.\n\n"
    "With --est, EST token enrollments against `twoway ca serve` instead: each one a new\n"
    "TLS connection sending POST /.well-known/est/simpleenroll with the next token of\n"
    "--tokens (lines NAME TOKEN, from `twoway ca token NAME --count N --out FILE`) and a\n"
    "CSR for a fresh P-256 key; keys and CSRs are made before the measured window. Every\n"
    "answer must be a certificate for its CSR's key. Closed loop (--clients at a time) or\n"
    "open loop (--rate per second, latency counted from the scheduled arrival).\n\n"
    "options:\n"
    "  --cert FILE          client certificate (PEM, then its chain)\n"
    "  --key FILE           its private key (0600)\n"
    "  --ca FILE            CAs trusted for the server certificate (default: system)\n"
    "  --server-name NAME   name the server certificate must hold, and SNI "
    "(default: HOST)\n"
    "  --conns N            concurrent connections (default 8, at most 10000)\n"
    "  --count N            connections to complete (default 1000 unless --duration)\n"
    "  --duration D         run this long (10s, 2m; at most 1h); with --count, "
    "whichever first\n"
    "  --resume             resume each connection slot's last session "
    "(its first handshake,\n"
    "                       full, is a warm-up and not counted)\n"
    "  --tls 1.2|1.3        only this TLS version (default: negotiate)\n"
    "  --request BYTES      send BYTES after the handshake, read as many back "
    "(4k, 1m)\n"
    "  --download BYTES     read BYTES per connection (a backend that sends)\n"
    "  --upload BYTES       write BYTES per connection (a backend that discards)\n"
    "  --hold N             open N connections, keep them idle --hold-time "
    "(default 1s)\n"
    "  --hold-time D        how long --hold keeps them\n"
    "  --h2                 HTTP/2 requests instead (ALPN h2): --conns connections set\n"
    "                       up first, each keeping --streams GET requests in flight;\n"
    "                       --count counts requests, CPU is per request\n"
    "  --streams N          requests in flight per connection (default 10, at most 1000)\n"
    "  --path P             the request path (default /)\n"
    "  --pid P              server process to measure (CPU, memory) from /proc\n"
    "  --timeout D          per-connection inactivity timeout (default 10s)\n"
    "  --json               one JSON object on stdout\n"
    "  --est URL|HOST:PORT  EST enrollments against this `ca serve` (https://HOST:PORT[/PATH])\n"
    "  --tokens FILE        --est: one-time tokens, a line NAME TOKEN each (each used once)\n"
    "  --enrollments N      --est: enrollments to make (default: one per token)\n"
    "  --clients C          --est: enrollments in flight (default 8; with --rate, the cap,\n"
    "                       default 256)\n"
    "  --rate R             --est: open loop, R enrollments started per second\n"
    "  --issued FILE        --est: write the serial of every certificate received there\n\n"
    "examples:\n"
    "  twoway bench 127.0.0.1:8443 --cert alice.chain.pem --key alice.key "
    "--ca chain.pem --count 2000\n"
    "  twoway bench 127.0.0.1:8443 --cert a.pem --key a.key --ca ca.pem --resume "
    "--tls 1.2 --duration 10s\n"
    "  twoway bench 127.0.0.1:8443 --cert a.pem --key a.key --ca ca.pem --conns 1 "
    "--count 4 --download 256m --pid $(pgrep -o twoway)\n"
    "  twoway bench 127.0.0.1:8443 --cert a.pem --key a.key --ca ca.pem --hold 500 "
    "--request 16 --pid 1234 --json\n"
    "  twoway ca token dev --count 2000 --out tokens.txt && twoway bench --est "
    "https://127.0.0.1:8443 \\\n"
    "      --ca twoway-data/ca/chain.pem --tokens tokens.txt --enrollments 2000 --clients 16\n";

struct opts {
    struct bench_opts b;
    struct flags_tls tls;
    bool json;
    bool h2;
    int streams;
    int count;                             /* 0: not given */
    int64_t duration_s, timeout_s, hold_s; /* 0: not given */
    char host[256], port[8];
    /* --est */
    const char *est;
    struct bench_est_opts e;
    int enrollments;
    char est_base[512];
};

/* "4096", "4k", "1m", "2g" (powers of 1024). */
static int parse_bytes(const char *flag, const char *v, uint64_t *out, struct tw_err *err)
{
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    TW_ENSURE(end != v && v[0] != '-', err, TW_ERR_USAGE,
              "%s '%s': give a size like 4096, 64k, 1m, 2g", flag, v);
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    else if (*end == 'g' || *end == 'G')
        shift = 30, end++;
    TW_ENSURE(*end == '\0' && n <= (BENCH_MAX_BYTES >> shift), err, TW_ERR_USAGE,
              "%s '%s': give a size like 4096, 64k, 1m, 2g (at most 1t)", flag, v);
    *out = (uint64_t)n << shift;
    return 0;
}

/* --download, --upload and --hold each choose the mode; only one of them may. */
static int set_mode(struct opts *o, enum bench_mode m, const char *flag, struct tw_err *err)
{
    TW_ENSURE(o->b.mode == BENCH_MODE_HANDSHAKE || o->b.mode == m, err, TW_ERR_USAGE,
              "%s: choose one of --download, --upload, --hold", flag);
    o->b.mode = m;
    return 0;
}

static int request_flag(void *opts, const char *v, struct tw_err *err)
{
    struct opts *o = opts;
    return parse_bytes("--request", v, &o->b.request, err);
}

static int download_flag(void *opts, const char *v, struct tw_err *err)
{
    struct opts *o = opts;
    TW_GUARD(set_mode(o, BENCH_MODE_DOWNLOAD, "--download", err));
    return parse_bytes("--download", v, &o->b.download, err);
}

static int upload_flag(void *opts, const char *v, struct tw_err *err)
{
    struct opts *o = opts;
    TW_GUARD(set_mode(o, BENCH_MODE_UPLOAD, "--upload", err));
    return parse_bytes("--upload", v, &o->b.upload, err);
}

static int hold_flag(void *opts, const char *v, struct tw_err *err)
{
    struct opts *o = opts;
    TW_GUARD(set_mode(o, BENCH_MODE_HOLD, "--hold", err));
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    TW_ENSURE(end != v && *end == '\0' && n >= 1 && n <= BENCH_MAX_CONNS, err, TW_ERR_USAGE,
              "--hold '%s': give 1 to %d", v, BENCH_MAX_CONNS);
    o->b.hold = (int)n;
    return 0;
}

static int rate_flag(void *opts, const char *v, struct tw_err *err)
{
    struct opts *o = opts;
    char *end = NULL;
    double r = strtod(v, &end);
    TW_ENSURE(end != v && *end == '\0' && r > 0 && r <= BENCH_EST_MAX_RATE, err, TW_ERR_USAGE,
              "--rate '%s': give enrollments per second, more than 0 and at most %.0f", v,
              BENCH_EST_MAX_RATE);
    o->e.rate = r;
    return 0;
}

static const struct flag_choice versions[] = {
    {"1.2", TLS1_2_VERSION},
    {"1.3", TLS1_3_VERSION},
    {NULL, 0},
};

_Static_assert(BENCH_MAX_DURATION_S == 3600, "--duration: update the message");

#define AT(field) offsetof(struct opts, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(tls), .group = flags_tls_group},
    {.name = "server-name", .kind = FLAG_STRING, .off = AT(b.server_name)},
    {.name = "json", .kind = FLAG_BOOL, .off = AT(json)},
    {.name = "resume", .kind = FLAG_BOOL, .off = AT(b.resume)},
    {.name = "h2", .kind = FLAG_BOOL, .off = AT(h2)},
    {.name = "streams",
     .kind = FLAG_INT,
     .off = AT(streams),
     .min = 1,
     .max = BENCH_MAX_STREAMS,
     .bad = "give"},
    {.name = "path", .kind = FLAG_STRING, .off = AT(b.path)},
    {.name = "conns",
     .kind = FLAG_INT,
     .off = AT(b.conns),
     .min = 1,
     .max = BENCH_MAX_CONNS,
     .bad = "give"},
    {.name = "count",
     .kind = FLAG_INT,
     .off = AT(count),
     .min = 1,
     .max = BENCH_MAX_COUNT,
     .bad = "give"},
    {.name = "pid", .kind = FLAG_INT, .off = AT(b.pid), .min = 1, .max = 1 << 30, .bad = "give"},
    {.name = "duration",
     .kind = FLAG_DURATION,
     .off = AT(duration_s),
     .min = 1,
     .max = BENCH_MAX_DURATION_S,
     .bad = "give 1s to 3600s"},
    {.name = "timeout",
     .kind = FLAG_DURATION,
     .off = AT(timeout_s),
     .min = 1,
     .max = 3600,
     .bad = "give 1s to 3600s"},
    {.name = "hold-time",
     .kind = FLAG_DURATION,
     .off = AT(hold_s),
     .min = 1,
     .max = 3600,
     .bad = "give 1s to 3600s"},
    {.name = "tls", .kind = FLAG_CHOICE, .off = AT(b.tls_version), .choices = versions},
    {.name = "request", .kind = FLAG_CALL, .call = request_flag},
    {.name = "download", .kind = FLAG_CALL, .call = download_flag},
    {.name = "upload", .kind = FLAG_CALL, .call = upload_flag},
    {.name = "hold", .kind = FLAG_CALL, .call = hold_flag},
    {.name = "est", .kind = FLAG_STRING, .off = AT(est)},
    {.name = "tokens", .kind = FLAG_STRING, .off = AT(e.tokens_file)},
    {.name = "enrollments",
     .kind = FLAG_INT,
     .off = AT(enrollments),
     .min = 1,
     .max = BENCH_EST_MAX_ENROLLMENTS,
     .bad = "give"},
    {.name = "clients",
     .kind = FLAG_INT,
     .off = AT(e.clients),
     .min = 1,
     .max = BENCH_MAX_CONNS,
     .bad = "give"},
    {.name = "rate", .kind = FLAG_CALL, .call = rate_flag},
    {.name = "issued", .kind = FLAG_STRING, .off = AT(e.issued_file)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {
    .cmd = "bench", .usage = usage, .flags = flags, .nargs = FLAGS_ANY_ARGS};

/* --est URL or HOST:PORT into the EST options; the flags of the mTLS modes are refused. */
static int parse_est(int nargs, struct opts *o)
{
    const struct bench_opts *b = &o->b;
    if (nargs > 0)
        return cli_usage_error("bench", "--est takes the server as its value: no HOST:PORT");
    if (o->tls.cert != NULL || o->tls.key != NULL)
        return cli_usage_error("bench", "--est enrolls with tokens: no --cert or --key");
    if (b->resume || b->mode != BENCH_MODE_HANDSHAKE || b->request > 0 || o->h2 ||
        o->streams > 0 || b->path != NULL || o->count > 0 || b->tls_version != 0)
        return cli_usage_error("bench", "--est: no --resume, --request, --download, --upload, "
                                        "--hold, --h2, --streams, --path, --tls or --count "
                                        "(--enrollments counts)");
    if (o->e.tokens_file == NULL)
        return cli_usage_error("bench", "--est needs --tokens FILE (`twoway ca token NAME "
                                        "--count N --out FILE` makes one)");
    if (strstr(o->est, "://") != NULL) { /* a URL: https only */
        struct est_url u;
        struct tw_err err;
        if (est_url_parse(o->est, &u, &err) != 0)
            return cli_usage_error("bench", "%s", err.msg);
        size_t hl = strlen(u.host);
        bool v6 = hl > 2 && u.host[0] == '[' && u.host[hl - 1] == ']';
        snprintf(o->host, sizeof(o->host), "%.*s", (int)(v6 ? hl - 2 : hl), u.host + v6);
        snprintf(o->port, sizeof(o->port), "%s", u.port);
        snprintf(o->est_base, sizeof(o->est_base), "%s", u.est_base);
        o->e.base = o->est_base;
    } else {
        int rc = flags_host_port("bench", o->est, o->host, sizeof(o->host), o->port,
                                 sizeof(o->port));
        if (rc != FLAGS_GO_ON)
            return rc;
    }
    o->e.host = o->host;
    o->e.port = o->port;
    o->e.ca_file = o->tls.ca;
    o->e.server_name = b->server_name;
    o->e.enrollments = o->enrollments;
    o->e.duration_ms = o->duration_s * 1000;
    if (o->timeout_s > 0)
        o->e.timeout_ms = o->timeout_s * 1000;
    o->e.pid = b->pid;
    return FLAGS_GO_ON;
}

static int parse(int argc, char **argv, struct opts *o)
{
    int nargs = 0;
    int rc = flags_parse(&flag_set, o, argc, argv, &nargs);
    if (rc != FLAGS_GO_ON)
        return rc;
    if (o->est != NULL)
        return parse_est(nargs, o);
    if (o->e.tokens_file != NULL || o->enrollments > 0 || o->e.clients > 0 || o->e.rate > 0 ||
        o->e.issued_file != NULL)
        return cli_usage_error("bench", "--tokens, --enrollments, --clients, --rate and --issued "
                                        "go with --est URL");
    if (nargs > 1)
        return cli_usage_error("bench", "one HOST:PORT only ('%s')", argv[2]);
    if (nargs == 0)
        return cli_usage_error("bench", "give HOST:PORT");
    o->b.cert_file = o->tls.cert;
    o->b.key_file = o->tls.key;
    o->b.ca_file = o->tls.ca;
    if (o->b.cert_file == NULL || o->b.key_file == NULL)
        return cli_usage_error("bench", "give --cert and --key (the client certificate)");
    if (o->count > 0)
        o->b.count = o->count;
    if (o->duration_s > 0)
        o->b.duration_ms = o->duration_s * 1000;
    if (o->duration_s > 0 && o->count == 0)
        o->b.count = 0; /* --duration alone: run for that long */
    if (o->timeout_s > 0)
        o->b.timeout_ms = o->timeout_s * 1000;
    if (o->hold_s > 0)
        o->b.hold_ms = o->hold_s * 1000;
    if (o->streams > 0 && !o->h2)
        return cli_usage_error("bench", "--streams needs --h2");
    if (o->h2)
        o->b.h2_streams = o->streams > 0 ? o->streams : 10;
    if (o->h2 && o->b.mode == BENCH_MODE_HOLD) {
        o->b.h2_streams = 1; /* one request per held connection */
        o->b.count = o->b.hold;
    }
    if (o->b.mode == BENCH_MODE_HOLD && o->b.resume)
        return cli_usage_error("bench", "--hold and --resume do not go together");
    o->b.host = o->host;
    o->b.port = o->port;
    return flags_host_port("bench", argv[1], o->host, sizeof(o->host), o->port, sizeof(o->port));
}

static void print_json(json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(j);
}

/* Exit 0 when every enrollment got its certificate, 1 otherwise. */
static int run_est(const struct opts *o)
{
    struct bench_est_result *res = calloc(1, sizeof(*res));
    if (res == NULL)
        return 1;
    struct tw_err err;
    tw_err_clear(&err);
    if (bench_est_run(&o->e, res, &err) != 0) {
        free(res);
        return cli_fail(&err);
    }
    if (o->json)
        print_json(bench_est_result_json(&o->e, res));
    else
        bench_est_result_print(stdout, &o->e, res);
    int rc = res->r.failed == 0 && res->r.ok > 0 ? 0 : 1;
    free(res);
    return rc;
}

int cli_bench(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    bench_opts_init(&o.b);
    bench_est_opts_init(&o.e);
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.est != NULL)
        return run_est(&o);
    struct bench_result *res = calloc(1, sizeof(*res));
    if (res == NULL)
        return 1;
    struct tw_err err;
    tw_err_clear(&err);
    if (bench_run(&o.b, res, &err) != 0) {
        free(res);
        return cli_fail(&err);
    }
    if (o.json) {
        print_json(bench_result_json(&o.b, res));
    } else {
        bench_result_print(stdout, &o.b, res);
    }
    rc = res->failed == 0 && res->ok > 0 ? 0 : 1;
    if (!bench_resumed_enough(&o.b, res)) {
        fprintf(stderr,
                "twoway bench: only %lld of %lld offered sessions were resumed (%d %% needed):"
                " this run measured full handshakes\n",
                (long long)res->resumed, (long long)res->offered, BENCH_MIN_RESUMED_PCT);
        rc = 1;
    }
    free(res);
    return rc;
}
