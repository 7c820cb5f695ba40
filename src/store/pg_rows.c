/* The PostgreSQL back end's rows: certificates, revocations, tokens, the audit trail. The
 * arguments are checked as the SQLite back end checks them, so both answer alike. Concurrency
 * rests on single statements: a primary key for serials, UPDATE ... WHERE used_at IS NULL
 * RETURNING for tokens, UPDATE ... WHERE status = 'valid' RETURNING for revocations. */
#include "store/pg_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CERT_COLUMNS                                                                               \
    "serial, name, subject, sans, profile, issuer, sha256, not_before, not_after, issued_at, "     \
    "status, revoked_at, revoke_reason, pem"
#define TOKEN_COLUMNS "hash, name, sans, profile, lifetime, created_at, expires_at, used_at, serial"

static int row_read(struct store *s, const PGresult *r, int i, int64_t now, struct store_cert *c,
                    struct tw_err *err)
{
    memset(c, 0, sizeof(*c));
    store_pg_copy(r, i, 0, c->serial, sizeof(c->serial));
    store_pg_copy(r, i, 1, c->name, sizeof(c->name));
    store_pg_copy(r, i, 2, c->subject, sizeof(c->subject));
    store_pg_copy(r, i, 3, c->sans, sizeof(c->sans));
    store_pg_copy(r, i, 4, c->profile, sizeof(c->profile));
    store_pg_copy(r, i, 5, c->issuer, sizeof(c->issuer));
    store_pg_copy(r, i, 6, c->sha256, sizeof(c->sha256));
    c->not_before = store_pg_int(r, i, 7);
    c->not_after = store_pg_int(r, i, 8);
    c->issued_at = store_pg_int(r, i, 9);
    int revoked = strcmp(PQgetvalue(r, i, 10), "revoked") == 0;
    c->revoked_at = revoked ? store_pg_int(r, i, 11) : 0;
    c->revoke_reason = revoked ? (int)store_pg_int(r, i, 12) : -1;
    if (revoked)
        c->status = STORE_REVOKED;
    else
        c->status = c->not_after < now ? STORE_EXPIRED : STORE_VALID;
    if (!PQgetisnull(r, i, 13)) {
        c->pem = strdup(PQgetvalue(r, i, 13));
        if (c->pem == NULL)
            return tw_err_set(err, TW_ERR_STORE, "out of memory reading %s", s->path);
    }
    return 0;
}

int store_pg_cert_put(struct store *s, const struct store_cert *c, struct tw_err *err)
{
    char serial[STORE_SERIAL_MAX];
    TW_ENSURE(memchr(c->serial, '\0', sizeof(c->serial)) != NULL &&
                  store_serial_normalise(c->serial, serial) == 0,
              err, TW_ERR_INTERNAL, "invalid certificate serial '%.*s'", STORE_SERIAL_MAX - 1,
              c->serial);
    char what[96];
    snprintf(what, sizeof(what), "saving certificate %s", serial);
    struct pg_params p = {0};
    store_pg_param_text(&p, serial);
    store_pg_param_text(&p, c->name);
    store_pg_param_text(&p, c->subject);
    store_pg_param_text(&p, c->sans);
    store_pg_param_text(&p, c->profile);
    store_pg_param_text(&p, c->issuer);
    store_pg_param_text(&p, c->sha256);
    store_pg_param_int(&p, c->not_before);
    store_pg_param_int(&p, c->not_after);
    store_pg_param_int(&p, store_now_or(c->issued_at));
    store_pg_param_text(&p, c->pem);
    if (store_pg_command(s,
                         "INSERT INTO certs (" CERT_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, "
                         "$8, $9, $10, 'valid', NULL, NULL, $11)",
                         &p, what, err) == 0)
        return 0;
    if (err != NULL && err->code == TW_ERR_EXISTS)
        tw_err_set(err, TW_ERR_EXISTS, "serial %s is already in the inventory", serial);
    return -1;
}

static int select_one(struct store *s, const char *sql, const char *arg, const char *notfound,
                      struct store_cert *out, struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, arg);
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, sql, &p, &r, "looking up a certificate", err));
    if (PQntuples(r) == 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "%s", notfound);
    if (row_read(s, r, 0, store_now_or(0), out, err) != 0) {
        store_cert_clear(out);
        return -1;
    }
    return 0;
}

