/* Private to src/console: one request's context, the route table, the pieces of the pages. */
#ifndef TW_CONSOLE_INTERNAL_H
#define TW_CONSOLE_INTERNAL_H

#include <stdint.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "console/console.h"
#include "store/store.h"
#include "util/buf.h"

#define CONSOLE_API "/api/v1/"
#define CONSOLE_UI "/console/"
#define CONSOLE_PAGE_MAX (8u * 1024 * 1024) /* bytes of one answer (a CSV export may be big) */
#define CONSOLE_PER_PAGE 50                 /* inventory rows per page by default */
#define CONSOLE_PER_PAGE_MAX 1000
#define CONSOLE_LIST_MAX 1000000            /* inventory rows a search looks at */
#define CONSOLE_QUERY_MAX 256               /* bytes of one search/filter value */
#define CONSOLE_CSRF_HEX 65

enum console_role { CONSOLE_NOBODY = 0, CONSOLE_READ = 1, CONSOLE_ADMIN = 2 };

struct console {
    struct console_opts o;
    unsigned char csrf_key[32]; /* per process: tokens from one server are good there only */
    struct est_ext exts[4]; /* ended by a zeroed entry */
};

/* One request. */
struct console_req {
    struct console *c;
    struct est_req *r;
    const char *path; /* after the prefix ("certs/ABCD") */
    int html;         /* under /console/: answers are pages */
    int post;
    enum console_role role;
    struct tlsx_identity *id; /* the client certificate */
    char who[STORE_SUBJECT_MAX];      /* its subject */
    char who_serial[STORE_SERIAL_MAX];
    char csrf[CONSOLE_CSRF_HEX];
    struct evkeyvalq query; /* the query string */
    struct evkeyvalq form;  /* a POST's form body */
};

typedef void (*console_handler)(struct console_req *q, const char *arg);

/* ---------------------------------------------------------------- auth.c */

/* Let q in or answer it: 0 when q->role is set (READ or ADMIN), -1 when already answered
 * (401 without a usable certificate, 403 outside every role). */
int console_auth(struct console_req *q);
/* For writes: 0 when the request is an admin's POST carrying the session's CSRF token from
 * the same origin, -1 when already answered (403). */
int console_auth_write(struct console_req *q);
/* The audit row of a write: action by the admin (subject and serial), result "ok: what" or
 * the error. */
void console_audit(struct console_req *q, const char *action, const char *what,
                   const struct tw_err *failure);

/* ---------------------------------------------------------------- reply.c */

/* Security headers on every answer, then the body. */
void console_send(struct console_req *q, int status, const char *ctype, const void *body,
                  size_t len, const char *const *extra_headers);
/* JSON answer (takes the reference). */
void console_send_json(struct console_req *q, int status, json_t *o);
/* An error as JSON {"error": msg} or as a page, never a trace. */
void console_fail(struct console_req *q, int status, const char *msg);
/* The HTTP status for a tw_err code. */
int console_status_of(const struct tw_err *err);
/* A value of the query string or form; NULL when absent. */
const char *console_param(struct console_req *q, const char *name);
const char *console_form(struct console_req *q, const char *name);
/* A whole number in [min, max] or def when absent; -1 and answered 400 when bad. */
int console_int_param(struct console_req *q, const char *name, long def, long min, long max,
                      long *out);

/* ---------------------------------------------------------------- inventory (certs.c) */

struct console_row {
    char serial[STORE_SERIAL_MAX];
    char name[STORE_NAME_MAX];
    char profile[STORE_PROFILE_MAX];
    int64_t not_before, not_after, revoked_at;
    int status;
};

struct console_page {
    struct console_row *rows; /* this page only */
    size_t n;
    size_t total; /* matching rows */
    long page, per_page;
};

/* Search the inventory with q's parameters (q, status, profile, expiring, sort, order, page,
 * per_page). -1 when already answered (400 for a bad parameter, 500/503 for the store). */
int console_certs_search(struct console_req *q, struct console_page *out);
void console_page_free(struct console_page *p);
const char *console_status_name(int status);

/* ---------------------------------------------------------------- handlers */

