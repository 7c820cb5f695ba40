/* OCSP checks of client certificates, the worker side. A worker never waits on the network:
 * it looks the certificate up in the newest answer snapshot the main thread published to it
 * (an atomic slot per worker, swapped in lazily here, so no lock is taken), and on a miss
 * pushes a request onto a lock-free stack and pokes the main thread's eventfd. With
 * ocsp-fail = closed the connection then waits, handshake done and backend not connected,
 * until the main thread publishes the answer and pokes this worker (gw_ocsp_worker_wake), or
 * until the handshake timeout; open lets it through with a warning. A revoked answer always
 * refuses, and closes live connections of that certificate. */
#include "gateway/revocation.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>

#include "util/log.h"

_Static_assert(sizeof(((struct gw_conn *)0)->ocsp_key) == GW_OCSP_KEY_LEN, "OCSP key size");

static const char *const result_names[GW_OCSP_NRES] = {"good", "revoked", "unknown", "none"};

int gw_ocsp_key(X509 *cert, X509 *issuer, unsigned char key[GW_OCSP_KEY_LEN])
{
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, cert, issuer);
    unsigned char *der = NULL;
    int n = id != NULL ? i2d_OCSP_CERTID(id, &der) : -1;
    unsigned int len = 0;
    int ok = n > 0 && EVP_Digest(der, (size_t)n, key, &len, EVP_sha256(), NULL) == 1 &&
             len == GW_OCSP_KEY_LEN;
    OPENSSL_free(der);
    OCSP_CERTID_free(id);
    return ok ? 0 : -1;
}

