/* Pending enrollment requests (EST manual approval, RFC 7030 §4.2.3) on both back ends.
 * The SQL is written once: parameters are spelled $1..$n in order of first use, which
 * PostgreSQL reads as positional and SQLite as named parameters numbered in that same order.
 * Concurrency rests on single conditional UPDATEs and their change counts: a request is
 * decided once (WHERE state = 'pending') and gets one certificate (WHERE serial IS NULL). */
#include "store/pg_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define COLUMNS                                                                                    \
    "id, name, subject, sans, profile, peer, created_at, state, decided_at, lifetime, reason, "  \
    "serial"

/* One result row of either back end. */
struct prow {
    sqlite3_stmt *st;
    const PGresult *r;
    int i;
};

/* Called per row: 0 go on, 1 stop, -1 failed (err set). */
typedef int (*row_fn)(const struct prow *w, void *ctx, struct tw_err *err);

static int is_pg(const struct store *s)
{
    return s->ops == &store_pg_ops;
}

static const char *col_ptr(const struct prow *w, int c)
{
    if (w->r != NULL)
        return PQgetisnull(w->r, w->i, c) ? "" : PQgetvalue(w->r, w->i, c);
    const unsigned char *t = sqlite3_column_text(w->st, c);
    return t != NULL ? (const char *)t : "";
}

static void col_text(const struct prow *w, int c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", col_ptr(w, c));
}

static int64_t col_int(const struct prow *w, int c)
{
    if (w->r != NULL)
        return store_pg_int(w->r, w->i, c);
    return sqlite3_column_int64(w->st, c);
}

/* Run one statement on s's back end; fn (may be NULL) sees each row; *changes (may be NULL)
 * gets the rows an INSERT/UPDATE changed. A unique-key violation fails with TW_ERR_EXISTS. */
static int run(struct store *s, const char *sql, const struct pg_params *p, row_fn fn, void *ctx,
               int64_t *changes, const char *what, struct tw_err *err)
{
    if (is_pg(s)) {
        PG_AUTO_RESULT *r = NULL;
        TW_GUARD(store_pg_query(s, sql, p, &r, what, err));
        for (int i = 0; fn != NULL && i < PQntuples(r); i++) {
            struct prow w = {NULL, r, i};
            int rc = fn(&w, ctx, err);
            if (rc != 0)
                return rc < 0 ? -1 : 0;
        }
        if (changes != NULL)
            *changes = strtoll(PQcmdTuples(r), NULL, 10);
        return 0;
    }
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, sql, &st, what, err));
    for (int i = 0; p != NULL && i < p->n; i++) {
        if (p->v[i] == NULL)
            sqlite3_bind_null(st, i + 1);
        else if (p->v[i] == p->num[i])
            sqlite3_bind_int64(st, i + 1, strtoll(p->v[i], NULL, 10));
        else
            sqlite3_bind_text(st, i + 1, p->v[i], -1, SQLITE_TRANSIENT);
    }
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if ((rc & 0xff) == SQLITE_CONSTRAINT)
            return tw_err_set(err, TW_ERR_EXISTS, "%s: duplicate", what);
        if (rc != SQLITE_ROW)
            return store_sql_fail(s, rc, what, err);
        if (fn == NULL)
            continue;
        struct prow w = {st, NULL, 0};
        int frc = fn(&w, ctx, err);
        if (frc != 0)
            return frc < 0 ? -1 : 0;
    }
    if (changes != NULL)
        *changes = sqlite3_changes(s->db);
    return 0;
}

void store_pending_clear(struct store_pending *p)
{
    if (p == NULL)
        return;
    free(p->csr);
    memset(p, 0, sizeof(*p));
}

static int hex_ok(const char *text, size_t min, size_t max)
{
    size_t n = strnlen(text, max + 1);
    if (n < min || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)text[i]))
            return 0;
    return 1;
}

