/* A failed EST request in plain words: what went wrong on the way (name, connection, proxy,
 * time, size) from libcurl's report, and a failed TLS handshake as tlsx says it everywhere
 * else (doctor, the gateway log), from the alerts and verify result noted during it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "est/internal.h"

_Static_assert(sizeof(((struct est_xfer *)0)->curl_msg) >= CURL_ERROR_SIZE,
               "curl_msg holds CURLOPT_ERRORBUFFER");

static const char *curl_text(const struct est_xfer *x)
{
    return x->curl_msg[0] != '\0' ? x->curl_msg : curl_easy_strerror((CURLcode)x->rc);
}

static int tls_failure(const struct est_xfer *x, struct tw_err *err)
{
    enum tlsx_reason why = TLSX_R_OTHER;
    char detail[300];
    snprintf(detail, sizeof(detail), "%s", curl_text(x));
    if (x->verify_result != X509_V_OK) {
        why = tlsx_reason_from_verify(x->verify_result);
        snprintf(detail, sizeof(detail), "%s", X509_verify_cert_error_string(x->verify_result));
    } else if (x->alert_received >= 0) {
        /* The server refused us: e.g. "unknown CA" then means it does not trust our
         * certificate. */
        why = tlsx_reason_from_alert(x->alert_received);
        snprintf(detail, sizeof(detail), "the server sent alert: %s",
                 tlsx_alert_name(x->alert_received));
    } else if (x->why != TLSX_R_OK) {
        why = x->why;
        snprintf(detail, sizeof(detail), "%s", x->why_detail);
    }
    return tw_err_set(err, x->verify_result != X509_V_OK ? TW_ERR_VERIFY : TW_ERR_TLS,
                      "TLS handshake with %s failed: %s (%s)", x->u->origin,
                      tlsx_reason_text(why), detail);
}

static int is_tls(const struct est_xfer *x)
{
    switch ((CURLcode)x->rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
        return 1;
    default:
        /* A TLS 1.3 server refuses a client certificate after the handshake: the alert
         * comes with the first read. */
        return x->alert_received >= 0 || x->verify_result != X509_V_OK || x->why != TLSX_R_OK;
    }
}

/* The proxy libcurl takes from the environment for an https URL (the lower-case name first,
 * as it does), without its credentials, for messages: "" when none is set. */
static const char *proxy_from_env(char *out, size_t cap)
{
    static const char *const vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    out[0] = '\0';
    const char *var = NULL, *value = NULL;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]) && value == NULL; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0') {
            var = vars[i];
            value = v;
        }
    }
    if (value == NULL)
        return out;
    CURLU *url = curl_url();
    char *shown = NULL;
    if (url != NULL &&
        curl_url_set(url, CURLUPART_URL, value, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
            CURLUE_OK &&
        curl_url_set(url, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(url, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_get(url, CURLUPART_URL, &shown, 0) == CURLUE_OK)
        snprintf(out, cap, "%s from %s", shown, var);
    else
        snprintf(out, cap, "the one in %s", var);
    curl_free(shown);
    curl_url_cleanup(url);
    return out;
}

static const char *proxy_hint(long status)
{
    switch (status) {
    case 407:
        return " (the proxy wants credentials: give them in the proxy URL, "
               "http://USER:PASSWORD@HOST:PORT; or list the CA in NO_PROXY)";
    case 403:
        return " (the proxy does not allow this destination; ask its administrator, or list "
               "the CA in NO_PROXY if it is reachable directly)";
    default:
        return "";
    }
}

void est_http_explain(void *curl, const struct est_xfer *x, struct tw_err *err)
{
    const char *origin = x->u->origin;
    char proxy[300];
    long tunnel = 0;
    curl_easy_getinfo(curl, CURLINFO_HTTP_CONNECTCODE, &tunnel);
    if (x->setup_failed) {
        *err = x->setup_err;
    } else if (x->too_large || x->rc == CURLE_FILESIZE_EXCEEDED) {
        tw_err_set(err, TW_ERR_IO, "%s: answer larger than %u bytes", origin, EST_RESPONSE_MAX);
    } else if (x->headers_too_large) {
        tw_err_set(err, TW_ERR_IO, "%s: answer headers larger than %u bytes", origin,
                   EST_CLIENT_HEADERS_MAX);
    } else if (tunnel >= 300) {
        tw_err_set(err, TW_ERR_IO, "the proxy (%s) refused to open a tunnel to %s: HTTP %ld%s",
                   proxy_from_env(proxy, sizeof(proxy)), origin, tunnel, proxy_hint(tunnel));
    } else if (x->rc == CURLE_COULDNT_RESOLVE_PROXY) {
        tw_err_set(err, TW_ERR_IO, "cannot resolve the proxy (%s) for %s: %s",
                   proxy_from_env(proxy, sizeof(proxy)), origin, curl_text(x));
    } else if (x->rc == CURLE_COULDNT_RESOLVE_HOST) {
        tw_err_set(err, TW_ERR_IO, "cannot resolve %s (%s)", origin, curl_text(x));
    } else if (x->rc == CURLE_COULDNT_CONNECT && proxy_from_env(proxy, sizeof(proxy))[0] != 0) {
        /* Whether NO_PROXY sent this host around the proxy is libcurl's decision; the
         * address it could not reach is in its text. */
        tw_err_set(err, TW_ERR_IO, "cannot connect to %s: %s (proxy: %s, unless NO_PROXY lists "
                   "the host)", origin, curl_text(x), proxy);
    } else if (x->rc == CURLE_COULDNT_CONNECT) {
        tw_err_set(err, TW_ERR_IO, "cannot connect to %s: %s", origin, curl_text(x));
    } else if (x->rc == CURLE_OPERATION_TIMEDOUT) {
        tw_err_set(err, TW_ERR_IO, "%s did not answer in time: %s", origin, curl_text(x));
    } else if (is_tls(x)) {
        tls_failure(x, err);
    } else if (x->rc == CURLE_PROXY) {
        tw_err_set(err, TW_ERR_IO, "the proxy failed for %s: %s", origin, curl_text(x));
    } else {
        tw_err_set(err, TW_ERR_IO, "%s: %s", origin, curl_text(x));
    }
}
