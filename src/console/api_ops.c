/* /api/v1/ session, overview, tokens, pending requests and the audit log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "console/internal.h"
#include "util/clock.h"

void console_api_session(struct console_req *q, const char *arg)
{
    (void)arg;
    console_send_json(q, 200,
                      json_pack("{s:s, s:s, s:s, s:s}", "subject", q->who, "serial",
                                q->who_serial, "role",
                                q->role == CONSOLE_ADMIN ? "admin" : "read", "csrf", q->csrf));
}

struct stats_ctx {
    struct console_stats *s;
    int64_t now;
};

static int count(const struct store_cert *c, void *arg)
{
    struct stats_ctx *x = arg;
    struct console_stats *s = x->s;
    s->total++;
    if ((int)c->status >= 0 && (int)c->status < 3)
        s->by_status[c->status]++;
    if (strcmp(c->profile, "client") == 0)
        s->client++;
    else if (strcmp(c->profile, "server") == 0)
        s->server++;
    else if (strcmp(c->profile, "admin") == 0)
        s->admin++;
    else
        s->other++;
    int64_t week = 7 * 86400;
    if (c->status == STORE_VALID && c->not_after >= x->now && c->not_after < x->now + 13 * week)
        s->expiring_week[(c->not_after - x->now) / week]++;
    if (c->status == STORE_REVOKED && c->revoked_at <= x->now && c->revoked_at > x->now - 13 * week)
        s->revoked_week[12 - (x->now - c->revoked_at) / week]++;
    return 0;
}

int console_stats(struct console *c, struct console_stats *s, struct tw_err *err)
{
    memset(s, 0, sizeof(*s));
    struct stats_ctx x = {s, (int64_t)time(NULL)};
    struct store_filter f = {.status = -1};
    return store_cert_list(pki_ca_store(c->o.ca), &f, count, &x, err);
}

static json_t *weeks(const int64_t *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < 13; i++)
        json_array_append_new(a, json_integer((json_int_t)v[i]));
    return a;
}

void console_api_overview(struct console_req *q, const char *arg)
{
    (void)arg;
    struct console_stats s;
    struct tw_err err;
    int healthy = console_stats(q->c, &s, &err) == 0;
    if (!healthy)
        memset(&s, 0, sizeof(s));
    struct store *st = pki_ca_store(q->c->o.ca);
    console_send_json(
        q, healthy ? 200 : 503,
        json_pack("{s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:o, s:o, s:{s:s, s:s, s:b}}",
                  "total", (json_int_t)s.total, "status", "valid", (json_int_t)s.by_status[0],
                  "revoked", (json_int_t)s.by_status[1], "expired", (json_int_t)s.by_status[2],
                  "profile", "client", (json_int_t)s.client, "server", (json_int_t)s.server,
                  "admin", (json_int_t)s.admin, "other", (json_int_t)s.other,
                  "expiring_per_week", weeks(s.expiring_week), "revoked_per_week",
                  weeks(s.revoked_week), "store", "backend", store_backend(st), "where",
                  store_where(st), "healthy", healthy));
}

/* ------------------------------------------------------------------ tokens */

static int token_row(const struct store_token *t, void *arg)
{
    json_t *a = arg;
    int64_t now = (int64_t)time(NULL);
    const char *state = t->used_at != 0 ? "used" : t->expires_at <= now ? "expired" : "unused";
    json_array_append_new(
        a, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "id", t->hash, "name",
                     t->name, "profile", t->profile, "sans", t->sans, "created_at",
                     (json_int_t)t->created_at, "expires_at", (json_int_t)t->expires_at,
                     "used_at", (json_int_t)t->used_at, "serial", t->serial, "state", state));
    return 0;
}

void console_api_tokens(struct console_req *q, const char *arg)
{
    (void)arg;
    json_t *a = json_array();
    struct tw_err err;
    if (a == NULL || store_token_list(pki_ca_store(q->c->o.ca), token_row, a, &err) != 0) {
        json_decref(a);
        console_fail(q, 503, "the inventory cannot be read");
        return;
    }
    console_send_json(q, 200, json_pack("{s:o}", "items", a));
}

/* The server's origin as this browser reached it, for the enrollment command: the Host
 * header when it is a plain host[:port], else the CA's base URL. */
