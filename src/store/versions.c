/* The versions of the database client libraries this build runs with, for `twoway version`:
 * the store is the only module that knows about SQLite and libpq. */
#include "store/store.h"

#include <stdio.h>

#include <libpq-fe.h>
#include <sqlite3.h>

const char *store_sqlite_version(void)
{
    return sqlite3_libversion();
}

void store_libpq_version(char *buf, size_t cap)
{
    /* PQlibVersion: major * 10000 + minor since PostgreSQL 10 (15.5 is 150005). */
    int v = PQlibVersion();
    snprintf(buf, cap, "%d.%d", v / 10000, v % 10000);
}