static int row_read(const struct prow *w, struct store_pending *out)
{
    memset(out, 0, sizeof(*out));
    col_text(w, 0, out->id, sizeof(out->id));
    col_text(w, 1, out->name, sizeof(out->name));
    col_text(w, 2, out->subject, sizeof(out->subject));
    col_text(w, 3, out->sans, sizeof(out->sans));
    col_text(w, 4, out->profile, sizeof(out->profile));
    col_text(w, 5, out->peer, sizeof(out->peer));
    out->created_at = col_int(w, 6);
    col_text(w, 7, out->state, sizeof(out->state));
    out->decided_at = col_int(w, 8);
    out->lifetime = col_int(w, 9);
    col_text(w, 10, out->reason, sizeof(out->reason));
    col_text(w, 11, out->serial, sizeof(out->serial));
    return 0;
}

/* The CSR column (lower-case hex of the DER) into out->csr. */
static int csr_read(const struct prow *w, int col, struct store_pending *out, struct tw_err *err)
{
    const char *hex = col_ptr(w, col);
    size_t n = strlen(hex);
    TW_ENSURE(n % 2 == 0 && n / 2 <= STORE_PENDING_CSR_MAX && hex_ok(hex, 0, n), err,
              TW_ERR_STORE, "pending request %.16s: the stored CSR is damaged", out->id);
    out->csr = malloc(n / 2 + 1);
    TW_ENSURE(out->csr != NULL, err, TW_ERR_STORE, "out of memory reading a pending request");
    for (size_t i = 0; i < n / 2; i++) {
        char byte[3] = {hex[2 * i], hex[2 * i + 1], '\0'};
        out->csr[i] = (unsigned char)strtoul(byte, NULL, 16);
    }
    out->csr_len = n / 2;
    return 0;
}

struct one {
    struct store_pending *out;
    int found;
    int with_csr;
};

static int one_row(const struct prow *w, void *ctx, struct tw_err *err)
{
    struct one *o = ctx;
    if (++o->found > 1)
        return 1;
    row_read(w, o->out);
    return o->with_csr ? csr_read(w, 12, o->out, err) : 0;
}

static int count_row(const struct prow *w, void *ctx, struct tw_err *err)
{
    (void)err;
    *(int64_t *)ctx = col_int(w, 0);
    return 1;
}

int store_pending_add(struct store *s, const struct store_pending *p, int64_t max_pending,
                      struct tw_err *err)
{
    TW_ENSURE(hex_ok(p->id, 64, 64), err, TW_ERR_USAGE, "pending request id is not SHA-256 hex");
    TW_ENSURE(p->csr != NULL && p->csr_len > 0 && p->csr_len <= STORE_PENDING_CSR_MAX, err,
              TW_ERR_USAGE, "pending request: CSR missing or larger than %u bytes",
              STORE_PENDING_CSR_MAX);
    char *hex = malloc(2 * p->csr_len + 1);
    TW_ENSURE(hex != NULL, err, TW_ERR_STORE, "out of memory saving a pending request");
    tw_hex_encode(p->csr, p->csr_len, hex);
    char id[STORE_PENDING_ID_MAX];
    for (size_t i = 0; i < sizeof(id); i++)
        id[i] = (char)tolower((unsigned char)p->id[i]);
    int rc = store_txn_begin(s, err);
    int64_t waiting = 0;
    struct pg_params c = {0};
    store_pg_param_text(&c, "pending");
    if (rc == 0 && max_pending > 0) {
        rc = run(s, "SELECT COUNT(*) FROM pending_requests WHERE state = $1", &c, count_row,
                 &waiting, NULL, "counting pending requests", err);
        if (rc == 0 && waiting >= max_pending)
            rc = tw_err_set(err, TW_ERR_POLICY,
                            "%lld enrollment requests already wait for approval; try later",
                            (long long)waiting);
    }
    if (rc == 0) {
        struct pg_params q = {0};
        store_pg_param_text(&q, id);
        store_pg_param_text(&q, hex);
        store_pg_param_text(&q, p->name);
        store_pg_param_text(&q, p->subject);
        store_pg_param_text(&q, p->sans);
        store_pg_param_text(&q, p->profile);
        store_pg_param_text(&q, p->peer);
        store_pg_param_int(&q, store_now_or(p->created_at));
        rc = run(s,
                 "INSERT INTO pending_requests (id, csr, name, subject, sans, profile, peer, "
                 "created_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')",
                 &q, NULL, NULL, NULL, "saving a pending request", err);
        if (rc != 0 && err != NULL && err->code == TW_ERR_EXISTS)
            tw_err_set(err, TW_ERR_EXISTS, "pending request %.16s exists", id);
    }
    free(hex);
    if (rc == 0)
        return store_txn_commit(s, err);
    store_txn_rollback(s);
    return -1;
}