void console_api_session(struct console_req *q, const char *arg);
void console_api_overview(struct console_req *q, const char *arg);
void console_api_certs(struct console_req *q, const char *arg);
void console_api_cert(struct console_req *q, const char *arg);
void console_api_revoke(struct console_req *q, const char *arg);
void console_api_tokens(struct console_req *q, const char *arg);
void console_api_token_create(struct console_req *q, const char *arg);
void console_api_pending(struct console_req *q, const char *arg);
void console_api_decide(struct console_req *q, const char *arg);
void console_api_audit(struct console_req *q, const char *arg);

/* The row and parsed certificate (may stay NULL) of serial; -1 when answered (404, 503). */
int console_cert_load(struct console_req *q, const char *serial, struct store_cert *row,
                      X509 **cert);
/* good, revoked or unknown: what the OCSP responder answers about cert right now. */
const char *console_ocsp_says(struct console *c, X509 *cert);
/* 303 See Other to a console page (after a write from a form). */
void console_redirect(struct console_req *q, const char *to);
/* Revoke (with reason name) and rewrite the CRL; audited. */
int console_do_revoke(struct console_req *q, const char *serial, const char *reason,
                      struct tw_err *err) TW_MUST_CHECK;
/* Create a token from the form (name, profile, sans, ttl, days); audited. token and cmd (the
 * `twoway enroll` command) filled. */
int console_do_token(struct console_req *q, char token[PKI_TOKEN_TEXT_MAX], char *cmd,
                     size_t cmd_cap, int64_t *expires_at, struct tw_err *err) TW_MUST_CHECK;
/* Approve or reject a pending request by id prefix; audited. */
int console_do_decide(struct console_req *q, const char *id, int approve, struct tw_err *err)
    TW_MUST_CHECK;

/* The audit log filtered by q's action, subject, since, until; newest first, paged. *rows
 * (free()) holds *n rows of *total matching. -1 when answered. */
int console_audit_search(struct console_req *q, struct store_audit **rows, size_t *n,
                         size_t *total, long *page);

/* Overview numbers. */
struct console_stats {
    int64_t by_status[3];
    int64_t client, server, admin, other;
    int64_t expiring_week[13]; /* valid certificates expiring in week i from now (90 days) */
    int64_t revoked_week[13];  /* revocations in week i before now */
    int64_t total;
};
int console_stats(struct console *c, struct console_stats *s, struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- pages (html*.c, svg.c, qr.c) */

/* A time as ISO 8601 UTC into buf, "-" for 0. */
const char *console_when(int64_t t, char *buf, size_t cap);
/* Append text with &<>"' escaped. */
int console_html_esc(struct tw_buf *b, const char *text, struct tw_err *err) TW_MUST_CHECK;
/* Page head (title escaped, nav) and foot. */
int console_html_head(struct console_req *q, struct tw_buf *b, const char *title,
                      struct tw_err *err) TW_MUST_CHECK;
int console_html_foot(struct tw_buf *b, struct tw_err *err) TW_MUST_CHECK;
/* Send b as a 200 page (or the failure as an error page). */
void console_html_send(struct console_req *q, struct tw_buf *b, int rc, const struct tw_err *err);

/* Bars of counts (n of them) as an inline SVG with labels. */
int console_svg_bars(struct tw_buf *b, const char *title, const int64_t *counts, size_t n,
                     const char *unit, struct tw_err *err) TW_MUST_CHECK;
/* text as a QR code in an inline SVG. */
int console_svg_qr(struct tw_buf *b, const char *text, struct tw_err *err) TW_MUST_CHECK;

void console_page_overview(struct console_req *q, const char *arg);
void console_page_certs(struct console_req *q, const char *arg);
void console_page_cert(struct console_req *q, const char *arg);
void console_page_revoke(struct console_req *q, const char *arg);
void console_page_tokens(struct console_req *q, const char *arg);
void console_page_token_create(struct console_req *q, const char *arg);
void console_page_pending(struct console_req *q, const char *arg);
void console_page_decide(struct console_req *q, const char *arg);
void console_page_audit(struct console_req *q, const char *arg);
void console_page_static(struct console_req *q, const char *arg);

#endif
