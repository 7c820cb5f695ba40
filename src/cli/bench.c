/* twoway bench: the mTLS load generator's command line. Parses flags into bench_opts, runs,
 * prints the result (text or --json). Exit 0 when every measured connection succeeded, 1 when
 * some failed or the run could not start, 2 on usage errors. */
#include <stdlib.h>
#include <string.h>

#include <openssl/prov_ssl.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "util/clock.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: twoway bench HOST:PORT --cert F --key F [--ca F] [--server-name N]\n"
            "                    [--conns N] [--count N | --duration D] [--resume] "
            "[--tls 1.2|1.3]\n"
            "                    [--request BYTES] [--download BYTES | --upload BYTES | "
            "--hold N]\n"
            "                    [--pid P] [--timeout D] [--json]\n\n"
            "Opens mutual-TLS connections to HOST:PORT, N at a time, back to back, and measures\n"
            "connections per second and latency percentiles. Each connection: full (or with\n"
            "--resume, resumed) handshake presenting --cert, an optional request read back in\n"
            "full (an echo backend), close_notify, then the server's close (a TLS 1.3 server\n"
            "refuses a client certificate only after the handshake: that counts as a failure).\n"
            "--download/--upload move bulk data per connection instead; --hold keeps N\n"
            "connections idle at once. With --pid, the server process's CPU time and resident\n"
            "memory are read from /proc before and after: CPU per connection, per GB, and kB\n"
            "per idle connection. Exit 0 when every connection succeeded, 1 otherwise.\n\n"
            "options:\n"
            "  --cert FILE          client certificate (PEM, then its chain)\n"
            "  --key FILE           its private key (0600)\n"
            "  --ca FILE            CAs trusted for the server certificate (default: system)\n"
            "  --server-name NAME   name the server certificate must hold, and SNI "
            "(default: HOST)\n"
            "  --conns N            concurrent connections (default 8, at most %d)\n"
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
            "  --pid P              server process to measure (CPU, memory) from /proc\n"
            "  --timeout D          per-connection inactivity timeout (default 10s)\n"
            "  --json               one JSON object on stdout\n\n"
            "examples:\n"
            "  twoway bench 127.0.0.1:8443 --cert alice.chain.pem --key alice.key "
            "--ca chain.pem --count 2000\n"
            "  twoway bench 127.0.0.1:8443 --cert a.pem --key a.key --ca ca.pem --resume "
            "--tls 1.2 --duration 10s\n"
            "  twoway bench 127.0.0.1:8443 --cert a.pem --key a.key --ca ca.pem --conns 1 "
            "--count 4 --download 256m --pid $(pgrep -o twoway)\n"
            "  twoway bench 127.0.0.1:8443 --cert a.pem --key a.key --ca ca.pem --hold 500 "
            "--request 16 --pid 1234 --json\n",
            BENCH_MAX_CONNS);
}

struct opts {
    struct bench_opts b;
    bool json, count_set;
    char host[256], port[8];
};

/* "4096", "4k", "1m", "2g" (powers of 1024). */
static int parse_bytes(const char *flag, const char *v, uint64_t *out)
{
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v || v[0] == '-')
        return cli_usage_error("bench", "%s '%s': give a size like 4096, 64k, 1m, 2g", flag, v);
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10, end++;
    else if (*end == 'm' || *end == 'M')
        shift = 20, end++;
    else if (*end == 'g' || *end == 'G')
        shift = 30, end++;
    if (*end != '\0' || n > (BENCH_MAX_BYTES >> shift))
        return cli_usage_error("bench", "%s '%s': give a size like 4096, 64k, 1m, 2g (at most 1t)",
                               flag, v);
    *out = (uint64_t)n << shift;
    return -1;
}

static int parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || n < lo || n > hi)
        return cli_usage_error("bench", "%s '%s': give %lld to %lld", flag, v, lo, hi);
    *out = n;
    return -1;
}

static int parse_duration(const char *flag, const char *v, int64_t max_s, int64_t *ms)
{
    struct tw_err err;
    int64_t s = 0;
    if (clock_duration_parse(v, &s, &err) != 0 || s < 1 || s > max_s)
        return cli_usage_error("bench", "%s '%s': give 1s to %llds", flag, v, (long long)max_s);
    *ms = s * 1000;
    return -1;
}

static int split_target(struct opts *o, const char *t)
{
    const char *colon = strrchr(t, ':');
    if (colon == NULL || colon == t || colon[1] == '\0')
        return cli_usage_error("bench", "'%s': give HOST:PORT", t);
    size_t hlen = (size_t)(colon - t);
    const char *h = t;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']')
        h++, hlen -= 2;
    long long port = 0;
    int rc = parse_int("port", colon + 1, 1, 65535, &port);
    if (rc >= 0)
        return rc;
    if (hlen == 0 || hlen >= sizeof(o->host))
        return cli_usage_error("bench", "'%s': host is empty or too long", t);
    memcpy(o->host, h, hlen);
    o->host[hlen] = '\0';
    snprintf(o->port, sizeof(o->port), "%lld", port);
    o->b.host = o->host;
    o->b.port = o->port;
    return -1;
}