static void origin(struct console_req *q, char *out, size_t cap)
{
    const char *host = est_req_header(q->r, "Host");
    int ok = host != NULL && host[0] != '\0' && strlen(host) < 200 &&
             strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") ==
                 strlen(host);
    const char *base = pki_ca_base_url(q->c->o.ca);
    snprintf(out, cap, "%s%s", ok ? "https://" : "", ok ? host : base != NULL ? base : "https://CA-HOST:8443");
}

int console_do_token(struct console_req *q, char token[PKI_TOKEN_TEXT_MAX], char *cmd,
                     size_t cmd_cap, int64_t *expires_at, struct tw_err *err)
{
    const char *name = console_form(q, "name"), *profile = console_form(q, "profile");
    const char *sans = console_form(q, "sans"), *ttl = console_form(q, "ttl");
    const char *days = console_form(q, "days");
    struct pki_sans list;
    memset(&list, 0, sizeof(list));
    struct pki_token_spec spec = {.name = name, .profile = PKI_PROFILE_CLIENT, .sans = &list,
                                  .ttl = 86400};
    char what[128];
    snprintf(what, sizeof(what), "token for %.64s", name != NULL ? name : "?");
    int rc = name == NULL ? tw_err_set(err, TW_ERR_USAGE, "name is required") : 0;
    if (rc == 0 && profile != NULL)
        rc = pki_profile_parse(profile, &spec.profile, err);
    if (rc == 0 && spec.profile != PKI_PROFILE_CLIENT && spec.profile != PKI_PROFILE_SERVER)
        rc = tw_err_set(err, TW_ERR_USAGE, "profile: tokens enroll client or server "
                                           "certificates only");
    if (rc == 0 && sans != NULL)
        rc = pki_sans_parse(&list, sans, err);
    if (rc == 0 && ttl != NULL)
        rc = clock_duration_parse(ttl, &spec.ttl, err);
    if (rc == 0 && days != NULL)
        rc = clock_duration_parse(days, &spec.lifetime, err);
    if (rc == 0)
        rc = pki_ca_token_create(q->c->o.ca, &spec, token, expires_at, err);
    char hex[65] = "";
    if (rc == 0)
        rc = pki_cert_fingerprint(pki_ca_root_cert(q->c->o.ca), hex, NULL, err);
    if (rc == 0) {
        char url[300];
        origin(q, url, sizeof(url));
        snprintf(cmd, cmd_cap, "twoway enroll %s%s --name %s --ca-fingerprint %s --token %s", url,
                 spec.profile == PKI_PROFILE_SERVER ? "/.well-known/est/server" : "", name, hex,
                 token);
    }
    console_audit(q, "token", what, rc == 0 ? NULL : err);
    return rc;
}

void console_api_token_create(struct console_req *q, const char *arg)
{
    (void)arg;
    char token[PKI_TOKEN_TEXT_MAX], cmd[1024];
    int64_t expires = 0;
    struct tw_err err;
    if (console_do_token(q, token, cmd, sizeof(cmd), &expires, &err) != 0) {
        console_fail(q, console_status_of(&err), err.msg);
        return;
    }
    console_send_json(q, 201, json_pack("{s:s, s:s, s:I}", "token", token, "command", cmd,
                                        "expires_at", (json_int_t)expires));
    OPENSSL_cleanse(token, sizeof(token));
    OPENSSL_cleanse(cmd, sizeof(cmd));
}

/* ------------------------------------------------------------------ pending requests */

static int pending_row(const struct store_pending *p, void *arg)
{
    json_array_append_new(
        arg, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s, s:s}", "id", p->id,
                       "name", p->name, "subject", p->subject, "sans", p->sans, "profile",
                       p->profile, "peer", p->peer, "created_at", (json_int_t)p->created_at,
                       "state", p->state, "decided_at", (json_int_t)p->decided_at, "reason",
                       p->reason, "serial", p->serial));
    return 0;
}

void console_api_pending(struct console_req *q, const char *arg)
{
    (void)arg;
    const char *state = console_param(q, "state");
    if (state != NULL && strcmp(state, "any") == 0)
        state = NULL;
    else if (state == NULL)
        state = "pending";
    json_t *a = json_array();
    struct tw_err err;
    if (a == NULL ||
        store_pending_list(pki_ca_store(q->c->o.ca), state, pending_row, a, &err) != 0) {
        json_decref(a);
        console_fail(q, 503, "the inventory cannot be read");
        return;
    }
    console_send_json(q, 200, json_pack("{s:o}", "items", a));
}

