/* The result in words (a few lines) and as one JSON object. */
#include <string.h>

#include <openssl/ssl.h>

#include "bench/internal.h"

static const char *mode_name(enum bench_mode m)
{
    static const char *const names[] = {"handshake", "download", "upload", "hold"};
    return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : "?";
}

static const char *version_name(int v)
{
    return v == TLS1_3_VERSION ? "1.3" : v == TLS1_2_VERSION ? "1.2" : v == 0 ? "" : "other";
}

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

/* JSON numbers for "not measured" are null. */
static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

static json_t *server_json(const struct bench_result *r)
{
    if (r->pid <= 0)
        return json_null();
    json_t *s = json_object();
    if (s == NULL)
        return NULL;
    bool ok = r->before.ok && r->after.ok;
    json_object_set_new(s, "pid", json_integer(r->pid));
    json_object_set_new(s, "cpu_us",
                        ok ? json_integer(r->after.cpu_us - r->before.cpu_us) : json_null());
    json_object_set_new(s, "cpu_us_per_conn", num_or_null(bench_server_us_per_conn(r)));
    json_object_set_new(s, "cpu_s_per_gb", num_or_null(bench_server_s_per_gb(r)));
    json_object_set_new(s, "rss_before_kb", ok ? json_integer(r->before.rss_kb) : json_null());
    json_object_set_new(s, "rss_after_kb", ok ? json_integer(r->after.rss_kb) : json_null());
    json_object_set_new(s, "rss_kb_per_held_conn", num_or_null(bench_server_kb_per_held(r)));
    return s;
}

void bench_json_latency_errors(json_t *j, const struct bench_result *r)
{
    json_t *lat = json_object();
    json_object_set_new(lat, "p50", json_real(ms(r->lat_p50_us)));
    json_object_set_new(lat, "p90", json_real(ms(r->lat_p90_us)));
    json_object_set_new(lat, "p99", json_real(ms(r->lat_p99_us)));
    json_object_set_new(lat, "max", json_real(ms(r->lat_max_us)));
    json_object_set_new(lat, "mean", json_real(ms(r->lat_mean_us)));
    json_object_set_new(lat, "handshake_p50", json_real(ms(r->hs_p50_us)));
    json_object_set_new(lat, "handshake_p99", json_real(ms(r->hs_p99_us)));
    json_object_set_new(j, "latency_ms", lat != NULL ? lat : json_null());
    json_t *errs = json_object();
    for (size_t i = 0; errs != NULL && i < r->nerrors; i++)
        json_object_set_new(errs, r->errors[i].code, json_integer(r->errors[i].n));
    json_object_set_new(j, "errors", errs != NULL ? errs : json_null());
}

json_t *bench_result_json(const struct bench_opts *o, const struct bench_result *r)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    char target[300];
    snprintf(target, sizeof(target), strchr(o->host, ':') ? "[%s]:%s" : "%s:%s", o->host, o->port);
    json_object_set_new(j, "target", json_string(target));
    json_object_set_new(j, "mode", json_string(o->h2_streams > 0 ? "h2" : mode_name(o->mode)));
    if (o->h2_streams > 0) {
        /* ok/failed/started count requests; cpu_us_per_conn is per request */
        json_object_set_new(j, "h2_streams", json_integer(o->h2_streams));
        json_object_set_new(j, "requests_per_s", json_real(r->rate));
    }
    json_object_set_new(j, "tls", json_string(version_name(r->tls_version)));
    json_object_set_new(j, "cipher", json_string(r->cipher));
    json_object_set_new(j, "conns", json_integer(o->conns));
    json_object_set_new(j, "resume", json_boolean(o->resume));
    json_object_set_new(j, "started", json_integer(r->started));
    json_object_set_new(j, "ok", json_integer(r->ok));
    json_object_set_new(j, "failed", json_integer(r->failed));
    json_object_set_new(j, "full", json_integer(r->full));
    json_object_set_new(j, "resumed", json_integer(r->resumed));
    json_object_set_new(j, "primed", json_integer(r->primed));
    json_object_set_new(j, "offered", json_integer(r->offered));
    json_object_set_new(j, "resumed_enough", json_boolean(bench_resumed_enough(o, r)));
    json_object_set_new(j, "held", json_integer(r->held));
    json_object_set_new(j, "elapsed_s", json_real((double)r->elapsed_us / 1e6));
    json_object_set_new(j, "conns_per_s", json_real(r->rate));
    json_object_set_new(j, "bytes_up", json_integer((json_int_t)r->bytes_up));
    json_object_set_new(j, "bytes_down", json_integer((json_int_t)r->bytes_down));
    json_object_set_new(j, "mbytes_per_s", json_real(r->mbytes_per_s));
    bench_json_latency_errors(j, r);
    json_object_set_new(j, "first_error",
                        r->first_error[0] ? json_string(r->first_error) : json_null());
    json_object_set_new(j, "time_limit_hit", json_boolean(r->hit_time_limit));
    json_object_set_new(j, "gave_up", json_boolean(r->gave_up));
    json_object_set_new(j, "client_cpu_us_per_conn",
                        r->ok > 0 ? json_real((double)r->client_cpu_us / (double)r->ok)
                                  : json_null());
    json_t *srv = server_json(r);
    json_object_set_new(j, "server", srv != NULL ? srv : json_null());
    return j;
}