int store_pending_get(struct store *s, const char *id, struct store_pending *out,
                      struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    char low[STORE_PENDING_ID_MAX] = "";
    for (size_t i = 0; id != NULL && i + 1 < sizeof(low) && id[i] != '\0'; i++)
        low[i] = (char)tolower((unsigned char)id[i]);
    struct pg_params p = {0};
    store_pg_param_text(&p, low);
    struct one o = {out, 0, 1};
    if (run(s, "SELECT " COLUMNS ", csr FROM pending_requests WHERE id = $1", &p, one_row, &o,
            NULL, "reading a pending request", err) != 0) {
        store_pending_clear(out);
        return -1;
    }
    TW_ENSURE(o.found == 1, err, TW_ERR_NOTFOUND, "no enrollment request %.16s", low);
    return 0;
}

int store_pending_find(struct store *s, const char *prefix, struct store_pending *out,
                       struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    TW_ENSURE(prefix != NULL && hex_ok(prefix, 1, 64), err, TW_ERR_USAGE,
              "request id '%.70s': expected hex digits (a prefix of the id `ca pending` shows)",
              prefix != NULL ? prefix : "");
    char like[STORE_PENDING_ID_MAX + 1];
    size_t n = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        like[i] = (char)tolower((unsigned char)prefix[i]);
    like[n] = '%';
    like[n + 1] = '\0';
    struct pg_params p = {0};
    store_pg_param_text(&p, like);
    struct one o = {out, 0, 0};
    TW_GUARD(run(s, "SELECT " COLUMNS " FROM pending_requests WHERE id LIKE $1 ORDER BY id LIMIT 2",
                 &p, one_row, &o, NULL, "finding a pending request", err));
    if (o.found == 1)
        return 0;
    like[n] = '\0';
    memset(out, 0, sizeof(*out));
    TW_ENSURE(o.found != 0, err, TW_ERR_NOTFOUND, "no enrollment request with id %s", like);
    return tw_err_set(err, TW_ERR_USAGE,
                      "request id '%s' is ambiguous: several requests start with it; give more "
                      "characters",
                      like);
}

struct each {
    store_pending_fn fn;
    void *ctx;
};

static int each_row(const struct prow *w, void *ctx, struct tw_err *err)
{
    (void)err;
    struct each *e = ctx;
    struct store_pending p;
    row_read(w, &p);
    return e->fn(&p, e->ctx) != 0 ? 1 : 0;
}

int store_pending_list(struct store *s, const char *state, store_pending_fn fn, void *ctx,
                       struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, state);
    struct each e = {fn, ctx};
    return run(s,
               "SELECT " COLUMNS " FROM pending_requests "
               "WHERE CAST($1 AS TEXT) IS NULL OR state = $1 ORDER BY created_at, id",
               &p, each_row, &e, NULL, "listing pending requests", err);
}

int store_pending_decide(struct store *s, const char *id, int approve, int64_t lifetime,
                         const char *reason, int64_t now, struct tw_err *err)
{
    TW_ENSURE(lifetime >= 0, err, TW_ERR_USAGE, "negative certificate lifetime");
    struct pg_params p = {0};
    store_pg_param_text(&p, approve ? "approved" : "rejected");
    store_pg_param_int(&p, store_now_or(now));
    store_pg_param_int(&p, approve ? lifetime : 0);
    store_pg_param_text(&p, approve || reason == NULL ? "" : reason);
    store_pg_param_text(&p, id != NULL ? id : "");
    int64_t changed = 0;
    TW_GUARD(run(s,
                 "UPDATE pending_requests SET state = $1, decided_at = $2, lifetime = $3, "
                 "reason = $4 WHERE id = $5 AND state = 'pending'",
                 &p, NULL, NULL, &changed, "deciding a pending request", err));
    if (changed == 1)
        return 0;
    struct store_pending cur;
    TW_GUARD(store_pending_get(s, id, &cur, err));
    free(cur.csr);
    return tw_err_set(err, TW_ERR_EXISTS, "enrollment request %.16s was already %s", cur.id,
                      cur.state);
}