int console_do_decide(struct console_req *q, const char *id, int approve, struct tw_err *err)
{
    struct store *st = pki_ca_store(q->c->o.ca);
    struct store_pending p;
    memset(&p, 0, sizeof(p));
    const char *reason = console_form(q, "reason");
    char what[160];
    snprintf(what, sizeof(what), "%s request %.16s", approve ? "approve" : "reject", id);
    int64_t lifetime = 0;
    const char *days = console_form(q, "days");
    int rc = days != NULL ? clock_duration_parse(days, &lifetime, err) : 0;
    if (rc == 0)
        rc = store_pending_find(st, id, &p, err);
    if (rc == 0)
        rc = store_pending_decide(st, p.id, approve, lifetime, reason != NULL ? reason : "", 0,
                                  err);
    store_pending_clear(&p);
    console_audit(q, approve ? "approve" : "reject", what, rc == 0 ? NULL : err);
    return rc;
}

void console_api_decide(struct console_req *q, const char *id)
{
    int approve = strstr(q->path, "/approve") != NULL;
    struct tw_err err;
    if (console_do_decide(q, id, approve, &err) != 0) {
        console_fail(q, console_status_of(&err), err.msg);
        return;
    }
    console_send_json(q, 200, json_pack("{s:s, s:s}", "id", id, "state",
                                         approve ? "approved" : "rejected"));
}

/* ------------------------------------------------------------------ audit */

struct audit_ctx {
    const char *action, *subject;
    int64_t since, until;
    struct store_audit *rows;
    size_t n, cap;
    int oom;
};

static int audit_row(const struct store_audit *a, void *arg)
{
    struct audit_ctx *x = arg;
    if ((x->action != NULL && strcmp(a->action, x->action) != 0) ||
        (x->subject != NULL && strcasestr(a->subject, x->subject) == NULL) ||
        (x->since > 0 && a->at < x->since) || (x->until > 0 && a->at > x->until))
        return 0;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        struct store_audit *rows = realloc(x->rows, cap * sizeof(*rows));
        if (rows == NULL)
            return (x->oom = 1);
        x->rows = rows;
        x->cap = cap;
    }
    x->rows[x->n++] = *a;
    return 0;
}

int console_audit_search(struct console_req *q, struct store_audit **rows, size_t *n,
                         size_t *total, long *page)
{
    struct audit_ctx x = {.action = console_param(q, "action"),
                          .subject = console_param(q, "subject")};
    long since = 0, until = 0, per_page = 0;
    if (console_int_param(q, "since", 0, 0, 1L << 40, &since) != 0 ||
        console_int_param(q, "until", 0, 0, 1L << 40, &until) != 0 ||
        console_int_param(q, "page", 1, 1, 1000000, page) != 0 ||
        console_int_param(q, "per_page", CONSOLE_PER_PAGE, 1, CONSOLE_PER_PAGE_MAX, &per_page) !=
            0)
        return -1;
    x.since = since;
    x.until = until;
    struct tw_err err;
    if (store_audit_list(pki_ca_store(q->c->o.ca), audit_row, &x, &err) != 0 || x.oom) {
        free(x.rows);
        console_fail(q, 503, "the audit log cannot be read");
        return -1;
    }
    /* Newest first: the store lists oldest first. */
    size_t skip = (size_t)(*page - 1) * (size_t)per_page;
    size_t count = skip < x.n ? x.n - skip : 0;
    if (count > (size_t)per_page)
        count = (size_t)per_page;
    struct store_audit *out = calloc(count > 0 ? count : 1, sizeof(*out));
    if (out == NULL) {
        free(x.rows);
        console_fail(q, 500, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        out[i] = x.rows[x.n - 1 - skip - i];
    free(x.rows);
    *rows = out;
    *n = count;
    *total = x.n;
    return 0;
}

void console_api_audit(struct console_req *q, const char *arg)
{
    (void)arg;
    struct store_audit *rows = NULL;
    size_t n = 0, total = 0;
    long page = 1;
    if (console_audit_search(q, &rows, &n, &total, &page) != 0)
        return;
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(
            a, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)rows[i].id, "at",
                         (json_int_t)rows[i].at, "action", rows[i].action, "subject",
                         rows[i].subject, "serial", rows[i].serial, "result", rows[i].result));
    free(rows);
    console_send_json(q, 200, json_pack("{s:I, s:I, s:o}", "total", (json_int_t)total, "page",
                                        (json_int_t)page, "items", a));
}
