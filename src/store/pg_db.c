/* The PostgreSQL back end: connecting (with the password kept out of every message),
 * reconnecting after the server went away, error mapping, nesting transactions, migrations
 * under an advisory lock (several servers may start at once), and the CRL counter. */
#include "store/pg_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PGC(s) ((PGconn *)(s)->pg)
#define PG_MIGRATE_LOCK 0x74776f776179 /* "twoway": one migrator at a time per database */

void store_pg_param_text(struct pg_params *p, const char *text)
{
    if (p->n < PG_PARAMS_MAX)
        p->v[p->n++] = text;
}

void store_pg_param_int(struct pg_params *p, int64_t v)
{
    if (p->n >= PG_PARAMS_MAX)
        return;
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

void store_pg_copy(const PGresult *r, int row, int col, char *out, size_t cap)
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    snprintf(out, cap, "%s", v);
}

int64_t store_pg_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return (int64_t)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The server's message, one line. */
static const char *detail(struct store *s, const PGresult *r, char *buf, size_t cap)
{
    const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (m == NULL)
        m = PQerrorMessage(PGC(s));
    snprintf(buf, cap, "%s", m != NULL && m[0] != '\0' ? m : "unknown error");
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

/* Before a statement outside a transaction: a connection that broke is made again, so a
 * server that restarted is used again as soon as it is back. */
static int ensure_connected(struct store *s, const char *what, struct tw_err *err)
{
    if (PQstatus(PGC(s)) == CONNECTION_OK)
        return 0;
    if (s->txn_depth == 0)
        PQreset(PGC(s));
    if (PQstatus(PGC(s)) == CONNECTION_OK)
        return 0;
    char buf[256];
    return tw_err_set(err, TW_ERR_STORE, "%s: PostgreSQL at %s is unreachable: %s", what, s->path,
                      detail(s, NULL, buf, sizeof(buf)));
}

int store_pg_query(struct store *s, const char *sql, const struct pg_params *p, PGresult **res,
                   const char *what, struct tw_err *err)
{
    *res = NULL;
    TW_GUARD(ensure_connected(s, what, err));
    PGresult *r = PQexecParams(PGC(s), sql, p != NULL ? p->n : 0, NULL, p != NULL ? p->v : NULL,
                               NULL, NULL, 0);
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_FATAL_ERROR && PQstatus(PGC(s)) != CONNECTION_OK && s->txn_depth == 0) {
        /* The connection had died since the last call (server restarted, or it ended our
         * session): outside a transaction nothing was in flight, so connect and try once
         * more. */
        PQclear(r);
        PQreset(PGC(s));
        r = PQexecParams(PGC(s), sql, p != NULL ? p->n : 0, NULL, p != NULL ? p->v : NULL, NULL,
                         NULL, 0);
        st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *res = r;
        return 0;
    }
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char buf[256];
    detail(s, r, buf, sizeof(buf));
    int rc;
    if (state != NULL && strcmp(state, "23505") == 0)
        rc = tw_err_set(err, TW_ERR_EXISTS, "%s: duplicate (%s)", what, buf);
    else if (PQstatus(PGC(s)) != CONNECTION_OK)
        rc = tw_err_set(err, TW_ERR_STORE, "%s: lost the connection to PostgreSQL at %s: %s", what,
                        s->path, buf);
    else
        rc = tw_err_set(err, TW_ERR_STORE, "%s: %s: %s", what, s->path, buf);
    PQclear(r);
    return rc;
}

int store_pg_command(struct store *s, const char *sql, const struct pg_params *p, const char *what,
                     struct tw_err *err)
{
    PG_AUTO_RESULT *r = NULL;
    return store_pg_query(s, sql, p, &r, what, err);
}

int store_pg_txn_begin(struct store *s, struct tw_err *err)
{
    char sql[48];
    if (s->txn_depth == 0)
        snprintf(sql, sizeof(sql), "BEGIN");
    else
        snprintf(sql, sizeof(sql), "SAVEPOINT tw_%d", s->txn_depth);
    TW_GUARD(store_pg_command(s, sql, NULL, "starting a transaction", err));
    s->txn_depth++;
    return 0;
}

