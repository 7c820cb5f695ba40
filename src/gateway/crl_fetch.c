/* CRLs from URLs (`crl = https://ca.example/crl`). Each distinct (URL, TLS CA, client CA) is
 * one source, polled on the main loop: every crl-refresh seconds, sooner when the response's
 * Cache-Control max-age or the CRL's nextUpdate comes first, with If-None-Match /
 * If-Modified-Since so an unchanged CRL costs a 304. A fetched CRL must parse and verify
 * against the service's client-ca before it replaces the last good one; a failed fetch keeps
 * the last good one (logged, counted). A CRL that differs from the one held is applied by a
 * revocation reload: a generation derived from the serving one with its CRL sets (reading the
 * CRL from here) and SSL_CTXs built again, the configuration, certificates and keys kept; it is
 * swapped in like any generation, and the workers' sweep cuts live connections of now-revoked
 * certificates.
 * When the CA is twoway's (its answer names a revocation feed) or revocation-feed names one,
 * the source follows that feed (crl_feed.c) and polls only while the feed is down. */
#include "gateway/revocation.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include "util/clock.h"
#include "util/log.h"

#define EXPIRED_LOG_EVERY 60 /* seconds between "CRL expired" warnings per source */

struct crl_src {
    struct crl_src *next;
    struct gw_revoc *r;
    char *url;
    char *tls_ca;    /* verifies the server: crl-ca, else client-ca */
    char *client_ca; /* verifies the CRL's signature */
    int64_t refresh; /* seconds: the smallest crl-refresh of the services using it */
    struct event *timer;
    bool in_flight;
    /* The last good CRL, as fetched (PEM or DER). */
    unsigned char *data;
    size_t len;
    char *etag, *last_modified;
    int64_t next_update; /* the CRL's nextUpdate, unix seconds; 0: none */
    int64_t max_age;     /* Cache-Control of the last answer; -1: none */
    int64_t last_ok;     /* unix seconds of the last 200 or 304 */
    int64_t expired_logged;
    char last_error[200];
    uint64_t n_ok, n_not_modified, n_failed;
    char *feed_cfg;       /* revocation-feed: NULL auto, "off", or the feed's URL */
    struct gw_feed *feed; /* followed once a fetch succeeded; NULL before or when off */
};

struct gw_revoc {
    struct gw_server *srv;
    struct gw_fetcher *fetcher;
    struct gw_ocsp *ocsp;
    struct crl_src *srcs;
    bool starting; /* first fetches before the first generation: no reloads */
    size_t first_pending;
};

static void src_fetch(struct crl_src *s);

static int64_t now_unix(void)
{
    return (int64_t)time(NULL);
}

static const char *tls_ca_of(const struct gw_service *c)
{
    return c->crl_ca != NULL ? c->crl_ca : c->client_ca;
}

static bool src_is(const struct crl_src *s, const struct gw_service *c, size_t i)
{
    return strcmp(s->url, c->crl[i]) == 0 && strcmp(s->tls_ca, tls_ca_of(c)) == 0 &&
           strcmp(s->client_ca, c->client_ca) == 0;
}

static void src_free(struct crl_src *s)
{
    if (s->timer != NULL)
        event_free(s->timer);
    free(s->url);
    free(s->tls_ca);
    free(s->client_ca);
    free(s->data);
    free(s->etag);
    free(s->last_modified);
    free(s->feed_cfg);
    gw_feed_free(s->feed);
    free(s);
}

static void arm(struct crl_src *s, int64_t secs)
{
    if (secs < 1)
        secs = 1;
    struct timeval tv = {(time_t)secs, 0};
    event_add(s->timer, &tv);
}

/* Next poll: crl-refresh, or sooner when max-age or nextUpdate says so. */
static int64_t next_delay(const struct crl_src *s, bool failed)
{
    int64_t d = s->refresh;
    if (!failed && s->max_age >= 0 && s->max_age < d)
        d = s->max_age;
    int64_t left = s->next_update - now_unix();
    if (s->next_update != 0 && left > 0 && left < d)
        d = left;
    return d;
}

