/* Opening the SQLite store: file mode, pragmas, migrations; error mapping and transactions
 * shared by the rest of the module. */
#include "store/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int store_sql_fail(struct store *s, int rc, const char *what, struct tw_err *err)
{
    const char *path = s->path;
    const char *detail = s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return tw_err_set(err, TW_ERR_STORE, "%s: disk full writing %s", what, path);
    case SQLITE_IOERR:
        return tw_err_set(err, TW_ERR_STORE, "%s: I/O error on %s (%s)", what, path, detail);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return tw_err_set(err, TW_ERR_STORE,
                          "%s: %s is locked by another process (gave up after %d s)", what, path,
                          STORE_BUSY_TIMEOUT_MS / 1000);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return tw_err_set(err, TW_ERR_STORE, "%s: %s is corrupt or not a twoway store", what,
                          path);
    case SQLITE_READONLY:
        return tw_err_set(err, TW_ERR_STORE,
                          "%s: %s is read-only (check the file and its directory are writable)",
                          what, path);
    case SQLITE_CANTOPEN:
        return tw_err_set(err, TW_ERR_STORE,
                          "%s: cannot open %s (check its directory exists and is writable)",
                          what, path);
    case SQLITE_NOMEM:
        return tw_err_set(err, TW_ERR_STORE, "%s: out of memory using %s", what, path);
    default:
        return tw_err_set(err, TW_ERR_STORE, "%s: %s: %s", what, path, detail);
    }
}

int store_prepare(struct store *s, const char *sql, sqlite3_stmt **stmt, const char *what,
                  struct tw_err *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

int store_exec(struct store *s, const char *sql, const char *what, struct tw_err *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store_sql_fail(s, rc, what, err);
    return 0;
}

int store_bind_text(sqlite3_stmt *st, int idx, const char *text, size_t cap)
{
    if (text == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, text, (int)strnlen(text, cap - 1), SQLITE_TRANSIENT);
}

void store_column_copy(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", text != NULL ? (const char *)text : "");
}

int store_serial_normalise(const char *text, char out[STORE_SERIAL_MAX])
{
    if (text == NULL || text[0] == '\0')
        return -1;
    for (const char *p = text; *p != '\0'; p++)
        if (!isxdigit((unsigned char)*p))
            return -1;
    while (text[0] == '0' && text[1] != '\0')
        text++;
    size_t n = strlen(text);
    if (n >= STORE_SERIAL_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)toupper((unsigned char)text[i]);
    out[n] = '\0';
    return 0;
}

int store_sq_txn_begin(struct store *s, struct tw_err *err)
{
    char sql[48];
    if (s->txn_depth == 0)
        snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE");
    else
        snprintf(sql, sizeof(sql), "SAVEPOINT tw_%d", s->txn_depth);
    TW_GUARD(store_exec(s, sql, "starting a transaction", err));
    s->txn_depth++;
    return 0;
}

int store_sq_txn_commit(struct store *s, struct tw_err *err)
{
    char sql[48];
    if (s->txn_depth <= 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "store: commit without a transaction");
    if (sqlite3_get_autocommit(s->db)) { /* SQLite already rolled it back (disk full, ...) */
        s->txn_depth--;
        return tw_err_set(err, TW_ERR_STORE, "transaction on %s was rolled back", s->path);
    }
    if (s->txn_depth == 1)
        snprintf(sql, sizeof(sql), "COMMIT");
    else
        snprintf(sql, sizeof(sql), "RELEASE tw_%d", s->txn_depth - 1);
    if (store_exec(s, sql, "saving changes", err) != 0) {
        store_sq_txn_rollback(s);
        return -1;
    }
    s->txn_depth--;
    return 0;
}

void store_sq_txn_rollback(struct store *s)
{
    char sql[64];
    if (s->txn_depth <= 0)
        return;
    s->txn_depth--;
    if (sqlite3_get_autocommit(s->db))
        return; /* nothing left to roll back */
    if (s->txn_depth == 0)
        snprintf(sql, sizeof(sql), "ROLLBACK");
    else
        snprintf(sql, sizeof(sql), "ROLLBACK TO tw_%d; RELEASE tw_%d", s->txn_depth,
                 s->txn_depth);
    (void)sqlite3_exec(s->db, sql, NULL, NULL, NULL); /* best effort: keep the first error */
}

/* Make sure the database (and its WAL side files, if present) are private before SQLite
 * touches them: created 0600, and an existing file with a looser mode is tightened. */
static int secure_file(const char *path, int must_exist_ok, struct tw_err *err)
{
    int flags = O_RDWR | O_CLOEXEC | (must_exist_ok ? 0 : O_CREAT);
    int fd = open(path, flags, 0600);
    if (fd < 0) {
        if (must_exist_ok && errno == ENOENT)
            return 0;
        return tw_err_sys(err, TW_ERR_STORE, "cannot open %s", path);
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = tw_err_sys(err, TW_ERR_STORE, "cannot stat %s", path);
    else if (!S_ISREG(st.st_mode))
        rc = tw_err_set(err, TW_ERR_STORE, "%s is not a regular file", path);
    else if ((st.st_mode & 077) != 0 && fchmod(fd, 0600) != 0)
        rc = tw_err_sys(err, TW_ERR_STORE, "cannot make %s private (mode 0600)", path);
    close(fd);
    return rc;
}

static int secure_files(const char *path, struct tw_err *err)
{
    TW_GUARD(secure_file(path, 0, err));
    static const char *const sides[] = {"-wal", "-shm"};
    for (size_t i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
        char side[PATH_MAX + 8];
        snprintf(side, sizeof(side), "%s%s", path, sides[i]);
        TW_GUARD(secure_file(side, 1, err));
    }
    return 0;
}

static int read_version(struct store *s, int *version, struct tw_err *err)
{
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &st,
                           "reading the schema version", err));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, "reading the schema version", err);
    *version = sqlite3_column_int(st, 0);
    return 0;
}

