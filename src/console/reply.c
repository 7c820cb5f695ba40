/* Answers: the security headers every console response carries, JSON, errors as pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "console/internal.h"

/* No inline script or style, nothing from elsewhere, no framing (also X-Frame-Options for
 * older browsers), no referrer leaking serials to other sites (and Origin not nulled on our own
 * forms, as "no-referrer" makes browsers do), HSTS for the origin (RFC 6797), no sniffing,
 * and nothing cached: pages show secrets once (tokens) and status that changes. */
static const char *const security_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options", "DENY",
    "X-Content-Type-Options", "nosniff",
    "Referrer-Policy", "same-origin",
    "Strict-Transport-Security", "max-age=31536000",
    "Cache-Control", "no-store",
    "Cross-Origin-Opener-Policy", "same-origin",
    "Cross-Origin-Resource-Policy", "same-origin",
    NULL,
};

#define HEADERS_MAX 32

void console_send(struct console_req *q, int status, const char *ctype, const void *body,
                  size_t len, const char *const *extra_headers)
{
    const char *h[HEADERS_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; security_headers[i] != NULL && n + 2 <= HEADERS_MAX; i += 2) {
        h[n++] = security_headers[i];
        h[n++] = security_headers[i + 1];
    }
    for (size_t i = 0; extra_headers != NULL && extra_headers[i] != NULL && n + 2 <= HEADERS_MAX;
         i += 2) {
        h[n++] = extra_headers[i];
        h[n++] = extra_headers[i + 1];
    }
    h[n] = NULL;
    char detail[TW_ERR_MSG_MAX];
    snprintf(detail, sizeof(detail), "console %s", q->role == CONSOLE_ADMIN  ? "admin"
                                                   : q->role == CONSOLE_READ ? "read"
                                                                             : "-");
    est_req_reply(q->r, status, ctype, body, len, h, detail);
}

void console_send_json(struct console_req *q, int status, json_t *o)
{
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"internal error\"}\n";
        console_send(q, 500, "application/json", oom, sizeof(oom) - 1, NULL);
        return;
    }
    size_t len = strlen(text);
    console_send(q, status, "application/json", text, len, NULL);
    free(text);
}

void console_fail(struct console_req *q, int status, const char *msg)
{
    if (!q->html) {
        console_send_json(q, status, json_pack("{s:s, s:i}", "error", msg, "status", status));
        return;
    }
    struct tw_buf b;
    tw_buf_init(&b, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = tw_buf_appendf(&b, &err,
                            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                            "<title>twoway console: %d</title><link rel=\"stylesheet\" "
                            "href=\"/console/static/console.css\"></head><body><main><h1>%d</h1>"
                            "<p class=\"error\">",
                            status, status);
    if (rc == 0)
        rc = console_html_esc(&b, msg, &err);
    if (rc == 0)
        rc = tw_buf_appendf(&b, &err, "</p><p><a href=\"/console/\">Back to the overview</a>"
                                      "</p></main></body></html>\n");
    if (rc == 0)
        console_send(q, status, "text/html; charset=utf-8", b.data, b.len, NULL);
    else
        console_send(q, status, "text/plain; charset=utf-8", "error\n", 6, NULL);
    tw_buf_free(&b);
}

int console_status_of(const struct tw_err *err)
{
    switch (err->code) {
    case TW_ERR_USAGE:
    case TW_ERR_PKI:
        return 400;
    case TW_ERR_NOTFOUND:
        return 404;
    case TW_ERR_EXISTS:
        return 409;
    case TW_ERR_POLICY:
    case TW_ERR_VERIFY:
        return 403;
    case TW_ERR_STORE:
        return 503;
    default:
        return 500;
    }
}

const char *console_param(struct console_req *q, const char *name)
{
    const char *v = evhttp_find_header(&q->query, name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

const char *console_form(struct console_req *q, const char *name)
{
    const char *v = evhttp_find_header(&q->form, name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int console_int_param(struct console_req *q, const char *name, long def, long min, long max,
                      long *out)
{
    const char *v = console_param(q, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < min || n > max) {
        char msg[160];
        snprintf(msg, sizeof(msg), "parameter %.32s: expected a whole number from %ld to %ld",
                 name, min, max);
        console_fail(q, 400, msg);
        return -1;
    }
    *out = n;
    return 0;
}