static int take(int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc)
        return cli_usage_error("bench", "%s needs a value", argv[*i]);
    *out = argv[++*i];
    return -1;
}

static int set_mode(struct opts *o, enum bench_mode m, const char *flag)
{
    if (o->b.mode != BENCH_MODE_HANDSHAKE && o->b.mode != m)
        return cli_usage_error("bench", "%s: choose one of --download, --upload, --hold", flag);
    o->b.mode = m;
    return -1;
}

static int parse_value(struct opts *o, const char *a, const char *v)
{
    struct bench_opts *b = &o->b;
    long long n = 0;
    int rc = -1;
    if (strcmp(a, "--conns") == 0) {
        if ((rc = parse_int(a, v, 1, BENCH_MAX_CONNS, &n)) < 0)
            b->conns = (int)n;
    } else if (strcmp(a, "--count") == 0) {
        if ((rc = parse_int(a, v, 1, BENCH_MAX_COUNT, &n)) < 0)
            b->count = n, o->count_set = true;
    } else if (strcmp(a, "--duration") == 0) {
        rc = parse_duration(a, v, BENCH_MAX_DURATION_S, &b->duration_ms);
    } else if (strcmp(a, "--timeout") == 0) {
        rc = parse_duration(a, v, 3600, &b->timeout_ms);
    } else if (strcmp(a, "--hold-time") == 0) {
        rc = parse_duration(a, v, 3600, &b->hold_ms);
    } else if (strcmp(a, "--tls") == 0) {
        if (strcmp(v, "1.2") == 0 || strcmp(v, "1.3") == 0)
            b->tls_version = v[2] == '2' ? TLS1_2_VERSION : TLS1_3_VERSION;
        else
            rc = cli_usage_error("bench", "--tls '%s': use 1.2 or 1.3", v);
    } else if (strcmp(a, "--request") == 0) {
        rc = parse_bytes(a, v, &b->request);
    } else if (strcmp(a, "--download") == 0) {
        if ((rc = set_mode(o, BENCH_MODE_DOWNLOAD, a)) < 0)
            rc = parse_bytes(a, v, &b->download);
    } else if (strcmp(a, "--upload") == 0) {
        if ((rc = set_mode(o, BENCH_MODE_UPLOAD, a)) < 0)
            rc = parse_bytes(a, v, &b->upload);
    } else if (strcmp(a, "--hold") == 0) {
        if ((rc = set_mode(o, BENCH_MODE_HOLD, a)) < 0 &&
            (rc = parse_int(a, v, 1, BENCH_MAX_CONNS, &n)) < 0)
            b->hold = (int)n;
    } else if (strcmp(a, "--pid") == 0) {
        if ((rc = parse_int(a, v, 1, 1 << 30, &n)) < 0)
            b->pid = (int)n;
    } else {
        return cli_usage_error("bench", "unknown option '%s'", a);
    }
    return rc;
}

static int parse(int argc, char **argv, struct opts *o)
{
    const char *target = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int rc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--resume") == 0) {
            o->b.resume = true;
        } else if (a[0] != '-') {
            if (target != NULL)
                return cli_usage_error("bench", "one HOST:PORT only ('%s')", a);
            target = a;
        } else if ((rc = take(argc, argv, &i, &v)) >= 0) {
            return rc;
        } else if (strcmp(a, "--cert") == 0 || strcmp(a, "--key") == 0 || strcmp(a, "--ca") == 0 ||
                   strcmp(a, "--server-name") == 0) {
            const char **dst = a[2] == 'c'   ? (a[3] == 'e' ? &o->b.cert_file : &o->b.ca_file)
                               : a[2] == 'k' ? &o->b.key_file
                                             : &o->b.server_name;
            *dst = v;
        } else if ((rc = parse_value(o, a, v)) >= 0) {
            return rc;
        }
    }
    if (target == NULL)
        return cli_usage_error("bench", "give HOST:PORT");
    if (o->b.cert_file == NULL || o->b.key_file == NULL)
        return cli_usage_error("bench", "give --cert and --key (the client certificate)");
    if (o->b.duration_ms > 0 && !o->count_set)
        o->b.count = 0; /* --duration alone: run for that long */
    if (o->b.mode == BENCH_MODE_HOLD && o->b.resume)
        return cli_usage_error("bench", "--hold and --resume do not go together");
    return split_target(o, target);
}

int cli_bench(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    bench_opts_init(&o.b);
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
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
        json_t *j = bench_result_json(&o.b, res);
        char *text = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        bench_result_print(stdout, &o.b, res);
    }
    rc = res->failed == 0 && res->ok > 0 ? 0 : 1;
    free(res);
    return rc;
}
