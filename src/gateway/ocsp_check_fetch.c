/* OCSP checks of client certificates, the main-thread side: one cache entry per certificate
 * (keyed by the SHA-256 of its OCSP CertID: issuer name and key hashes plus serial), asked of
 * the responder named in the certificate's AIA with a POST (RFC 6960 appendix A) carrying a
 * nonce, the answer verified against the issuer and the service's client CAs (the responder
 * must be the CA or a delegated OCSP signer it issued), then republished to the workers as a
 * new immutable snapshot. Each entry is refreshed at the earlier of crl-refresh and three
 * quarters of the way to its nextUpdate; a failed refresh keeps the last answer until its
 * nextUpdate passes. At most GW_OCSP_CACHE_MAX entries: the least recently asked goes. */
#include "gateway/revocation.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "util/log.h"

#define FAIL_RETRY_SECS 10 /* at most this long between attempts after a failure */

struct gw_ocsp_entry {
    struct gw_ocsp_entry *next;
    struct gw_ocsp *o;
    X509 *cert, *issuer;
    char service[64];
    char *url;    /* the certificate's AIA OCSP URL; NULL when it has none */
    char *tls_ca; /* verifies an https responder: crl-ca, else client-ca */
    int64_t refresh;
    struct event *timer;
    bool in_flight;
    OCSP_REQUEST *req; /* the request in flight (nonce check) */
    struct gw_ocsp_ans ans;
    int64_t last_attempt, last_want;
};

static int64_t now_unix(void)
{
    return (int64_t)time(NULL);
}

static void entry_fetch(struct gw_ocsp_entry *e);

static void entry_free(struct gw_ocsp_entry *e)
{
    if (e->timer != NULL)
        event_free(e->timer);
    X509_free(e->cert);
    X509_free(e->issuer);
    OCSP_REQUEST_free(e->req);
    free(e->url);
    free(e->tls_ca);
    free(e);
}

void gw_ocsp_entries_free(struct gw_ocsp *o)
{
    while (o->entries != NULL) {
        struct gw_ocsp_entry *e = o->entries;
        o->entries = e->next;
        entry_free(e);
    }
    o->nentries = 0;
}

static int cmp_ans(const void *a, const void *b)
{
    return memcmp(((const struct gw_ocsp_ans *)a)->key, ((const struct gw_ocsp_ans *)b)->key,
                  GW_OCSP_KEY_LEN);
}

/* A new snapshot of every entry with an answer, handed to the workers. */
static void republish(struct gw_ocsp *o)
{
    struct gw_ocsp_snap *s = malloc(sizeof(*s) + (o->nentries + 1) * sizeof(s->v[0]));
    if (s == NULL) {
        log_warnx("ocsp: out of memory publishing answers");
        return;
    }
    atomic_init(&s->refs, 1);
    s->n = 0;
    for (const struct gw_ocsp_entry *e = o->entries; e != NULL; e = e->next)
        if (e->ans.status != GW_OCSP_NONE || e->ans.failed)
            s->v[s->n++] = e->ans;
    qsort(s->v, s->n, sizeof(s->v[0]), cmp_ans);
    gw_ocsp_publish(o, s);
    gw_ocsp_snap_unref(s);
}

static void arm(struct gw_ocsp_entry *e, int64_t secs)
{
    struct timeval tv = {(time_t)(secs < 1 ? 1 : secs), 0};
    event_add(e->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    entry_fetch(arg);
}

static int64_t asn1_unix(const ASN1_GENERALIZEDTIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

static X509_STORE *trust_store(const struct gw_ocsp_entry *e)
{
    X509_STORE *st = X509_STORE_new();
    if (st == NULL || X509_STORE_add_cert(st, e->issuer) != 1) {
        X509_STORE_free(st);
        return NULL;
    }
    const struct gw_gen *gen = e->o->srv->gen;
    const struct gw_svc *svc = gen != NULL ? gw_gen_find_svc(gen, e->service) : NULL;
    for (int i = 0; svc != NULL && svc->cas != NULL && i < sk_X509_num(svc->cas); i++)
        (void)X509_STORE_add_cert(st, sk_X509_value(svc->cas, i));
    /* client-ca may hold the issuing intermediate alone, as the gateway accepts. */
    X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    ERR_clear_error();
    return st;
}

/* RFC 6960 §3.2: a successful response, signed by the CA or its delegated responder, with our
 * nonce echoed when it echoes one, current, and about this certificate. */
static int read_answer(struct gw_ocsp_entry *e, OCSP_BASICRESP *bs, struct gw_ocsp_ans *out,
                       struct tw_err *err)
{
    TW_ENSURE(OCSP_check_nonce(e->req, bs) != 0, err, TW_ERR_VERIFY, "nonce does not match");
    X509_STORE *st = trust_store(e);
    TW_ENSURE(st != NULL, err, TW_ERR_INTERNAL, "out of memory");
    int ok = OCSP_basic_verify(bs, NULL, st, 0);
    X509_STORE_free(st);
    TW_ENSURE_OSSL(ok > 0, err, TW_ERR_VERIFY, "the response's signature does not verify");
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, e->cert, e->issuer);
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    ok = id != NULL && OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd, &nextupd);
    OCSP_CERTID_free(id);
    TW_ENSURE(ok == 1, err, TW_ERR_VERIFY, "the response does not answer for this certificate");
    TW_ENSURE_OSSL(OCSP_check_validity(thisupd, nextupd, 300, -1) == 1, err, TW_ERR_VERIFY,
                   "the response is not current (thisUpdate/nextUpdate)");
    int64_t now = now_unix();
    out->status = status == V_OCSP_CERTSTATUS_GOOD      ? GW_OCSP_GOOD
                  : status == V_OCSP_CERTSTATUS_REVOKED ? GW_OCSP_REVOKED
                                                        : GW_OCSP_UNKNOWN;
    out->reason = reason;
    out->revoked_at = asn1_unix(rev);
    out->valid_until = nextupd != NULL ? asn1_unix(nextupd) : now + e->refresh;
    return 0;
}