int store_pg_txn_commit(struct store *s, struct tw_err *err)
{
    char sql[48];
    if (s->txn_depth <= 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "store: commit without a transaction");
    if (s->txn_depth == 1)
        snprintf(sql, sizeof(sql), "COMMIT");
    else
        snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT tw_%d", s->txn_depth - 1);
    PG_AUTO_RESULT *r = NULL;
    if (store_pg_query(s, sql, NULL, &r, "saving changes", err) != 0) {
        store_pg_txn_rollback(s);
        return -1;
    }
    /* COMMIT of a transaction that had failed answers ROLLBACK. */
    if (s->txn_depth == 1 && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        s->txn_depth--;
        return tw_err_set(err, TW_ERR_STORE, "transaction on %s was rolled back", s->path);
    }
    s->txn_depth--;
    return 0;
}

void store_pg_txn_rollback(struct store *s)
{
    char sql[80];
    if (s->txn_depth <= 0)
        return;
    s->txn_depth--;
    if (PQstatus(PGC(s)) != CONNECTION_OK)
        return; /* the server dropped the transaction with the connection */
    if (s->txn_depth == 0)
        snprintf(sql, sizeof(sql), "ROLLBACK");
    else
        snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT tw_%d; RELEASE SAVEPOINT tw_%d",
                 s->txn_depth, s->txn_depth);
    PQclear(PQexec(PGC(s), sql)); /* best effort: keep the first error */
}

void store_pg_close(struct store *s)
{
    PQfinish(PGC(s)); /* accepts NULL */
    s->pg = NULL;
}

int store_pg_schema_version(struct store *s, int *version, struct tw_err *err)
{
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, &r,
                            "reading the schema version", err));
    *version = (int)store_pg_int(r, 0, 0);
    return 0;
}

static int migrate_step(struct store *s, int *done, struct tw_err *err)
{
    struct pg_params lock = {0};
    store_pg_param_int(&lock, PG_MIGRATE_LOCK);
    TW_GUARD(store_pg_command(s, "SELECT pg_advisory_xact_lock($1::bigint)", &lock,
                              "waiting for another server's schema upgrade", err));
    TW_GUARD(store_pg_command(s,
                              "CREATE TABLE IF NOT EXISTS schema_version ("
                              "  version INTEGER PRIMARY KEY, what TEXT NOT NULL,"
                              "  applied_at BIGINT NOT NULL)",
                              NULL, "creating the schema table", err));
    int version = 0;
    TW_GUARD(store_pg_schema_version(s, &version, err));
    int known = (int)store_migration_count;
    if (version > known)
        return tw_err_set(err, TW_ERR_STORE,
                          "%s has schema version %d but this twoway knows only up to %d: "
                          "use a newer twoway",
                          s->path, version, known);
    if (version == known) {
        *done = 1;
        return 0;
    }
    const struct store_migration *m = &store_migrations[version];
    char what[128];
    snprintf(what, sizeof(what), "upgrading schema to version %d (%s)", m->version, m->what);
    /* Several statements: the simple query protocol runs them as one string. */
    PGresult *r = PQexec(PGC(s), m->pg_sql);
    int ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
    char buf[256];
    if (!ok)
        tw_err_set(err, TW_ERR_STORE, "%s: %s: %s", what, s->path, detail(s, r, buf, sizeof(buf)));
    PQclear(r);
    if (!ok)
        return -1;
    struct pg_params p = {0};
    store_pg_param_int(&p, m->version);
    store_pg_param_text(&p, m->what);
    store_pg_param_int(&p, (int64_t)time(NULL));
    return store_pg_command(s,
                            "INSERT INTO schema_version (version, what, applied_at) "
                            "VALUES ($1, $2, $3)",
                            &p, "recording the schema version", err);
}

static int migrate(struct store *s, struct tw_err *err)
{
    for (;;) {
        int done = 0;
        TW_GUARD(store_pg_txn_begin(s, err));
        if (migrate_step(s, &done, err) != 0) {
            store_pg_txn_rollback(s);
            return -1;
        }
        TW_GUARD(store_pg_txn_commit(s, err));
        if (done)
            return 0;
    }
}

/* The URI for messages: "postgres://user:secret@h/db" becomes "postgres://user:***@h/db", and
 * a password=... parameter is masked too. */
