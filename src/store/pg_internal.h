/* Private to src/store: the PostgreSQL back end's query helpers (libpq). */
#ifndef TW_STORE_PG_INTERNAL_H
#define TW_STORE_PG_INTERNAL_H

#include <libpq-fe.h>

#include "store/internal.h"

#define PG_PARAMS_MAX 16

/* Text parameters for one statement: NULL stays SQL NULL; numbers are formatted in place. */
struct pg_params {
    const char *v[PG_PARAMS_MAX];
    char num[PG_PARAMS_MAX][24];
    int n;
};

void store_pg_param_text(struct pg_params *p, const char *text);
void store_pg_param_int(struct pg_params *p, int64_t v);

/* Run one statement; *res (PQclear) gets its result when it succeeded (rows or not).
 * A unique-constraint violation fails with TW_ERR_EXISTS ("duplicate"); everything else
 * with TW_ERR_STORE naming what and the server (the password never shows). Outside a
 * transaction a lost connection is re-established first. */
int store_pg_query(struct store *s, const char *sql, const struct pg_params *p, PGresult **res,
             const char *what, struct tw_err *err) TW_MUST_CHECK;

/* pg_query for statements whose result is not needed. */
int store_pg_command(struct store *s, const char *sql, const struct pg_params *p, const char *what,
               struct tw_err *err) TW_MUST_CHECK;

/* Column helpers: "" / 0 for NULL. */
void store_pg_copy(const PGresult *r, int row, int col, char *out, size_t cap);
int64_t store_pg_int(const PGresult *r, int row, int col);

static inline void pg_result_cleanup(PGresult **r)
{
    PQclear(*r); /* accepts NULL */
}
#define PG_AUTO_RESULT __attribute__((cleanup(pg_result_cleanup))) PGresult

/* NOTIFY watchers (pg_watch.c) of a revocation, in the current transaction. */
int store_pg_announce_revocation(struct store *s, const char *serial,
                                 struct tw_err *err) TW_MUST_CHECK;

#endif
