/* Revocation status over HTTP: the CRL (with caching headers bound to its nextUpdate) and the
 * OCSP responder (RFC 6960 appendix A: POST body, or GET with the base64 request in the
 * path), plus /healthz. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "est/internal.h"
#include "util/cleanup.h"
#include "util/log.h"

void est_h_healthz(struct est_req *r)
{
    est_reply(r, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL);
}

int est_etag_matches(const char *header, const char *etag)
{
    if (header == NULL)
        return 0;
    if (strcmp(header, "*") == 0)
        return 1;
    const char *hit = strstr(header, etag);
    return hit != NULL;
}

void est_h_crl(struct est_req *r)
{
    struct tw_err err;
    struct est_crl_cache *c = &r->srv->crl;
    time_t now = time(NULL);
    if (est_crl_refresh(c, r->srv->opts->ca, now, &err) != 0 && c->der == NULL) {
        log_warnx("ca serve: no CRL to serve: %s", err.msg);
        est_reply_text(r, 503, "the CRL is not available right now");
        return;
    }
    char last_modified[40], expires[40], cache[64];
    est_http_date(c->this_update, last_modified, sizeof(last_modified));
    int64_t max_age = c->next_update > (int64_t)now ? c->next_update - (int64_t)now : 0;
    /* Caches may keep it until nextUpdate and no longer: that is when a new one must exist. */
    snprintf(cache, sizeof(cache), "public, max-age=%lld, must-revalidate", (long long)max_age);
    est_http_date(c->next_update != 0 ? c->next_update : (int64_t)now, expires, sizeof(expires));
    /* Twoway-Revocation-Feed tells a twoway gateway it may follow /revocations instead of
     * polling this URL (docs/commands/ca-serve.md). */
    const char *const headers[] = {"ETag",          c->etag,       "Last-Modified",
                                   last_modified,   "Cache-Control", cache,
                                   "Expires",       expires,       "Twoway-Revocation-Feed",
                                   "/revocations",  NULL};
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
    const char *inm = evhttp_find_header(in, "If-None-Match");
    const char *ims = evhttp_find_header(in, "If-Modified-Since");
    int64_t since = ims != NULL ? est_http_date_parse(ims) : -1;
    if (est_etag_matches(inm, c->etag) || (inm == NULL && since >= 0 && since >= c->this_update)) {
        est_reply(r, 304, NULL, NULL, 0, headers);
        return;
    }
    est_reply(r, 200, "application/pkix-crl", c->der, c->len, headers);
}

/* The DER request: the POST body, or the GET path's base64 (percent-decoded). */
static unsigned char *ocsp_request(struct est_req *r, size_t *len, struct tw_err *err)
{
    if (evhttp_request_get_command(r->req) == EVHTTP_REQ_POST) {
        unsigned char *body = est_body(r, len);
        if (body == NULL)
            tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return body;
    }
    size_t dlen = 0;
    TW_AUTO(charp) *decoded = evhttp_uridecode(r->tail, 0, &dlen);
    TW_ENSURE_PTR(decoded != NULL, err, TW_ERR_PKI, "OCSP GET path is not URL-encoded base64");
    unsigned char *der = NULL;
    if (est_b64_decode(decoded, dlen, "OCSP GET request", &der, len, err) != 0)
        return NULL;
    return der;
}

void est_h_ocsp(struct est_req *r)
{
    struct tw_err err;
    tw_err_clear(&err);
    size_t len = 0;
    unsigned char *req = ocsp_request(r, &len, &err);
    unsigned char *der = NULL;
    size_t dlen = 0;
    int status = -1;
    struct est_server *srv = r->srv;
    /* A request that cannot even be decoded still gets an OCSP answer: malformedRequest. */
    int rc = pki_ocsp_respond(srv->opts->ca, srv->opts->ocsp_signer, req != NULL ? req : der,
                              req != NULL ? len : 0, time(NULL), srv->opts->ocsp_validity, &der,
                              &dlen, &status, req != NULL ? &err : NULL);
    if (rc == 0 && status == OCSP_RESPONSE_STATUS_INTERNALERROR && err.code == TW_ERR_STORE) {
        /* The inventory is down: answer from what was known (ocspcache.c). */
        log_warnx("ca serve: OCSP from %s: inventory unavailable: %s", r->peer, err.msg);
        OPENSSL_free(der);
        der = NULL;
        rc = est_ocsp_fallback(srv, req, len, time(NULL), &der, &dlen, &status);
        tw_err_set(&err, TW_ERR_STORE, "answered without the inventory");
    } else if (rc == 0 && status == OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        est_ocsp_remember(der, dlen);
    }
    free(req);
    if (rc != 0) {
        log_warnx("ca serve: OCSP from %s: %s", r->peer, err.msg);
        est_reply_text(r, 500, "internal error (see the server log)");
        return;
    }
    if (status != 0 && err.code != TW_OK)
        snprintf(r->detail, sizeof(r->detail), "ocsp status %d: %.200s", status, err.msg);
    else
        snprintf(r->detail, sizeof(r->detail), "ocsp status %d", status);
    static const char *const headers[] = {"Cache-Control", "max-age=0, no-cache", NULL};
    est_reply(r, 200, "application/ocsp-response", der, dlen, headers);
    OPENSSL_free(der);
}
