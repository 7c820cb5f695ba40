/* The public store API: picks the back end from the URI and dispatches to it; the checks and
 * helpers both back ends share; caller-driven transactions. */
#include "store/internal.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int store_open(const char *uri, struct store **out, struct tw_err *err)
{
    *out = NULL;
    if (uri == NULL || uri[0] == '\0')
        return tw_err_set(err, TW_ERR_STORE, "no store path given");
    if (has_prefix(uri, "postgres://") || has_prefix(uri, "postgresql://"))
        return store_pg_open(uri, out, err);
    const char *path = uri;
    if (has_prefix(uri, "sqlite:"))
        path = uri + strlen("sqlite:");
    else if (strstr(uri, "://") != NULL)
        return tw_err_set(err, TW_ERR_STORE,
                          "unsupported store %s (sqlite:PATH, a path, or postgres://...)", uri);
    if (path[0] == '\0')
        return tw_err_set(err, TW_ERR_STORE, "no store path given");
    return store_sqlite_open(path, out, err);
}

void store_free(struct store *s)
{
    if (s == NULL)
        return;
    if (s->txn_depth > 0 && s->ops != NULL) { /* unfinished work is dropped, never committed */
        s->txn_depth = 1;
        s->ops->txn_rollback(s);
    }
    if (s->ops != NULL)
        s->ops->close(s);
    free(s);
}

const char *store_backend(const struct store *s)
{
    return s->ops->name;
}

const char *store_where(const struct store *s)
{
    return s->path;
}

void store_cert_clear(struct store_cert *c)
{
    if (c == NULL)
        return;
    free(c->pem);
    memset(c, 0, sizeof(*c));
}

int64_t store_now_or(int64_t now)
{
    return now != 0 ? now : (int64_t)time(NULL);
}

int store_filter_matches(const struct store_filter *f, const struct store_cert *c, int64_t now)
{
    if (f == NULL)
        return 1;
    if (f->status >= 0 && (int)c->status != f->status)
        return 0;
    if (f->expiring_within > 0 &&
        (c->status != STORE_VALID || c->not_after > now + f->expiring_within))
        return 0;
    if (f->name_glob != NULL && fnmatch(f->name_glob, c->name, 0) != 0)
        return 0;
    if (f->profile != NULL && strcmp(f->profile, c->profile) != 0)
        return 0;
    return 1;
}

int store_token_hash_ok(const char *hash)
{
    if (hash == NULL || strlen(hash) != STORE_TOKEN_HASH_MAX - 1)
        return 0;
    for (const char *p = hash; *p != '\0'; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

int store_txn_begin(struct store *s, struct tw_err *err)
{
    return s->ops->txn_begin(s, err);
}

int store_txn_commit(struct store *s, struct tw_err *err)
{
    return s->ops->txn_commit(s, err);
}

void store_txn_rollback(struct store *s)
{
    s->ops->txn_rollback(s);
}

int store_transaction(struct store *s, store_txn_fn fn, void *ctx, struct tw_err *err)
{
    TW_GUARD(store_txn_begin(s, err));
    tw_err_clear(err);
    if (fn(s, ctx, err) != 0) {
        if (err != NULL && err->code == TW_OK)
            tw_err_set(err, TW_ERR_INTERNAL, "store transaction step failed");
        store_txn_rollback(s);
        return -1;
    }
    return store_txn_commit(s, err);
}

int store_schema_version(struct store *s, int *version, struct tw_err *err)
{
    return s->ops->schema_version(s, version, err);
}

int store_cert_put(struct store *s, const struct store_cert *c, struct tw_err *err)
{
    return s->ops->cert_put(s, c, err);
}

int store_cert_get(struct store *s, const char *serial, struct store_cert *out, struct tw_err *err)
{
    return s->ops->cert_get(s, serial, out, err);
}

int store_cert_newest(struct store *s, const char *name, struct store_cert *out, struct tw_err *err)
{
    return s->ops->cert_newest(s, name, out, err);
}

int store_cert_list(struct store *s, const struct store_filter *f, store_cert_fn fn, void *ctx,
                    struct tw_err *err)
{
    return s->ops->cert_list(s, f, fn, ctx, err);
}

int store_cert_revoke(struct store *s, const char *serial, int reason, int64_t when,
                      struct tw_err *err)
{
    return s->ops->cert_revoke(s, serial, reason, when, err);
}

int store_revoked_list(struct store *s, const char *issuer, store_cert_fn fn, void *ctx,
                       struct tw_err *err)
{
    return s->ops->revoked_list(s, issuer, fn, ctx, err);
}

int store_revoked_count(struct store *s, const char *issuer, int64_t *count, struct tw_err *err)
{
    return s->ops->revoked_count(s, issuer, count, err);
}

int store_crl_number_next(struct store *s, int64_t *number, struct tw_err *err)
{
    return s->ops->crl_number_next(s, number, err);
}

/* Through the existing back-end operations: taking a number locks the counter (the UPDATE
 * holds PostgreSQL's row lock, SQLite's BEGIN IMMEDIATE the write lock) and tells its value;
 * setting it back to max(taken - 1, at_least) then leaves max(old, at_least). */
static int crl_raise_txn(struct store *s, void *ctx, struct tw_err *err)
{
    int64_t at_least = *(const int64_t *)ctx;
    int64_t taken = 0;
    TW_GUARD(s->ops->crl_number_next(s, &taken, err));
    return s->ops->crl_counter_set(s, taken - 1 > at_least ? taken - 1 : at_least, err);
}

int store_crl_number_raise(struct store *s, int64_t at_least, struct tw_err *err)
{
    TW_ENSURE(at_least >= 0, err, TW_ERR_USAGE, "a CRL number cannot be negative (%lld)",
              (long long)at_least);
    return store_transaction(s, crl_raise_txn, &at_least, err);
}

int store_audit_add(struct store *s, const char *action, const char *subject, const char *serial,
                    const char *result, struct tw_err *err)
{
    return s->ops->audit_add(s, action, subject, serial, result, err);
}

int store_audit_list(struct store *s, store_audit_fn fn, void *ctx, struct tw_err *err)
{
    return s->ops->audit_list(s, fn, ctx, err);
}

int store_token_put(struct store *s, const struct store_token *t, struct tw_err *err)
{
    return s->ops->token_put(s, t, err);
}

int store_token_get(struct store *s, const char *hash, struct store_token *out, struct tw_err *err)
{
    return s->ops->token_get(s, hash, out, err);
}

int store_token_use(struct store *s, const char *hash, int64_t now, struct tw_err *err)
{
    return s->ops->token_use(s, hash, now, err);
}

int store_token_set_serial(struct store *s, const char *hash, const char *serial,
                           struct tw_err *err)
{
    return s->ops->token_set_serial(s, hash, serial, err);
}

int store_token_list(struct store *s, store_token_fn fn, void *ctx, struct tw_err *err)
{
    return s->ops->token_list(s, fn, ctx, err);
}