bool bench_resumed_enough(const struct bench_opts *o, const struct bench_result *r)
{
    return !o->resume || o->mode == BENCH_MODE_HOLD ||
           (r->offered > 0 && r->resumed * 100 >= r->offered * BENCH_MIN_RESUMED_PCT);
}

void bench_result_print(FILE *fp, const struct bench_opts *o, const struct bench_result *r)
{
    const char *unit = o->h2_streams > 0 ? "request" : "connection";
    fprintf(fp, "twoway bench %s:%s: %s, TLS %s%s%s, %d concurrent%s\n", o->host, o->port,
            o->h2_streams > 0 ? "h2" : mode_name(o->mode), r->tls_version ? version_name(r->tls_version) : "-",
            r->cipher[0] ? " " : "", r->cipher, o->conns, o->resume ? ", resuming" : "");
    fprintf(fp, "  %ss: %lld ok (%lld full, %lld resumed), %lld failed in %.2f s%s\n", unit,
            (long long)r->ok, (long long)r->full, (long long)r->resumed, (long long)r->failed,
            (double)r->elapsed_us / 1e6,
            r->gave_up          ? " (gave up: nothing succeeded)"
            : r->hit_time_limit ? " (time limit)"
                                : "");
    if (o->resume && o->mode != BENCH_MODE_HOLD)
        fprintf(fp, "  resumed: %lld of %lld offered sessions (%.1f %%)%s\n",
                (long long)r->resumed, (long long)r->offered,
                r->offered > 0 ? 100.0 * (double)r->resumed / (double)r->offered : 0.0,
                bench_resumed_enough(o, r) ? "" : ": too few, the server did full handshakes");
    if (o->mode == BENCH_MODE_HOLD)
        fprintf(fp, "  held: %lld connections at once\n", (long long)r->held);
    else
        fprintf(fp, "  rate: %.1f %ss/s\n", r->rate, unit);
    if (r->ok > 0)
        fprintf(fp, "  latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                ms(r->lat_p50_us), ms(r->lat_p90_us), ms(r->lat_p99_us), ms(r->lat_max_us));
    if (r->bytes_up + r->bytes_down > 0)
        fprintf(fp, "  data: %.1f MB up, %.1f MB down, %.1f MB/s\n", (double)r->bytes_up / 1e6,
                (double)r->bytes_down / 1e6, r->mbytes_per_s);
    for (size_t i = 0; i < r->nerrors; i++)
        fprintf(fp, "  failed: %lld %s\n", (long long)r->errors[i].n, r->errors[i].code);
    if (r->first_error[0])
        fprintf(fp, "  first failure: %s\n", r->first_error);
    if (r->ok > 0)
        fprintf(fp, "  load generator: %.0f us CPU per %s\n",
                (double)r->client_cpu_us / (double)r->ok, unit);
    if (r->pid <= 0)
        return;
    if (!r->before.ok || !r->after.ok) {
        fprintf(fp, "  server pid %d: not measured (the process went away)\n", r->pid);
        return;
    }
    fprintf(fp, "  server pid %d: %.3f s CPU, RSS %lld -> %lld kB", r->pid,
            (double)(r->after.cpu_us - r->before.cpu_us) / 1e6, (long long)r->before.rss_kb,
            (long long)r->after.rss_kb);
    double v;
    if ((v = bench_server_us_per_conn(r)) >= 0 && o->mode == BENCH_MODE_HANDSHAKE)
        fprintf(fp, ", %.0f us CPU per %s", v, unit);
    bool bulk = o->mode == BENCH_MODE_DOWNLOAD || o->mode == BENCH_MODE_UPLOAD;
    if ((v = bench_server_s_per_gb(r)) >= 0 && bulk)
        fprintf(fp, ", %.2f s CPU per GB", v);
    if ((v = bench_server_kb_per_held(r)) >= 0)
        fprintf(fp, ", %.1f kB per held connection", v);
    fputc('\n', fp);
}