static int record_version(struct store *s, const struct store_migration *m, struct tw_err *err)
{
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "INSERT INTO schema_version (version, what, applied_at) "
                              "VALUES (?, ?, ?)",
                           &st, "recording the schema version", err));
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_text(st, 2, m->what, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return store_sql_fail(s, rc, "recording the schema version", err);
    return 0;
}

/* One step of the upgrade loop, inside its own transaction. Sets *done when up to date. */
static int migrate_step(struct store *s, int *done, struct tw_err *err)
{
    int version = 0;
    TW_GUARD(store_exec(s,
                        "CREATE TABLE IF NOT EXISTS schema_version ("
                        "  version INTEGER PRIMARY KEY, what TEXT NOT NULL,"
                        "  applied_at INTEGER NOT NULL)",
                        "creating the schema table", err));
    TW_GUARD(read_version(s, &version, err));
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
    TW_GUARD(store_exec(s, m->sql, what, err));
    return record_version(s, m, err);
}

static int migrate(struct store *s, struct tw_err *err)
{
    for (;;) {
        int done = 0;
        TW_GUARD(store_txn_begin(s, err));
        if (migrate_step(s, &done, err) != 0) {
            store_txn_rollback(s);
            return -1;
        }
        TW_GUARD(store_txn_commit(s, err));
        if (done)
            return 0;
    }
}

static int configure(struct store *s, struct tw_err *err)
{
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    /* journal_mode answers with the mode now in force; reading it is also the first access
     * to the file, so a file that is not SQLite fails here with NOTADB. */
    STORE_AUTO_STMT *st = NULL;
    TW_GUARD(store_prepare(s, "PRAGMA journal_mode=WAL", &st, "opening the store", err));
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return store_sql_fail(s, rc, "opening the store", err);
    const unsigned char *mode = sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
        return tw_err_set(err, TW_ERR_STORE, "%s: cannot switch to WAL journal mode", s->path);
    return store_exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                      "opening the store", err);
}

int store_sqlite_open(const char *path, struct store **out, struct tw_err *err)
{
    *out = NULL;
    TW_ENSURE(strlen(path) < PATH_MAX, err, TW_ERR_STORE, "store path too long: %s", path);
    TW_GUARD(secure_files(path, err));

    struct store *s = calloc(1, sizeof(*s));
    TW_ENSURE(s != NULL, err, TW_ERR_STORE, "out of memory opening %s", path);
    s->ops = &store_sqlite_ops;
    snprintf(s->path, sizeof(s->path), "%s", path);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        store_sql_fail(s, rc, "opening the store", err);
        store_free(s);
        return -1;
    }
    if (configure(s, err) != 0 || migrate(s, err) != 0) {
        store_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_sq_close(struct store *s)
{
    sqlite3_finalize(s->cert_get); /* accepts NULL */
    s->cert_get = NULL;
    sqlite3_close_v2(s->db); /* accepts NULL */
    s->db = NULL;
}

int store_sq_schema_version(struct store *s, int *version, struct tw_err *err)
{
    return read_version(s, version, err);
}

#define STORE_OP_INIT_SQ(ret, name, args) .name = store_sq_##name,
const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    STORE_OPS_LIST(STORE_OP_INIT_SQ)
};