void gw_ocsp_snap_unref(struct gw_ocsp_snap *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

void gw_ocsp_publish(struct gw_ocsp *o, struct gw_ocsp_snap *snap)
{
    for (size_t i = 0; i < GW_MAX_WORKERS; i++) {
        atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
        gw_ocsp_snap_unref(atomic_exchange(&o->slot[i], snap));
    }
    /* Poke the workers (their notify eventfd) so waiting clients get their verdict now. */
    uint64_t one = 1;
    for (size_t i = 0; i < o->srv->nworkers; i++) {
        atomic_store(&o->wake[i], true);
        if (o->srv->workers[i].notify_fd >= 0 &&
            write(o->srv->workers[i].notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("ocsp: cannot notify worker %zu", i);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("ocsp: wake read");
    gw_ocsp_take_wants(arg);
}

struct gw_ocsp *gw_ocsp_new(struct gw_server *srv, struct gw_fetcher *f, struct tw_err *err)
{
    struct gw_ocsp *o = calloc(1, sizeof(*o));
    TW_ENSURE_PTR(o != NULL, err, TW_ERR_INTERNAL, "out of memory");
    o->srv = srv;
    o->fetcher = f;
    atomic_init(&o->wants, NULL);
    for (size_t i = 0; i < GW_MAX_WORKERS; i++) {
        atomic_init(&o->slot[i], NULL);
        atomic_init(&o->wake[i], false);
    }
    for (size_t i = 0; i < GW_OCSP_NRES; i++)
        atomic_init(&o->checks[i], 0);
    o->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (o->wake_fd < 0) {
        tw_err_sys(err, TW_ERR_IO, "ocsp: eventfd");
        free(o);
        return NULL;
    }
    o->wake_ev = event_new(srv->base, o->wake_fd, EV_READ | EV_PERSIST, on_wake, o);
    if (o->wake_ev == NULL || event_add(o->wake_ev, NULL) != 0) {
        tw_err_set(err, TW_ERR_INTERNAL, "ocsp: event_new failed");
        gw_ocsp_free(o);
        return NULL;
    }
    return o;
}

static void want_free(struct gw_ocsp_want *w)
{
    X509_free(w->cert);
    X509_free(w->issuer);
    free(w);
}

void gw_ocsp_free(struct gw_ocsp *o)
{
    if (o == NULL)
        return;
    struct gw_ocsp_want *w = atomic_exchange(&o->wants, NULL);
    while (w != NULL) {
        struct gw_ocsp_want *next = w->next;
        want_free(w);
        w = next;
    }
    for (size_t i = 0; i < GW_MAX_WORKERS; i++) {
        gw_ocsp_snap_unref(atomic_exchange(&o->slot[i], NULL));
        gw_ocsp_snap_unref(o->cur[i]);
    }
    gw_ocsp_entries_free(o);
    if (o->wake_ev != NULL)
        event_free(o->wake_ev);
    if (o->wake_fd >= 0)
        close(o->wake_fd);
    free(o);
}

/* ---- worker side ---- */

static int cmp_key(const void *key, const void *ans)
{
    return memcmp(key, ((const struct gw_ocsp_ans *)ans)->key, GW_OCSP_KEY_LEN);
}

static const struct gw_ocsp_ans *lookup(struct gw_ocsp *o, size_t worker, const unsigned char *key)
{
    struct gw_ocsp_snap *fresh = atomic_exchange(&o->slot[worker], NULL);
    if (fresh != NULL) {
        gw_ocsp_snap_unref(o->cur[worker]);
        o->cur[worker] = fresh;
    }
    const struct gw_ocsp_snap *s = o->cur[worker];
    if (s == NULL)
        return NULL;
    return bsearch(key, s->v, s->n, sizeof(s->v[0]), cmp_key);
}

static X509 *find_issuer(SSL *ssl, X509 *cert, STACK_OF(X509) * cas)
{
    STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);
    if (chain != NULL && sk_X509_num(chain) > 1)
        return sk_X509_value(chain, 1);
    for (int i = 0; cas != NULL && i < sk_X509_num(cas); i++)
        if (X509_check_issued(sk_X509_value(cas, i), cert) == X509_V_OK)
            return sk_X509_value(cas, i);
    chain = SSL_get_peer_cert_chain(ssl);
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
        if (X509_check_issued(sk_X509_value(chain, i), cert) == X509_V_OK)
            return sk_X509_value(chain, i);
    return NULL;
}

/* Ask the main thread for an answer: push onto the stack, poke the eventfd. */
static void want(struct gw_ocsp *o, const struct gw_conn *c, X509 *cert, X509 *issuer,
                 const unsigned char *key)
{
    struct gw_ocsp_want *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return;
    memcpy(w->key, key, GW_OCSP_KEY_LEN);
    X509_up_ref(cert);
    X509_up_ref(issuer);
    w->cert = cert;
    w->issuer = issuer;
    snprintf(w->service, sizeof(w->service), "%s", c->svc->cfg->name);
    w->next = atomic_load_explicit(&o->wants, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&o->wants, &w->next, w, memory_order_release,
                                                  memory_order_relaxed))
        ;
    uint64_t one = 1;
    if (write(o->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("ocsp: wake");
}

static int refuse(struct gw_conn *c, enum tlsx_reason reason, const char *what, const char *serial)
{
    c->reason = (int)reason;
    c->verdict = "deny";
    snprintf(c->detail, sizeof(c->detail), "OCSP: serial %s: %s", serial, what);
    gw_stat_add(&c->w->stats.handshakes[reason], 1);
    log_info("client %s refused%s: %s - %s", c->peer_text, c->resumed ? " (resumed)" : "",
             tlsx_reason_text(reason), c->detail);
    gw_conn_close(c, "ocsp");
    return -1;
}

/* What a cached answer says now: a revocation stands whatever its age; anything else past its
 * nextUpdate is no answer. */
static enum gw_ocsp_result classify(const struct gw_ocsp_ans *a, int64_t now)
{
    if (a == NULL)
        return GW_OCSP_NONE;
    if (a->status == GW_OCSP_REVOKED)
        return GW_OCSP_REVOKED;
    return a->valid_until > now ? a->status : GW_OCSP_NONE;
}

int gw_ocsp_gate(struct gw_conn *c)
{
    if (c->svc == NULL || !c->svc->cfg->ocsp || c->ssl == NULL)
        return 0;
    struct gw_ocsp *o = gw_revoc_ocsp(c->w->srv->revoc);
    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    const char *serial = c->id != NULL ? c->id->serial_hex : "?";
    bool closed = c->svc->cfg->ocsp_fail == GW_OCSP_FAIL_CLOSED;
    X509 *issuer = cert != NULL ? find_issuer(c->ssl, cert, c->svc->cas) : NULL;
    if (o == NULL)
        return closed ? refuse(c, TLSX_R_CRL_MISSING, "OCSP not set up", serial) : 0;
    if (issuer == NULL || gw_ocsp_key(cert, issuer, c->ocsp_key) != 0) {
        ERR_clear_error();
        atomic_fetch_add_explicit(&o->checks[GW_OCSP_NONE], 1, memory_order_relaxed);
        return closed ? refuse(c, TLSX_R_CRL_MISSING, "issuer not found", serial) : 0;
    }
    c->ocsp_keyed = true;
    const struct gw_ocsp_ans *a = lookup(o, c->w->id, c->ocsp_key);
    enum gw_ocsp_result r = classify(a, (int64_t)time(NULL));
    atomic_fetch_add_explicit(&o->checks[r], 1, memory_order_relaxed);
    switch (r) {
    case GW_OCSP_GOOD:
        return 0;
    case GW_OCSP_REVOKED:
        return refuse(c, TLSX_R_REVOKED, "revoked", serial);
    case GW_OCSP_UNKNOWN:
        if (closed)
            return refuse(c, TLSX_R_CRL_MISSING, "the responder says unknown (ocsp-fail = closed)",
                          serial);
        log_warnx("client %s: OCSP says unknown for serial %s; allowed (ocsp-fail = open)",
                  c->peer_text, serial);
        return 0;
    default:
        break;
    }
    want(o, c, cert, issuer, c->ocsp_key);
    if (!closed) {
        log_warnx("client %s: OCSP has no answer for serial %s; allowed (ocsp-fail = open)",
                  c->peer_text, serial);
        return 0;
    }
    if (a != NULL && a->failed)
        return refuse(c, TLSX_R_CRL_MISSING,
                      "the responder gave no usable answer (ocsp-fail = closed)", serial);
    c->ocsp_wait = true; /* until gw_ocsp_worker_wake, or the handshake timeout */
    log_debug("client %s: waiting for the OCSP answer for serial %s", c->peer_text, serial);
    return 1;
}

/* A waiting connection and the newest answer: admit, refuse, or keep waiting. */
static void resolve_wait(struct gw_conn *c, const struct gw_ocsp_ans *a, enum gw_ocsp_result r)
{
    const char *serial = c->id != NULL ? c->id->serial_hex : "?";
    if (r == GW_OCSP_NONE && (a == NULL || !a->failed))
        return;
    c->ocsp_wait = false;
    if (r == GW_OCSP_GOOD)
        gw_conn_admit(c);
    else if (r == GW_OCSP_REVOKED)
        (void)refuse(c, TLSX_R_REVOKED, "revoked", serial);
    else if (r == GW_OCSP_UNKNOWN)
        (void)refuse(c, TLSX_R_CRL_MISSING, "the responder says unknown (ocsp-fail = closed)",
                     serial);
    else
        (void)refuse(c, TLSX_R_CRL_MISSING,
                     "the responder gave no usable answer (ocsp-fail = closed)", serial);
}

void gw_ocsp_worker_wake(struct gw_worker *w)
{
    struct gw_ocsp *o = gw_revoc_ocsp(w->srv->revoc);
    if (o == NULL || !atomic_exchange(&o->wake[w->id], false))
        return;
    int64_t now = (int64_t)time(NULL);
    struct gw_conn *next;
    for (struct gw_conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (!c->ocsp_keyed || c->state == GW_CONN_LINGER)
            continue;
        const struct gw_ocsp_ans *a = lookup(o, w->id, c->ocsp_key);
        enum gw_ocsp_result r = classify(a, now);
        if (c->ocsp_wait) {
            resolve_wait(c, a, r);
        } else if (r == GW_OCSP_REVOKED && c->state != GW_CONN_HANDSHAKE) {
            gw_stat_add(&w->stats.revoked_closed, 1);
            c->reason = TLSX_R_REVOKED;
            c->verdict = "deny";
            snprintf(c->detail, sizeof(c->detail), "certificate revoked (OCSP answer)");
            log_info("client %s: certificate revoked (OCSP answer); closing its connection",
                     c->peer_text);
            gw_conn_close(c, "revoked");
        }
    }
}

int gw_ocsp_metrics(struct tw_buf *b, const struct gw_ocsp *o, struct tw_err *err)
{
    if (o == NULL)
        return 0;
    TW_GUARD(tw_buf_appendf(b, err,
                            "# HELP twoway_ocsp_checks_total OCSP checks of client certificates "
                            "by cached answer (none: missing or stale).\n"
                            "# TYPE twoway_ocsp_checks_total counter\n"));
    for (size_t i = 0; i < GW_OCSP_NRES; i++)
        TW_GUARD(tw_buf_appendf(
            b, err, "twoway_ocsp_checks_total{answer=\"%s\"} %llu\n", result_names[i],
            (unsigned long long)atomic_load_explicit(&o->checks[i], memory_order_relaxed)));
    return tw_buf_appendf(b, err,
                          "# HELP twoway_ocsp_fetch_total OCSP requests to responders by result.\n"
                          "# TYPE twoway_ocsp_fetch_total counter\n"
                          "twoway_ocsp_fetch_total{result=\"ok\"} %llu\n"
                          "twoway_ocsp_fetch_total{result=\"failed\"} %llu\n"
                          "# HELP twoway_ocsp_cache_entries OCSP answers cached.\n"
                          "# TYPE twoway_ocsp_cache_entries gauge\n"
                          "twoway_ocsp_cache_entries %zu\n",
                          (unsigned long long)o->fetch_ok, (unsigned long long)o->fetch_failed,
                          o->nentries);
}