int store_pg_cert_get(struct store *s, const char *serial, struct store_cert *out,
                      struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    char notfound[STORE_SERIAL_MAX + 64];
    snprintf(notfound, sizeof(notfound), "no certificate with serial %.*s", STORE_SERIAL_MAX - 1,
             serial != NULL ? serial : "(none)");
    memset(out, 0, sizeof(*out));
    if (serial == NULL || store_serial_normalise(serial, norm) != 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "%s", notfound);
    return select_one(s, "SELECT " CERT_COLUMNS " FROM certs WHERE serial = $1", norm, notfound,
                      out, err);
}

int store_pg_cert_newest(struct store *s, const char *name, struct store_cert *out,
                         struct tw_err *err)
{
    char notfound[STORE_NAME_MAX + 64];
    snprintf(notfound, sizeof(notfound), "no certificate issued to %.*s", STORE_NAME_MAX - 1,
             name != NULL ? name : "(none)");
    memset(out, 0, sizeof(*out));
    if (name == NULL)
        return tw_err_set(err, TW_ERR_NOTFOUND, "%s", notfound);
    return select_one(s,
                      "SELECT " CERT_COLUMNS " FROM certs WHERE name = $1 "
                      "ORDER BY issued_at DESC, not_before DESC, seq DESC LIMIT 1",
                      name, notfound, out, err);
}

static int each_row(struct store *s, const char *sql, const struct pg_params *p,
                    const struct store_filter *f, store_cert_fn fn, void *ctx, const char *what,
                    struct tw_err *err)
{
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, sql, p, &r, what, err));
    int64_t now = store_now_or(f != NULL ? f->now : 0);
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_cert c;
        if (row_read(s, r, i, now, &c, err) != 0) {
            store_cert_clear(&c);
            return -1;
        }
        int stop = store_filter_matches(f, &c, now) ? fn(&c, ctx) : 0;
        store_cert_clear(&c);
        if (stop)
            return 0;
    }
    return 0;
}

int store_pg_cert_list(struct store *s, const struct store_filter *f, store_cert_fn fn, void *ctx,
                       struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, f != NULL ? f->profile : NULL);
    return each_row(s,
                    "SELECT " CERT_COLUMNS " FROM certs WHERE ($1::text IS NULL OR profile = $1) "
                    "ORDER BY issued_at, not_before, seq",
                    &p, f, fn, ctx, "listing certificates", err);
}

int store_pg_revoked_list(struct store *s, const char *issuer, store_cert_fn fn, void *ctx,
                          struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, issuer);
    return each_row(s,
                    "SELECT " CERT_COLUMNS " FROM certs WHERE status = 'revoked' "
                    "AND ($1::text IS NULL OR issuer = $1) ORDER BY revoked_at, seq",
                    &p, NULL, fn, ctx, "listing revoked certificates", err);
}

int store_pg_revoked_count(struct store *s, const char *issuer, int64_t *count, struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, issuer);
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s,
                            "SELECT COUNT(*) FROM certs WHERE status = 'revoked' "
                            "AND ($1::text IS NULL OR issuer = $1)",
                            &p, &r, "counting revoked certificates", err));
    *count = store_pg_int(r, 0, 0);
    return 0;
}

int store_pg_cert_revoke(struct store *s, const char *serial, int reason, int64_t when,
                         struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    TW_ENSURE(reason >= 0 && reason <= 10 && reason != 7, err, TW_ERR_USAGE,
              "invalid revocation reason %d (RFC 5280: 0-6, 8-10)", reason);
    if (serial == NULL || store_serial_normalise(serial, norm) != 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "no certificate with serial %.*s",
                          STORE_SERIAL_MAX - 1, serial != NULL ? serial : "(none)");
    const char *what = "revoking a certificate";
    struct pg_params p = {0};
    store_pg_param_int(&p, store_now_or(when));
    store_pg_param_int(&p, reason);
    store_pg_param_text(&p, norm);
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(
        store_pg_query(s,
                       "UPDATE certs SET status = 'revoked', revoked_at = $1, revoke_reason = $2 "
                       "WHERE serial = $3 AND status = 'valid' RETURNING serial",
                       &p, &r, what, err));
    if (PQntuples(r) == 1)
        return store_pg_announce_revocation(s, norm, err);
    struct pg_params q = {0};
    store_pg_param_text(&q, norm);
    PG_AUTO_RESULT *e = NULL;
    TW_GUARD(store_pg_query(s, "SELECT 1 FROM certs WHERE serial = $1", &q, &e, what, err));
    if (PQntuples(e) == 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "no certificate with serial %s", norm);
    return tw_err_set(err, TW_ERR_EXISTS, "certificate %s is already revoked", norm);
}