static bool gen_uses(const struct gw_gen *gen, const struct crl_src *s)
{
    const struct gw_config *cfg = gen->cfg;
    for (size_t k = 0; k < cfg->n_services; k++)
        for (size_t i = 0; i < cfg->services[k].n_crl; i++)
            if (cfg->services[k].crl_is_url[i] && src_is(s, &cfg->services[k], i))
                return true;
    return false;
}

/* A new CRL from s: when the generation serving uses s, only the CRLs are applied; when it
 * does not (a configuration naming this URL could not be built until its first CRL came),
 * the whole configuration is built again. */
static void apply(struct crl_src *s, const char *reason)
{
    const struct gw_gen *gen = s->r->srv->gen;
    if (gen != NULL && gen_uses(gen, s))
        gw_server_reload_crls(s->r->srv, reason);
    else
        gw_server_reload(s->r->srv, reason);
}

static void src_drop(struct crl_src *s)
{
    for (struct crl_src **p = &s->r->srcs; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    log_info("crl %s: no longer configured; polling stopped", s->url);
    src_free(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct crl_src *s = arg;
    const struct gw_gen *gen = s->r->srv->gen;
    if (gen != NULL && !gen_uses(gen, s) && !s->in_flight && !gw_feed_busy(s->feed)) {
        src_drop(s);
        return;
    }
    /* The feed brings every new CRL the moment it is made: no polling while it is up. */
    if (gw_feed_up(s->feed)) {
        arm(s, s->refresh);
        return;
    }
    src_fetch(s);
}

static void warn_if_expired(struct crl_src *s)
{
    int64_t now = now_unix();
    if (s->next_update == 0 || now < s->next_update || now - s->expired_logged < EXPIRED_LOG_EVERY)
        return;
    s->expired_logged = now;
    log_errx("crl %s: the CRL held EXPIRED %llds ago (nextUpdate passed) and no fresher one was "
             "fetched; with crl-expired = reject its issuer's clients are refused, with warn it "
             "is still used",
             s->url, (long long)(now - s->next_update));
}

static char *dup_or_null(const char *v)
{
    return v != NULL ? strdup(v) : NULL;
}

/* The CRL held from s as a set, NULL when none (or it no longer parses). */
static struct tlsx_crl_set *held_set(const struct crl_src *s)
{
    struct tw_err ignored;
    struct tlsx_crl_set *held = s->data != NULL ? tlsx_crl_set_new(&ignored) : NULL;
    if (held != NULL && tlsx_crl_set_add_mem(held, s->data, s->len, s->url, &ignored) != 0) {
        tlsx_crl_set_free(held);
        held = NULL;
    }
    return held;
}

/* Parse and verify a fetched CRL against the client CA (a CRL of a CA outside client-ca, the
 * clients' intermediate under a root-only client-ca, must keep the issuer of the one held);
 * its nextUpdate into *next_update. */
static int check_crl(const struct crl_src *s, const struct gw_fetch_res *res, int64_t *next_update,
                     struct tw_err *err)
{
    TW_ENSURE(res->len > 0, err, TW_ERR_VERIFY, "empty response");
    struct tlsx_crl_set *set = tlsx_crl_set_new(err);
    if (set == NULL)
        return -1;
    STACK_OF(X509) *cas = NULL;
    struct tlsx_crl_set *held = held_set(s);
    int rc = -1;
    if (tlsx_crl_set_add_mem(set, res->body, res->len, s->url, err) == 0 &&
        tlsx_certs_load(s->client_ca, &cas, err) == 0 && tlsx_crl_set_verify(set, cas, err) == 0 &&
        tlsx_crl_set_same_outside(set, held, cas, err) == 0) {
        *next_update = tlsx_crl_set_next_update(set);
        rc = 0;
    }
    sk_X509_pop_free(cas, X509_free);
    tlsx_crl_set_free(held);
    tlsx_crl_set_free(set);
    ERR_clear_error();
    return rc;
}

/* A 200 with a CRL that verified: keep it; a different one than held is applied by a reload. */
static int take(struct crl_src *s, const struct gw_fetch_res *res, int64_t next_update,
                bool *changed)
{
    *changed = s->data == NULL || s->len != res->len || memcmp(s->data, res->body, res->len) != 0;
    unsigned char *copy = malloc(res->len);
    char *etag = dup_or_null(res->etag), *lm = dup_or_null(res->last_modified);
    if (copy == NULL || (res->etag != NULL && etag == NULL) ||
        (res->last_modified != NULL && lm == NULL)) {
        free(copy);
        free(etag);
        free(lm);
        return -1;
    }
    memcpy(copy, res->body, res->len);
    free(s->data);
    free(s->etag);
    free(s->last_modified);
    s->data = copy;
    s->len = res->len;
    s->etag = etag;
    s->last_modified = lm;
    s->next_update = next_update;
    return 0;
}

static void fetch_failed(struct crl_src *s, const char *why)
{
    s->n_failed++;
    size_t n = strlen(why);
    if (n >= sizeof(s->last_error))
        n = sizeof(s->last_error) - 1;
    memcpy(s->last_error, why, n);
    s->last_error[n] = '\0';
    if (s->data != NULL)
        log_warnx("crl %s: fetch failed: %s; keeping the last good CRL (fetched %llds ago)", s->url,
                  why, (long long)(now_unix() - s->last_ok));
    else
        log_warnx("crl %s: fetch failed: %s; no CRL from this URL yet", s->url, why);
}

/* A CRL from the feed: verified and applied like a polled one. */
static int feed_news(const struct gw_fetch_res *res, void *arg)
{
    struct crl_src *s = arg;
    struct tw_err err;
    int64_t nu = 0;
    bool changed = false;
    if (check_crl(s, res, &nu, &err) != 0) {
        log_warnx("revocation feed for crl %s: the CRL was refused: %s", s->url, err.msg);
        return -1;
    }
    log_debug("trace crl-verified CRL %s at %.6f", res->crl_number, clock_wall_now());
    if (take(s, res, nu, &changed) != 0)
        return -1;
    s->n_ok++;
    s->last_ok = now_unix();
    s->last_error[0] = '\0';
    if (changed && !s->r->starting) {
        char reason[320];
        snprintf(reason, sizeof(reason), "revocation feed for crl %s: a new CRL", s->url);
        apply(s, reason);
    }
    return 0;
}

/* After a good answer: follow the feed revocation-feed names, or the one a twoway CA
 * advertises for this URL (revocation-feed = auto). */
static void maybe_follow(struct crl_src *s, const struct gw_fetch_res *res)
{
    if (s->feed != NULL || (s->feed_cfg != NULL && strcmp(s->feed_cfg, "off") == 0))
        return;
    char url[1024];
    if (s->feed_cfg != NULL)
        snprintf(url, sizeof(url), "%s", s->feed_cfg);
    else if (res->feed == NULL || strncmp(s->url, "https://", 8) != 0 ||
             gw_feed_url_for(s->url, res->feed, url, sizeof(url)) != 0)
        return;
    struct tw_err err;
    s->feed = gw_feed_new(s->r->srv->base, s->r->fetcher, url, s->tls_ca, feed_news, s, &err);
    if (s->feed == NULL)
        log_warnx("crl %s: cannot follow the revocation feed: %s", s->url, err.msg);
}

static void on_fetched(const struct gw_fetch_res *res, void *arg)
{
    struct crl_src *s = arg;
    struct gw_revoc *r = s->r;
    s->in_flight = false;
    if (r->starting && r->first_pending > 0)
        r->first_pending--;
    bool failed = true, changed = false;
    char why[TW_ERR_MSG_MAX + 64];
    struct tw_err err;
    int64_t nu = 0;
    if (res->status == 304 && s->data != NULL) {
        s->n_not_modified++;
        failed = false;
    } else if (res->status == 200) {
        if (check_crl(s, res, &nu, &err) != 0)
            snprintf(why, sizeof(why), "the CRL was refused: %s", err.msg);
        else if (take(s, res, nu, &changed) != 0)
            snprintf(why, sizeof(why), "out of memory");
        else
            failed = false;
        if (!failed)
            s->n_ok++;
    } else if (res->status == 0) {
        snprintf(why, sizeof(why), "%s", res->error);
    } else {
        snprintf(why, sizeof(why), "HTTP status %d", res->status);
    }
    if (failed) {
        fetch_failed(s, why);
    } else {
        s->last_ok = now_unix();
        s->max_age = res->max_age;
        s->last_error[0] = '\0';
        maybe_follow(s, res);
    }
    warn_if_expired(s);
    if (!r->starting)
        arm(s, next_delay(s, failed));
    if (changed && !r->starting) {
        char reason[320];
        snprintf(reason, sizeof(reason), "crl %s fetched: a new CRL", s->url);
        apply(s, reason);
    }
}

static void src_fetch(struct crl_src *s)
{
    if (s->in_flight)
        return;
    struct gw_fetch_req q = {
        .url = s->url,
        .ca_file = s->tls_ca,
        .if_none_match = s->data != NULL ? s->etag : NULL,
        .if_modified_since = s->data != NULL ? s->last_modified : NULL,
        .max_body = GW_FETCH_BODY_MAX,
    };
    struct tw_err err;
    if (gw_fetch_start(s->r->fetcher, &q, on_fetched, s, &err) != 0) {
        fetch_failed(s, err.msg);
        if (s->r->starting && s->r->first_pending > 0)
            s->r->first_pending--;
        if (!s->r->starting)
            arm(s, s->refresh);
        return;
    }
    s->in_flight = true;
}

static struct crl_src *src_get(struct gw_revoc *r, const struct gw_service *c, size_t i)
{
    for (struct crl_src *s = r->srcs; s != NULL; s = s->next) {
        if (src_is(s, c, i)) {
            if (c->crl_refresh < s->refresh)
                s->refresh = c->crl_refresh;
            return s;
        }
    }
    struct crl_src *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->r = r;
    s->url = strdup(c->crl[i]);
    s->tls_ca = strdup(tls_ca_of(c));
    s->client_ca = strdup(c->client_ca);
    s->refresh = c->crl_refresh > 0 ? c->crl_refresh : 300;
    s->max_age = -1;
    s->feed_cfg = dup_or_null(c->revocation_feed);
    s->timer = evtimer_new(r->srv->base, on_timer, s);
    if (s->url == NULL || s->tls_ca == NULL || s->client_ca == NULL || s->timer == NULL ||
        (c->revocation_feed != NULL && s->feed_cfg == NULL)) {
        src_free(s);
        return NULL;
    }
    s->next = r->srcs;
    r->srcs = s;
    return s;
}

static struct gw_config *load_config(const struct gw_source *src, struct tw_err *err)
{
    if (src->load != NULL)
        return src->load(src, err);
    if (src->config_path != NULL)
        return gw_config_load_file(src->config_path, err);
    return gw_config_from_args(src->argc, src->argv, err);
}

static int register_all(struct gw_revoc *r, const struct gw_config *cfg, struct tw_err *err)
{
    for (size_t k = 0; k < cfg->n_services; k++) {
        const struct gw_service *c = &cfg->services[k];
        for (size_t i = 0; i < c->n_crl; i++)
            if (c->crl_is_url[i])
                TW_ENSURE(src_get(r, c, i) != NULL, err, TW_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

static int first_fetch(struct gw_revoc *r, struct tw_err *err)
{
    r->starting = true;
    for (struct crl_src *s = r->srcs; s != NULL; s = s->next) {
        r->first_pending++;
        src_fetch(s);
    }
    while (r->first_pending > 0)
        if (event_base_loop(r->srv->base, EVLOOP_ONCE) < 0)
            break;
    r->starting = false;
    for (struct crl_src *s = r->srcs; s != NULL; s = s->next) {
        TW_ENSURE(s->data != NULL, err, TW_ERR_IO, "crl %s: cannot fetch the CRL: %s", s->url,
                  s->last_error[0] != '\0' ? s->last_error : "no answer");
        arm(s, next_delay(s, false));
    }
    return 0;
}

int gw_revoc_start(struct gw_server *srv, struct tw_err *err)
{
    struct gw_revoc *r = calloc(1, sizeof(*r));
    TW_ENSURE(r != NULL, err, TW_ERR_INTERNAL, "out of memory");
    srv->revoc = r;
    r->srv = srv;
    r->fetcher = gw_fetcher_new(srv->base, err);
    if (r->fetcher == NULL)
        return -1;
    r->ocsp = gw_ocsp_new(srv, r->fetcher, err);
    if (r->ocsp == NULL)
        return -1;
    struct gw_config *cfg = load_config(&srv->src, err);
    if (cfg == NULL)
        return -1;
    int rc = register_all(r, cfg, err);
    gw_config_free(cfg);
    if (rc != 0)
        return -1;
    return r->srcs != NULL ? first_fetch(r, err) : 0;
}

void gw_revoc_free(struct gw_revoc *r)
{
    if (r == NULL)
        return;
    gw_ocsp_free(r->ocsp);
    gw_fetcher_free(r->fetcher);
    while (r->srcs != NULL) {
        struct crl_src *s = r->srcs;
        r->srcs = s->next;
        src_free(s);
    }
    free(r);
}

struct gw_ocsp *gw_revoc_ocsp(const struct gw_revoc *r)
{
    return r != NULL ? r->ocsp : NULL;
}

int gw_revoc_crl_add(struct gw_server *srv, const struct gw_service *c, size_t i,
                     struct tlsx_crl_set *set, struct tw_err *err)
{
    struct gw_revoc *r = srv->revoc;
    TW_ENSURE(r != NULL, err, TW_ERR_INTERNAL, "[service %s] crl = %s: no fetcher", c->name,
              c->crl[i]);
    struct crl_src *s = src_get(r, c, i);
    TW_ENSURE(s != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (s->data == NULL) {
        if (!s->in_flight && !r->starting)
            src_fetch(s); /* its success reloads */
        return tw_err_set(err, TW_ERR_CONFIG,
                          "[service %s] crl = %s: no CRL fetched yet (%s); it applies once "
                          "fetched",
                          c->name, c->crl[i],
                          s->last_error[0] != '\0' ? s->last_error : "fetching");
    }
    return tlsx_crl_set_add_mem(set, s->data, s->len, s->url, err);
}

/* Prometheus label value: backslash, double quote and newline escaped. */
static void label(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; in != NULL && *in != '\0' && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n')
            out[o++] = '\\';
        out[o++] = *in == '\n' ? 'n' : *in;
    }
    out[o] = '\0';
}

static int metrics_sources(struct tw_buf *b, const struct gw_revoc *r, struct tw_err *err)
{
    char url[512];
    int64_t now = now_unix();
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_crl_fetch_total CRL URL fetches by result.\n"
                            "# TYPE twoway_crl_fetch_total counter\n"));
    for (const struct crl_src *s = r->srcs; s != NULL; s = s->next) {
        label(url, sizeof(url), s->url);
        TW_GUARD(tw_buf_appendf(b, err,
                                "twoway_crl_fetch_total{url=\"%s\",result=\"ok\"} %llu\n"
                                "twoway_crl_fetch_total{url=\"%s\",result=\"not-modified\"} %llu\n"
                                "twoway_crl_fetch_total{url=\"%s\",result=\"failed\"} %llu\n",
                                url, (unsigned long long)s->n_ok, url,
                                (unsigned long long)s->n_not_modified, url,
                                (unsigned long long)s->n_failed));
    }
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_crl_fetch_age_seconds Seconds since the CRL URL last "
                            "answered with a good CRL or 304 (-1: never).\n"
                            "# TYPE twoway_crl_fetch_age_seconds gauge\n"));
    for (const struct crl_src *s = r->srcs; s != NULL; s = s->next) {
        label(url, sizeof(url), s->url);
        TW_GUARD(tw_buf_appendf(b, err, "twoway_crl_fetch_age_seconds{url=\"%s\"} %lld\n", url,
                                (long long)(s->last_ok > 0 ? now - s->last_ok : -1)));
    }
    return 0;
}

static int metrics_feeds(struct tw_buf *b, const struct gw_revoc *r, struct tw_err *err)
{
    TW_GUARD(tw_buf_appendf(
        b, err,
        "# HELP twoway_revocation_feed_up 1 while the CA's revocation feed is followed (no "
        "polling), 0 while it is down (the CRL URL is polled).\n"
        "# TYPE twoway_revocation_feed_up gauge\n"
        "# HELP twoway_revocation_feed_lag_seconds From the last fed CRL's thisUpdate to its "
        "arrival (-1: none yet).\n"
        "# TYPE twoway_revocation_feed_lag_seconds gauge\n"
        "# HELP twoway_revocation_feed_total Feed answers: news (a new CRL), idle (held without "
        "news), failed.\n"
        "# TYPE twoway_revocation_feed_total counter\n"));
    char url[512];
    for (const struct crl_src *s = r->srcs; s != NULL; s = s->next) {
        if (s->feed == NULL)
            continue;
        struct gw_feed_stats st;
        gw_feed_stats(s->feed, &st);
        label(url, sizeof(url), gw_feed_url(s->feed));
        TW_GUARD(tw_buf_appendf(b, err,
                                "twoway_revocation_feed_up{url=\"%s\"} %d\n"
                                "twoway_revocation_feed_lag_seconds{url=\"%s\"} %.3f\n"
                                "twoway_revocation_feed_total{url=\"%s\",result=\"news\"} %llu\n"
                                "twoway_revocation_feed_total{url=\"%s\",result=\"idle\"} %llu\n"
                                "twoway_revocation_feed_total{url=\"%s\",result=\"failed\"} "
                                "%llu\n",
                                url, st.up ? 1 : 0, url, st.lag, url,
                                (unsigned long long)st.news, url,
                                (unsigned long long)st.held_over, url,
                                (unsigned long long)st.failed));
    }
    return 0;
}

/* Every service's CRLs (files and URLs) past nextUpdate, with the policy that applies. */
static int metrics_expired(struct tw_buf *b, const struct gw_gen *gen, struct tw_err *err)
{
    char name[128];
    int64_t now = now_unix();
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_crl_expired CRLs of a service past their nextUpdate "
                            "(policy: crl-expired, reject refuses their clients).\n"
                            "# TYPE twoway_crl_expired gauge\n"));
    for (size_t i = 0; gen != NULL && i < gen->nsvcs; i++) {
        const struct gw_svc *s = &gen->svcs[i];
        label(name, sizeof(name), s->cfg->name);
        TW_GUARD(tw_buf_appendf(b, err, "twoway_crl_expired{service=\"%s\",policy=\"%s\"} %zu\n",
                                name,
                                s->cfg->crl_expired == TLSX_CRL_EXPIRED_WARN ? "warn" : "reject",
                                s->crls != NULL ? tlsx_crl_set_expired(s->crls, now) : (size_t)0));
    }
    return 0;
}

int gw_revoc_metrics(struct tw_buf *b, const struct gw_server *srv, struct tw_err *err)
{
    const struct gw_revoc *r = srv->revoc;
    if (r == NULL)
        return 0;
    TW_GUARD(metrics_sources(b, r, err));
    TW_GUARD(metrics_feeds(b, r, err));
    TW_GUARD(metrics_expired(b, srv->gen, err));
    return gw_ocsp_metrics(b, r->ocsp, err);
}