static void redact(const char *uri, char *out, size_t cap)
{
    snprintf(out, cap, "%s", uri);
    char *auth = strstr(out, "://");
    if (auth != NULL) {
        auth += 3;
        char *at = strchr(auth, '@');
        char *slash = strchr(auth, '/');
        char *colon = strchr(auth, ':');
        if (at != NULL && (slash == NULL || at < slash) && colon != NULL && colon < at) {
            char rest[PATH_MAX];
            snprintf(rest, sizeof(rest), "%s", at);
            snprintf(colon, cap - (size_t)(colon - out), ":***%s", rest);
        }
    }
    char *pw = strstr(out, "password=");
    if (pw != NULL) {
        pw += strlen("password=");
        char *end = pw + strcspn(pw, "&");
        char rest[PATH_MAX];
        snprintf(rest, sizeof(rest), "%s", end);
        snprintf(pw, cap - (size_t)(pw - out), "***%s", rest);
    }
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

int store_pg_open(const char *uri, struct store **out, struct tw_err *err)
{
    *out = NULL;
    TW_ENSURE(strlen(uri) < PATH_MAX, err, TW_ERR_STORE, "store URI too long");
    struct store *s = calloc(1, sizeof(*s));
    TW_ENSURE(s != NULL, err, TW_ERR_STORE, "out of memory opening a PostgreSQL store");
    s->ops = &store_pg_ops;
    redact(uri, s->path, sizeof(s->path));
    /* Defaults first so the URI may override them; dbname expands the URI. A dead server
     * must not hang `ca serve` (single-threaded): bounded connect, TCP keepalives, and a cap
     * on unacknowledged sends, so a lost host fails a request in seconds (then 503). */
    const char *const keys[] = {"connect_timeout",
                                "application_name",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "dbname",
                                NULL};
    const char *const vals[] = {"5", "twoway", "1", "10", "3", "3", "15000", uri, NULL};
    s->pg = (struct pg_conn *)PQconnectdbParams(keys, vals, 1);
    if (PGC(s) == NULL || PQstatus(PGC(s)) != CONNECTION_OK) {
        char buf[256];
        tw_err_set(err, TW_ERR_STORE, "cannot connect to PostgreSQL at %s: %s", s->path,
                   PGC(s) != NULL ? detail(s, NULL, buf, sizeof(buf)) : "out of memory");
        store_free(s);
        return -1;
    }
    /* Quiet NOTICEs (CREATE TABLE IF NOT EXISTS ... skipping) instead of stderr noise. */
    PQsetNoticeProcessor(PGC(s), quiet, NULL);
    if (store_pg_command(s, "SET client_min_messages = warning", NULL, "opening the store", err) !=
            0 ||
        migrate(s, err) != 0) {
        store_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int store_pg_crl_number_next(struct store *s, int64_t *number, struct tw_err *err)
{
    /* The UPDATE locks the counter row until the surrounding transaction ends: of several
     * servers, one at a time holds it, so numbers are strictly increasing and, inside a CRL
     * build's transaction, exactly one server builds at a time. */
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, "UPDATE crl_counter SET last = last + 1 WHERE id = 1 RETURNING last",
                            NULL, &r, "taking the next CRL number", err));
    TW_ENSURE(PQntuples(r) == 1, err, TW_ERR_STORE, "%s: the CRL counter row is missing", s->path);
    *number = store_pg_int(r, 0, 0);
    return 0;
}

int store_pg_crl_counter(struct store *s, int64_t *last, struct tw_err *err)
{
    PG_AUTO_RESULT *r = NULL;
    TW_GUARD(store_pg_query(s, "SELECT last FROM crl_counter WHERE id = 1", NULL, &r,
                            "reading the CRL counter", err));
    TW_ENSURE(PQntuples(r) == 1, err, TW_ERR_STORE, "%s: the CRL counter row is missing", s->path);
    *last = store_pg_int(r, 0, 0);
    return 0;
}

int store_pg_crl_counter_set(struct store *s, int64_t last, struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_int(&p, last);
    return store_pg_command(s, "UPDATE crl_counter SET last = $1 WHERE id = 1", &p,
                            "setting the CRL counter", err);
}

#define STORE_OP_INIT_PG(ret, name, args) .name = store_pg_##name,
const struct store_ops store_pg_ops = {.name = "postgresql", STORE_OPS_LIST(STORE_OP_INIT_PG)};