static int check_response(struct gw_ocsp_entry *e, const struct gw_fetch_res *res,
                          struct gw_ocsp_ans *out, struct tw_err *err)
{
    TW_ENSURE(res->status != 0, err, TW_ERR_IO, "%s", res->error);
    TW_ENSURE(res->status == 200, err, TW_ERR_IO, "HTTP status %d", res->status);
    const unsigned char *p = res->body;
    OCSP_RESPONSE *resp = p != NULL ? d2i_OCSP_RESPONSE(NULL, &p, (long)res->len) : NULL;
    TW_ENSURE_OSSL(resp != NULL, err, TW_ERR_VERIFY, "not an OCSP response");
    int rs = OCSP_response_status(resp);
    OCSP_BASICRESP *bs =
        rs == OCSP_RESPONSE_STATUS_SUCCESSFUL ? OCSP_response_get1_basic(resp) : NULL;
    OCSP_RESPONSE_free(resp);
    TW_ENSURE(rs == OCSP_RESPONSE_STATUS_SUCCESSFUL, err, TW_ERR_VERIFY, "responder says: %s",
              OCSP_response_status_str(rs));
    TW_ENSURE_OSSL(bs != NULL, err, TW_ERR_VERIFY, "no basic response");
    int rc = read_answer(e, bs, out, err);
    OCSP_BASICRESP_free(bs);
    return rc;
}

static void on_fetched(const struct gw_fetch_res *res, void *arg)
{
    struct gw_ocsp_entry *e = arg;
    struct gw_ocsp *o = e->o;
    e->in_flight = false;
    struct gw_ocsp_ans ans = e->ans;
    struct tw_err err;
    int64_t now = now_unix();
    if (check_response(e, res, &ans, &err) != 0) {
        ERR_clear_error();
        o->fetch_failed++;
        log_warnx("ocsp %s: no answer for serial of %s: %s; %s", e->url, e->service, err.msg,
                  e->ans.status != GW_OCSP_NONE && e->ans.valid_until > now
                      ? "keeping the last answer until its nextUpdate"
                      : "no usable answer");
        e->ans.failed = true;
        republish(o); /* clients waiting for this answer are refused now, not at timeout */
        arm(e, e->refresh < FAIL_RETRY_SECS ? e->refresh : FAIL_RETRY_SECS);
        return;
    }
    o->fetch_ok++;
    ans.failed = false;
    bool newly_revoked = ans.status == GW_OCSP_REVOKED && e->ans.status != GW_OCSP_REVOKED;
    e->ans = ans;
    republish(o);
    /* Said once the workers hold the answer: whoever reads this line finds it enforced. */
    if (newly_revoked)
        log_info("ocsp %s: a client certificate of service %s is revoked", e->url, e->service);
    int64_t left = (ans.valid_until - now) * 3 / 4;
    arm(e, left < e->refresh ? left : e->refresh);
}

static int build_request(struct gw_ocsp_entry *e, unsigned char **der, int *len)
{
    OCSP_REQUEST_free(e->req);
    e->req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, e->cert, e->issuer);
    if (e->req == NULL || id == NULL || OCSP_request_add0_id(e->req, id) == NULL) {
        OCSP_CERTID_free(id);
        return -1;
    }
    if (OCSP_request_add1_nonce(e->req, NULL, -1) != 1)
        return -1;
    *der = NULL;
    *len = i2d_OCSP_REQUEST(e->req, der);
    return *len > 0 ? 0 : -1;
}