int store_pending_set_serial(struct store *s, const char *id, const char *serial,
                             struct tw_err *err)
{
    char norm[STORE_SERIAL_MAX];
    TW_ENSURE(serial != NULL && store_serial_normalise(serial, norm) == 0, err, TW_ERR_INTERNAL,
              "store: invalid serial for a pending request");
    struct pg_params p = {0};
    store_pg_param_text(&p, norm);
    store_pg_param_text(&p, id != NULL ? id : "");
    int64_t changed = 0;
    TW_GUARD(run(s,
                 "UPDATE pending_requests SET serial = $1 WHERE id = $2 AND state = 'approved' "
                 "AND serial IS NULL",
                 &p, NULL, NULL, &changed, "recording a pending request's certificate", err));
    TW_ENSURE(changed == 1, err, TW_ERR_EXISTS,
              "enrollment request %.16s is not approved or already has a certificate",
              id != NULL ? id : "");
    return 0;
}

/* ------------------------------------------------------------------ store_copy */

struct each_full {
    store_pending_fn fn;
    void *ctx;
};

static int each_full_row(const struct prow *w, void *ctx, struct tw_err *err)
{
    struct each_full *e = ctx;
    struct store_pending p;
    row_read(w, &p);
    TW_GUARD(csr_read(w, 12, &p, err));
    int stop = e->fn(&p, e->ctx);
    store_pending_clear(&p);
    return stop != 0 ? 1 : 0;
}

int store_pending_export(struct store *s, store_pending_fn fn, void *ctx, struct tw_err *err)
{
    struct each_full e = {fn, ctx};
    return run(s, "SELECT " COLUMNS ", csr FROM pending_requests ORDER BY id", NULL,
               each_full_row, &e, NULL, "listing pending requests", err);
}

int store_pending_import(struct store *s, const struct store_pending *p, struct tw_err *err)
{
    TW_ENSURE(hex_ok(p->id, 64, 64), err, TW_ERR_USAGE, "pending request id is not SHA-256 hex");
    TW_ENSURE(p->csr != NULL && p->csr_len > 0 && p->csr_len <= STORE_PENDING_CSR_MAX, err,
              TW_ERR_USAGE, "pending request %.16s: CSR missing or larger than %u bytes", p->id,
              STORE_PENDING_CSR_MAX);
    char *hex = malloc(2 * p->csr_len + 1);
    TW_ENSURE(hex != NULL, err, TW_ERR_STORE, "out of memory copying a pending request");
    tw_hex_encode(p->csr, p->csr_len, hex);
    /* As read back: decided_at 0 and serial "" are the SQL NULLs they came from. */
    struct pg_params q = {0};
    store_pg_param_text(&q, p->id);
    store_pg_param_text(&q, hex);
    store_pg_param_text(&q, p->name);
    store_pg_param_text(&q, p->subject);
    store_pg_param_text(&q, p->sans);
    store_pg_param_text(&q, p->profile);
    store_pg_param_text(&q, p->peer);
    store_pg_param_int(&q, p->created_at);
    store_pg_param_text(&q, p->state);
    if (p->decided_at != 0)
        store_pg_param_int(&q, p->decided_at);
    else
        store_pg_param_text(&q, NULL);
    store_pg_param_int(&q, p->lifetime);
    store_pg_param_text(&q, p->reason);
    store_pg_param_text(&q, p->serial[0] != '\0' ? p->serial : NULL);
    int rc = run(s,
                 "INSERT INTO pending_requests (id, csr, name, subject, sans, profile, peer, "
                 "created_at, state, decided_at, lifetime, reason, serial) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                 &q, NULL, NULL, NULL, "copying a pending request", err);
    free(hex);
    if (rc != 0 && err != NULL && err->code == TW_ERR_EXISTS)
        tw_err_set(err, TW_ERR_EXISTS, "pending request %.16s exists", p->id);
    return rc;
}
