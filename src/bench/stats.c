/* Tallies: latency samples and percentiles, failure reasons, and process resource use read
 * from /proc (the server under test, and this load generator). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/internal.h"

#define PROC_FILE_MAX 4096 /* /proc/PID/stat is one short line; status a few dozen */

int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t bench_self_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

int bench_samples_add(struct bench_samples *s, int64_t v)
{
    if (s->n == s->cap) {
        if (s->cap >= BENCH_MAX_SAMPLES)
            return 0; /* enough: the first BENCH_MAX_SAMPLES stand for the rest */
        size_t cap = s->cap ? s->cap * 2 : 1024;
        int64_t *nv = realloc(s->v, cap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

void bench_samples_free(struct bench_samples *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t bench_samples_pct(struct bench_samples *s, double q)
{
    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
    /* Nearest rank: the smallest sample with at least q% of the samples at or below it. */
    size_t rank = (size_t)((q / 100.0) * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

int64_t bench_samples_mean(const struct bench_samples *s)
{
    if (s->n == 0)
        return 0;
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += (double)s->v[i];
    return (int64_t)(sum / (double)s->n);
}

void bench_latency_summarise(struct bench_result *r, struct bench_samples *lat,
                             struct bench_samples *hs)
{
    r->lat_p50_us = bench_samples_pct(lat, 50);
    r->lat_p90_us = bench_samples_pct(lat, 90);
    r->lat_p99_us = bench_samples_pct(lat, 99);
    r->lat_max_us = bench_samples_pct(lat, 100);
    r->lat_mean_us = bench_samples_mean(lat);
    r->hs_p50_us = bench_samples_pct(hs, 50);
    r->hs_p99_us = bench_samples_pct(hs, 99);
}

void bench_fail_note(struct bench_result *r, const char *code, const char *detail)
{
    r->failed++;
    if (r->first_error[0] == '\0')
        snprintf(r->first_error, sizeof(r->first_error), "%s%s%s", code,
                 detail != NULL && detail[0] != '\0' ? ": " : "", detail ? detail : "");
    size_t i;
    for (i = 0; i < r->nerrors; i++)
        if (strcmp(r->errors[i].code, code) == 0)
            break;
    if (i == r->nerrors) {
        if (r->nerrors == BENCH_ERR_KINDS)
            i = BENCH_ERR_KINDS - 1, code = "other"; /* the last row collects the rest */
        else
            r->nerrors++;
        snprintf(r->errors[i].code, sizeof(r->errors[i].code), "%s", code);
    }
    r->errors[i].n++;
}

static int read_proc(int pid, const char *file, char *buf, size_t cap, struct tw_err *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return tw_err_sys(err, TW_ERR_IO, "process %d: cannot read %s", pid, path);
    size_t n = fread(buf, 1, cap - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    TW_ENSURE(n > 0, err, TW_ERR_IO, "process %d: %s is empty", pid, path);
    return 0;
}

int bench_proc_sample(int pid, struct bench_proc_sample *out, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    char buf[PROC_FILE_MAX];
    TW_GUARD(read_proc(pid, "stat", buf, sizeof(buf), err));
    /* The command name may hold spaces and parentheses: fields resume after the last ')'.
     * proc(5): state is field 3, utime 14, stime 15. */
    const char *p = strrchr(buf, ')');
    TW_ENSURE(p != NULL, err, TW_ERR_IO, "process %d: unexpected /proc/%d/stat", pid, pid);
    p++;
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    char *end = NULL;
    while (*p != '\0' && field < 15) {
        while (*p == ' ')
            p++;
        field++;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (field == 14)
            utime = v;
        if (field == 15)
            stime = v;
        while (*p != '\0' && *p != ' ')
            p++;
    }
    TW_ENSURE(field == 15, err, TW_ERR_IO, "process %d: short /proc/%d/stat", pid, pid);
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    out->cpu_us = (int64_t)((utime + stime) * 1000000ULL / (unsigned long long)hz);
    TW_GUARD(read_proc(pid, "status", buf, sizeof(buf), err));
    const char *rss = strstr(buf, "\nVmRSS:");
    TW_ENSURE(rss != NULL, err, TW_ERR_IO, "process %d: no VmRSS in /proc/%d/status", pid, pid);
    out->rss_kb = strtoll(rss + 7, &end, 10);
    out->ok = true;
    return 0;
}
