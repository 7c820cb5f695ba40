/* Hearing revocations made by any process on the same PostgreSQL database: a revocation sends
 * NOTIFY on STORE_REVOCATION_CHANNEL inside its transaction, so it is delivered when (and
 * only if) it commits; a watcher holds its own connection in LISTEN and is read when its
 * socket is readable. Several `ca serve` instances on one database thus wake each other's
 * revocation feeds without polling the inventory. */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define STORE_REVOCATION_CHANNEL "twoway_revocations"
#define WATCH_OPTIONS_MAX 64

struct store_watch {
    PGconn *conn;
};

/* The options the store's connection was made with, for a second one like it. */
static PGconn *connect_like(PGconn *model)
{
    PQconninfoOption *opts = PQconninfo(model);
    if (opts == NULL)
        return NULL;
    const char *keys[WATCH_OPTIONS_MAX + 1], *vals[WATCH_OPTIONS_MAX + 1];
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL && n < WATCH_OPTIONS_MAX; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        keys[n] = o->keyword;
        vals[n] = o->val;
        n++;
    }
    keys[n] = vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    PQconninfoFree(opts);
    return c;
}

struct store_watch *store_watch_revocations(struct store *s, struct tw_err *err)
{
    TW_ENSURE_PTR(s->ops == &store_pg_ops, err, TW_ERR_USAGE,
                  "only a PostgreSQL store announces revocations");
    struct store_watch *w = calloc(1, sizeof(*w));
    TW_ENSURE_PTR(w != NULL, err, TW_ERR_STORE, "out of memory");
    w->conn = connect_like((PGconn *)s->pg);
    PGresult *r = NULL;
    if (w->conn == NULL || PQstatus(w->conn) != CONNECTION_OK ||
        (r = PQexec(w->conn, "LISTEN " STORE_REVOCATION_CHANNEL)) == NULL ||
        PQresultStatus(r) != PGRES_COMMAND_OK || PQsetnonblocking(w->conn, 1) != 0) {
        tw_err_set(err, TW_ERR_STORE, "cannot listen for revocations on %s: %s", s->path,
                   w->conn != NULL ? PQerrorMessage(w->conn) : "out of memory");
        PQclear(r);
        store_watch_free(w);
        return NULL;
    }
    PQclear(r);
    return w;
}

int store_watch_fd(const struct store_watch *w)
{
    return PQsocket(w->conn);
}

int store_watch_drain(struct store_watch *w)
{
    if (PQconsumeInput(w->conn) != 1 || PQstatus(w->conn) != CONNECTION_OK)
        return -1;
    int heard = 0;
    for (int i = 0; i < 10000; i++) {
        PGnotify *n = PQnotifies(w->conn);
        if (n == NULL)
            break;
        heard = 1;
        PQfreemem(n);
    }
    return heard;
}

void store_watch_free(struct store_watch *w)
{
    if (w == NULL)
        return;
    PQfinish(w->conn);
    free(w);
}

int store_pg_announce_revocation(struct store *s, const char *serial, struct tw_err *err)
{
    struct pg_params p = {0};
    store_pg_param_text(&p, serial);
    return store_pg_command(s, "SELECT pg_notify('" STORE_REVOCATION_CHANNEL "', $1)", &p,
                            "announcing a revocation", err);
}