static void entry_fetch(struct gw_ocsp_entry *e)
{
    if (e->url == NULL || e->in_flight)
        return;
    e->last_attempt = now_unix();
    unsigned char *der = NULL;
    int len = 0;
    struct tw_err err;
    tw_err_clear(&err);
    int rc = build_request(e, &der, &len);
    if (rc == 0) {
        struct gw_fetch_req q = {.url = e->url,
                                 .ca_file = e->tls_ca,
                                 .post = true,
                                 .body = der,
                                 .len = (size_t)len,
                                 .content_type = "application/ocsp-request",
                                 .max_body = GW_FETCH_OCSP_MAX};
        rc = gw_fetch_start(e->o->fetcher, &q, on_fetched, e, &err);
    }
    OPENSSL_free(der);
    ERR_clear_error();
    if (rc != 0) {
        e->o->fetch_failed++;
        log_warnx("ocsp %s: cannot ask: %s", e->url, err.msg[0] != '\0' ? err.msg : "OpenSSL");
        e->ans.failed = true;
        republish(e->o);
        arm(e, FAIL_RETRY_SECS);
        return;
    }
    e->in_flight = true;
}

static char *aia_url(X509 *cert)
{
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(cert);
    char *url = NULL;
    if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0)
        url = strdup(sk_OPENSSL_STRING_value(urls, 0));
    X509_email_free(urls);
    return url;
}

static void evict_one(struct gw_ocsp *o)
{
    struct gw_ocsp_entry **victim = NULL;
    for (struct gw_ocsp_entry **p = &o->entries; *p != NULL; p = &(*p)->next)
        if (!(*p)->in_flight && (victim == NULL || (*p)->last_want < (*victim)->last_want))
            victim = p;
    if (victim == NULL)
        return;
    struct gw_ocsp_entry *e = *victim;
    *victim = e->next;
    entry_free(e);
    o->nentries--;
}

static struct gw_ocsp_entry *entry_new(struct gw_ocsp *o, struct gw_ocsp_want *w)
{
    const struct gw_gen *gen = o->srv->gen;
    const struct gw_svc *svc = gen != NULL ? gw_gen_find_svc(gen, w->service) : NULL;
    if (svc == NULL)
        return NULL;
    if (o->nentries >= GW_OCSP_CACHE_MAX)
        evict_one(o);
    struct gw_ocsp_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->o = o;
    e->cert = w->cert;
    e->issuer = w->issuer;
    w->cert = w->issuer = NULL;
    memcpy(e->ans.key, w->key, GW_OCSP_KEY_LEN);
    e->ans.status = GW_OCSP_NONE;
    e->ans.reason = -1;
    snprintf(e->service, sizeof(e->service), "%s", w->service);
    e->refresh = svc->cfg->crl_refresh > 0 ? svc->cfg->crl_refresh : 300;
    e->url = aia_url(e->cert);
    e->tls_ca = strdup(svc->cfg->crl_ca != NULL ? svc->cfg->crl_ca : svc->cfg->client_ca);
    e->timer = evtimer_new(o->srv->base, on_timer, e);
    if (e->tls_ca == NULL || e->timer == NULL) {
        entry_free(e);
        return NULL;
    }
    e->ans.failed = e->url == NULL; /* never answerable: published as failed */
    if (e->url == NULL)
        log_warnx("ocsp: a client certificate of service %s has no OCSP URL (AIA); it can "
                  "never get an OCSP answer",
                  w->service);
    e->next = o->entries;
    o->entries = e;
    o->nentries++;
    return e;
}

void gw_ocsp_take_wants(struct gw_ocsp *o)
{
    struct gw_ocsp_want *w = atomic_exchange_explicit(&o->wants, NULL, memory_order_acquire);
    int64_t now = now_unix();
    bool unanswerable = false;
    while (w != NULL) {
        struct gw_ocsp_want *next = w->next;
        struct gw_ocsp_entry *e = o->entries;
        while (e != NULL && memcmp(e->ans.key, w->key, GW_OCSP_KEY_LEN) != 0)
            e = e->next;
        if (e == NULL) {
            e = entry_new(o, w);
            if (e != NULL)
                unanswerable |= e->url == NULL;
        }
        /* Several handshakes may ask at once: one request per second per certificate. */
        if (e != NULL) {
            e->last_want = now;
            if (!e->in_flight && now - e->last_attempt >= 1)
                entry_fetch(e);
        }
        X509_free(w->cert);
        X509_free(w->issuer);
        free(w);
        w = next;
    }
    if (unanswerable)
        republish(o);
}