/* ------------------------------------------------------------------ tokens */

static void token_read(const PGresult *r, int i, struct store_token *out)
{
    memset(out, 0, sizeof(*out));
    store_pg_copy(r, i, 0, out->hash, sizeof(out->hash));
    store_pg_copy(r, i, 1, out->name, sizeof(out->name));
    store_pg_copy(r, i, 2, out->sans, sizeof(out->sans));
    store_pg_copy(r, i, 3, out->profile, sizeof(out->profile));
    out->lifetime = store_pg_int(r, i, 4);
    out->created_at = store_pg_int(r, i, 5);
    out->expires_at = store_pg_int(r, i, 6);
    out->used_at = store_pg_int(r, i, 7);
    store_pg_copy(r, i, 8, out->serial, sizeof(out->serial));
}

static int token_insert(struct store *s, const struct store_token *t, int64_t created,
                        int64_t used_at, const char *serial, const char *what, struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, t->hash);
    store_pg_param_text(&p, t->name);
    store_pg_param_text(&p, t->sans);
    store_pg_param_text(&p, t->profile);
    store_pg_param_int(&p, t->lifetime);
    store_pg_param_int(&p, created);
    store_pg_param_int(&p, t->expires_at);
    if (used_at != 0)
        store_pg_param_int(&p, used_at);
    else
        store_pg_param_text(&p, NULL);
    store_pg_param_text(&p, serial);
    if (store_pg_command(s,
                         "INSERT INTO tokens (" TOKEN_COLUMNS ") "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                         &p, what, err) == 0)
        return 0;
    if (err != NULL && err->code == TW_ERR_EXISTS)
        tw_err_set(err, TW_ERR_EXISTS, "an enrollment token with this hash exists");
    return -1;
}

int store_pg_token_put(struct store *s, const struct store_token *t, struct tw_err *err)
{
    TW_ENSURE(store_token_hash_ok(t->hash), err, TW_ERR_INTERNAL,
              "store: token hash is not SHA-256 hex");
    return token_insert(s, t, t->created_at != 0 ? t->created_at : (int64_t)time(NULL), 0, NULL,
                        "saving an enrollment token", err);
}

int store_pg_token_import(struct store *s, const struct store_token *t, struct tw_err *err)
{
    return token_insert(s, t, t->created_at, t->used_at, t->serial[0] != '\0' ? t->serial : NULL,
                        "copying an enrollment token", err);
}

int store_pg_token_get(struct store *s, const char *hash, struct store_token *out,
                       struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    struct pg_params p = {0};
    store_pg_param_text(&p, hash != NULL ? hash : "");
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE hash = $1", &p, &r,
                            "reading an enrollment token", err));
    if (PQntuples(r) == 0)
        return tw_err_set(err, TW_ERR_NOTFOUND, "unknown enrollment token");
    token_read(r, 0, out);
    return 0;
}

int store_pg_token_list(struct store *s, store_token_fn fn, void *ctx, struct tw_err *err)
{
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY hash", NULL, &r,
                            "listing enrollment tokens", err));
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_token t;
        token_read(r, i, &t);
        if (fn(&t, ctx) != 0)
            return 0;
    }
    return 0;
}

int store_pg_token_use(struct store *s, const char *hash, int64_t now, struct tw_err *err)
{
    /* Of concurrent callers, the first UPDATE locks the row; the others wait, re-check
     * used_at IS NULL against the committed row and change nothing. */
    struct pg_params p = {0};
    store_pg_param_int(&p, now);
    store_pg_param_text(&p, hash != NULL ? hash : "");
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s,
                            "UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL "
                            "AND expires_at > $1 RETURNING hash",
                            &p, &r, "using an enrollment token", err));
    if (PQntuples(r) == 1)
        return 0;
    struct store_token t;
    TW_GUARD(store_pg_token_get(s, hash, &t, err));
    if (t.used_at != 0)
        return tw_err_set(err, TW_ERR_EXISTS, "the enrollment token for '%s' was already used",
                          t.name);
    return tw_err_set(err, TW_ERR_VERIFY, "the enrollment token for '%s' has expired", t.name);
}

