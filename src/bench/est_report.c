/* twoway bench --est: the result in words and as one JSON object. */
#include <string.h>

#include <openssl/ssl.h>

#include "bench/internal.h"

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

/* The generator's CPU per enrollment and as a share of one core over the window: a reader
 * sees at once whether the generator, not the server, was the limit. */
static double cpu_per_ok(const struct bench_result *r)
{
    return r->ok > 0 ? (double)r->client_cpu_us / (double)r->ok : -1;
}

static double cpu_share(const struct bench_result *r)
{
    return r->elapsed_us > 0 ? (double)r->client_cpu_us / (double)r->elapsed_us : 0;
}

static double server_cpu_per_ok(const struct bench_result *r)
{
    if (!r->before.ok || !r->after.ok || r->ok == 0)
        return -1;
    return (double)(r->after.cpu_us - r->before.cpu_us) / (double)r->ok;
}

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

json_t *bench_est_result_json(const struct bench_est_opts *o, const struct bench_est_result *e)
{
    const struct bench_result *r = &e->r;
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    char target[300];
    snprintf(target, sizeof(target), strchr(o->host, ':') ? "[%s]:%s" : "%s:%s", o->host, o->port);
    json_object_set_new(j, "target", json_string(target));
    json_object_set_new(j, "mode", json_string("est"));
    json_object_set_new(j, "loop", json_string(o->rate > 0 ? "open" : "closed"));
    json_object_set_new(j, "rate", o->rate > 0 ? json_real(o->rate) : json_null());
    json_object_set_new(j, "clients", json_integer(e->clients));
    json_object_set_new(j, "tls", json_string(r->tls_version == TLS1_3_VERSION   ? "1.3"
                                              : r->tls_version == TLS1_2_VERSION ? "1.2"
                                                                                 : ""));
    json_object_set_new(j, "cipher", json_string(r->cipher));
    json_object_set_new(j, "started", json_integer(r->started));
    json_object_set_new(j, "ok", json_integer(r->ok));
    json_object_set_new(j, "failed", json_integer(r->failed));
    json_object_set_new(j, "elapsed_s", json_real((double)r->elapsed_us / 1e6));
    json_object_set_new(j, "enrollments_per_s", json_real(r->rate));
    json_object_set_new(j, "prepare_s", json_real((double)e->prep_us / 1e6));
    json_object_set_new(j, "late_starts", json_integer(e->behind));
    json_object_set_new(j, "max_start_lag_ms", json_real(ms(e->lat_max_sched_us)));
    bench_json_latency_errors(j, r);
    json_object_set_new(j, "first_error",
                        r->first_error[0] ? json_string(r->first_error) : json_null());
    json_object_set_new(j, "time_limit_hit", json_boolean(r->hit_time_limit));
    json_object_set_new(j, "gave_up", json_boolean(r->gave_up));
    json_object_set_new(j, "client_cpu_us_per_enrollment", num_or_null(cpu_per_ok(r)));
    json_object_set_new(j, "client_cpu_share", json_real(cpu_share(r)));
    json_object_set_new(j, "server_pid", r->pid > 0 ? json_integer(r->pid) : json_null());
    json_object_set_new(j, "server_cpu_us_per_enrollment", num_or_null(server_cpu_per_ok(r)));
    return j;
}

void bench_est_result_print(FILE *fp, const struct bench_est_opts *o,
                            const struct bench_est_result *e)
{
    const struct bench_result *r = &e->r;
    fprintf(fp, "twoway bench --est %s:%s: simpleenroll, a new TLS connection each, ", o->host,
            o->port);
    if (o->rate > 0)
        fprintf(fp, "open loop at %.1f/s (at most %d in flight)\n", o->rate, e->clients);
    else
        fprintf(fp, "closed loop, %d clients\n", e->clients);
    fprintf(fp, "  enrollments: %lld ok, %lld failed in %.2f s%s (keys and CSRs made before: "
                "%.2f s)\n",
            (long long)r->ok, (long long)r->failed, (double)r->elapsed_us / 1e6,
            r->gave_up          ? " (gave up: nothing succeeded)"
            : r->hit_time_limit ? " (time limit)"
                                : "",
            (double)e->prep_us / 1e6);
    fprintf(fp, "  rate: %.1f enrollments/s\n", r->rate);
    if (r->ok > 0)
        fprintf(fp, "  latency%s: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                o->rate > 0 ? " (from the scheduled arrival)" : "", ms(r->lat_p50_us),
                ms(r->lat_p90_us), ms(r->lat_p99_us), ms(r->lat_max_us));
    if (o->rate > 0)
        fprintf(fp, "  late starts: %lld more than 1 ms behind schedule, the worst %.2f ms\n",
                (long long)e->behind, ms(e->lat_max_sched_us));
    for (size_t i = 0; i < r->nerrors; i++)
        fprintf(fp, "  failed: %lld %s\n", (long long)r->errors[i].n, r->errors[i].code);
    if (r->first_error[0])
        fprintf(fp, "  first failure: %s\n", r->first_error);
    if (r->ok > 0)
        fprintf(fp, "  load generator: %.0f us CPU per enrollment, %.0f %% of one core\n",
                cpu_per_ok(r), 100.0 * cpu_share(r));
    double v = server_cpu_per_ok(r);
    if (r->pid > 0 && v >= 0)
        fprintf(fp, "  server pid %d: %.0f us CPU per enrollment\n", r->pid, v);
    else if (r->pid > 0)
        fprintf(fp, "  server pid %d: not measured (the process went away)\n", r->pid);
}
