/* Following a twoway CA's revocation feed (`ca serve`'s GET /revocations?since=N): one request
 * is always held open by the CA and answered the moment a revocation replaces its CRL, with the
 * whole signed CRL and its number N; the next request asks for news after that N. The CRL is
 * handed to the owner (crl_fetch.c), which verifies it against client-ca like a polled one
 * and applies it through the normal reload. While the feed fails, requests are retried with a
 * doubling backoff and the owner's polling carries on (gw_feed_up is false). */
#include "gateway/revocation.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <openssl/x509.h>

#include "util/clock.h"
#include "util/log.h"

struct gw_feed {
    struct gw_fetcher *fetcher;
    char *url;
    char *ca_file;
    gw_feed_news_cb news;
    void *arg;
    struct event *retry;
    int64_t since; /* CRL number of the last news; 0 before the first */
    int backoff;   /* seconds before the next attempt after a failure */
    bool busy, up, warned;
    struct gw_feed_stats st;
};

static void feed_request(struct gw_feed *f);

/* Seconds from the CRL's thisUpdate to now: how late the news arrived (at the CRL's one
 * second resolution). -1 when the body is not a DER CRL. */
static double lag_of(const struct gw_fetch_res *res)
{
    const unsigned char *p = res->body;
    X509_CRL *crl = p != NULL ? d2i_X509_CRL(NULL, &p, (long)res->len) : NULL;
    if (crl == NULL)
        return -1;
    struct tm tm;
    double lag = -1;
    if (ASN1_TIME_to_tm(X509_CRL_get0_lastUpdate(crl), &tm) == 1) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        lag = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)timegm(&tm);
    }
    X509_CRL_free(crl);
    return lag;
}

static void failed(struct gw_feed *f, const char *why)
{
    f->st.failed++;
    if (f->up || !f->warned)
        log_warnx("revocation feed %s: %s; polling the CRL until it is back (retry in %ds)",
                  f->url, why, f->backoff);
    f->up = false;
    f->warned = true;
    struct timeval tv = {f->backoff, 0};
    evtimer_add(f->retry, &tv);
    f->backoff = f->backoff * 2 > GW_FEED_BACKOFF_MAX ? GW_FEED_BACKOFF_MAX : f->backoff * 2;
}

static void on_answer(const struct gw_fetch_res *res, void *arg)
{
    struct gw_feed *f = arg;
    f->busy = false;
    char why[256];
    long long n = -1;
    if (res->crl_number != NULL && sscanf(res->crl_number, "%lld", &n) != 1)
        n = -1;
    if (res->status == 0) {
        failed(f, res->error);
        return;
    }
    if ((res->status != 200 && res->status != 204) || n < 0) {
        snprintf(why, sizeof(why), "HTTP status %d%s", res->status,
                 n < 0 ? " without Twoway-Crl-Number (not a twoway revocation feed?)" : "");
        failed(f, why);
        return;
    }
    if (res->status == 200) {
        log_debug("trace feed-answer CRL %lld at %.6f", n, clock_wall_now());
        double lag = lag_of(res);
        if (f->news(res, f->arg) != 0) {
            failed(f, "the CRL it sent was refused");
            return;
        }
        f->st.news++;
        f->st.lag = lag;
    } else {
        f->st.held_over++;
    }
    if (!f->up)
        log_info("revocation feed %s: following (CRL number %lld)", f->url, n);
    f->up = true;
    f->warned = false;
    f->backoff = 1;
    f->since = (int64_t)n;
    feed_request(f);
}

static void feed_request(struct gw_feed *f)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%ssince=%" PRId64, f->url, strchr(f->url, '?') ? "&" : "?",
             f->since);
    struct gw_fetch_req q = {
        .url = url,
        .ca_file = f->ca_file,
        .max_body = GW_FETCH_BODY_MAX,
        .timeout_secs = GW_FEED_TIMEOUT_SECS,
    };
    struct tw_err err;
    if (gw_fetch_start(f->fetcher, &q, on_answer, f, &err) != 0) {
        failed(f, err.msg);
        return;
    }
    f->busy = true;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    feed_request(arg);
}

struct gw_feed *gw_feed_new(struct event_base *base, struct gw_fetcher *fetcher, const char *url,
                            const char *ca_file, gw_feed_news_cb news, void *arg,
                            struct tw_err *err)
{
    TW_ENSURE_PTR(strncmp(url, "https://", 8) == 0, err, TW_ERR_CONFIG,
                  "revocation feed %s: only https:// (the CA server is verified)", url);
    TW_ENSURE_PTR(strlen(url) < 1900, err, TW_ERR_CONFIG, "revocation feed URL too long");
    struct gw_feed *f = calloc(1, sizeof(*f));
    TW_ENSURE_PTR(f != NULL, err, TW_ERR_INTERNAL, "out of memory");
    f->fetcher = fetcher;
    f->news = news;
    f->arg = arg;
    f->backoff = 1;
    f->st.lag = -1;
    f->url = strdup(url);
    f->ca_file = strdup(ca_file);
    f->retry = evtimer_new(base, on_retry, f);
    if (f->url == NULL || f->ca_file == NULL || f->retry == NULL) {
        gw_feed_free(f);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    log_info("revocation feed %s: connecting", f->url);
    feed_request(f);
    return f;
}

void gw_feed_free(struct gw_feed *f)
{
    if (f == NULL)
        return;
    if (f->retry != NULL)
        event_free(f->retry);
    free(f->url);
    free(f->ca_file);
    free(f);
}

bool gw_feed_up(const struct gw_feed *f)
{
    return f != NULL && f->up;
}

bool gw_feed_busy(const struct gw_feed *f)
{
    return f != NULL && f->busy;
}

const char *gw_feed_url(const struct gw_feed *f)
{
    return f->url;
}

void gw_feed_stats(const struct gw_feed *f, struct gw_feed_stats *out)
{
    *out = f->st;
    out->up = f->up;
}

int gw_feed_url_for(const char *crl_url, const char *path, char *out, size_t cap)
{
    if (path == NULL || path[0] != '/' || path[1] == '/' || strlen(path) > 256 ||
        strpbrk(path, "?#\\ \t") != NULL)
        return -1;
    struct evhttp_uri *u = evhttp_uri_parse(crl_url);
    if (u == NULL)
        return -1;
    int rc = evhttp_uri_set_path(u, path) == 0 && evhttp_uri_set_query(u, NULL) == 0 &&
                     evhttp_uri_set_fragment(u, NULL) == 0 && evhttp_uri_join(u, out, cap) != NULL
                 ? 0
                 : -1;
    evhttp_uri_free(u);
    return rc;
}