int store_pg_token_set_serial(struct store *s, const char *hash, const char *serial,
                              struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    TW_ENSURE(serial != NULL && store_serial_normalise(serial, norm) == 0, err, TW_ERR_INTERNAL,
              "store: invalid serial for a token");
    struct pg_params p = {0};
    store_pg_param_text(&p, norm);
    store_pg_param_text(&p, hash != NULL ? hash : "");
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, "UPDATE tokens SET serial = $1 WHERE hash = $2 RETURNING hash", &p,
                            &r, "recording the token's certificate", err));
    TW_ENSURE(PQntuples(r) == 1, err, TW_ERR_NOTFOUND, "unknown enrollment token");
    return 0;
}

/* ------------------------------------------------------------------ audit trail */

static void clip(char *out, size_t cap, const char *text)
{
    if (text != NULL)
        snprintf(out, cap, "%s", text);
}

int store_pg_audit_add(struct store *s, const char *action, const char *subject, const char *serial,
                       const char *result, struct tw_err *err)
{
    TW_ENSURE(action != NULL && result != NULL, err, TW_ERR_INTERNAL,
              "store: audit entry without action or result");
    struct store_audit a; /* for its field sizes: text longer than a row holds is clipped */
    memset(&a, 0, sizeof(a));
    clip(a.action, sizeof(a.action), action);
    clip(a.subject, sizeof(a.subject), subject);
    clip(a.result, sizeof(a.result), result);
    char norm[STORE_SERIAL_MAX];
    if (serial != NULL && store_serial_normalise(serial, norm) == 0)
        serial = norm;
    clip(a.serial, sizeof(a.serial), serial);
    struct pg_params p = {0};
    store_pg_param_int(&p, (int64_t)time(NULL));
    store_pg_param_text(&p, a.action);
    store_pg_param_text(&p, subject != NULL ? a.subject : NULL);
    store_pg_param_text(&p, serial != NULL ? a.serial : NULL);
    store_pg_param_text(&p, a.result);
    return store_pg_command(s,
                            "INSERT INTO audit (at, action, subject, serial, result) "
                            "VALUES ($1, $2, $3, $4, $5)",
                            &p, "writing the audit trail", err);
}

int store_pg_audit_import(struct store *s, const struct store_audit *a, struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_int(&p, a->id);
    store_pg_param_int(&p, a->at);
    store_pg_param_text(&p, a->action);
    store_pg_param_text(&p, a->subject[0] != '\0' ? a->subject : NULL);
    store_pg_param_text(&p, a->serial[0] != '\0' ? a->serial : NULL);
    store_pg_param_text(&p, a->result);
    TW_GUARD(store_pg_command(s,
                              "INSERT INTO audit (id, at, action, subject, serial, result) "
                              "VALUES ($1, $2, $3, $4, $5, $6)",
                              &p, "copying the audit trail", err));
    /* Later rows continue after the copied ids. */
    return store_pg_command(s,
                            "SELECT setval(pg_get_serial_sequence('audit', 'id'), "
                            "(SELECT MAX(id) FROM audit))",
                            NULL, "copying the audit trail", err);
}

int store_pg_audit_list(struct store *s, store_audit_fn fn, void *ctx, struct tw_err *err)
{
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s,
                            "SELECT id, at, action, subject, serial, result FROM audit ORDER BY id",
                            NULL, &r, "reading the audit trail", err));
    for (int i = 0; i < PQntuples(r); i++) {
        struct store_audit a;
        memset(&a, 0, sizeof(a));
        a.id = store_pg_int(r, i, 0);
        a.at = store_pg_int(r, i, 1);
        store_pg_copy(r, i, 2, a.action, sizeof(a.action));
        store_pg_copy(r, i, 3, a.subject, sizeof(a.subject));
        store_pg_copy(r, i, 4, a.serial, sizeof(a.serial));
        store_pg_copy(r, i, 5, a.result, sizeof(a.result));
        if (fn(&a, ctx) != 0)
            return 0;
    }
    return 0;
}
