#include "testutil.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

static int file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 0777);
}

static void open_creates_private_db_at_latest_version(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    int version = 0;
    assert_int_equal(store_schema_version(s, &version, &err), 0);
    assert_int_equal(version, (int)store_migration_count);
    assert_int_equal(file_mode(tdb), 0600);
    store_free(s);
}

static void open_accepts_sqlite_uri(void **state)
{
    (void)state;
    char uri[1100];
    snprintf(uri, sizeof(uri), "sqlite:%s", tdb);
    struct store *s = NULL;
    struct tw_err err;
    assert_int_equal(store_open(uri, &s, &err), 0);
    store_free(s);
    assert_int_equal(access(tdb, F_OK), 0);
}

static void open_sets_wal_full_sync_and_foreign_keys(void **state)
{
    (void)state;
    struct store *s = open_ok();
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2); /* FULL */
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA foreign_keys", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    store_free(s);
}

static void wal_side_files_are_private_too(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "5A", "wal");
    put_ok(s, &c); /* the WAL and its index exist while a connection is open */
    char side[1100];
    snprintf(side, sizeof(side), "%s-wal", tdb);
    assert_int_equal(file_mode(side), 0600);
    snprintf(side, sizeof(side), "%s-shm", tdb);
    assert_int_equal(file_mode(side), 0600);
    store_free(s);
}

static void open_tightens_loose_mode(void **state)
{
    (void)state;
    int fd = open(tdb, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0);
    close(fd);
    struct store *s = open_ok();
    assert_int_equal(file_mode(tdb), 0600);
    store_free(s);
}

static void reopen_keeps_rows_and_version(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    make_cert(&c, "1A", "alice");
    put_ok(s, &c);
    store_free(s);
    s = open_ok();
    struct store_cert got;
    struct tw_err err;
    assert_int_equal(store_cert_get(s, "1a", &got, &err), 0);
    assert_string_equal(got.name, "alice");
    store_cert_clear(&got);
    int version = 0;
    assert_int_equal(store_schema_version(s, &version, &err), 0);
    assert_int_equal(version, (int)store_migration_count);
    store_free(s);
}

static void open_garbage_file_is_store_error_naming_path(void **state)
{
    (void)state;
    FILE *f = fopen(tdb, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database at all\n", f);
    fclose(f);
    struct store *s = NULL;
    struct tw_err err;
    assert_int_equal(store_open(tdb, &s, &err), -1);
    assert_null(s);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, tdb));
    assert_non_null(strstr(err.msg, "not a twoway store"));
}

static void open_newer_schema_is_refused(void **state)
{
    (void)state;
    store_free(open_ok());
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(tdb, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO schema_version (version, what, applied_at) "
                                  "VALUES (999, 'from the future', 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct store *s = NULL;
    struct tw_err err;
    assert_int_equal(store_open(tdb, &s, &err), -1);
    assert_null(s);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "999"));
    assert_non_null(strstr(err.msg, "newer twoway"));
    assert_non_null(strstr(err.msg, tdb));
}

static void open_bad_uris_are_store_errors(void **state)
{
    (void)state;
    struct store *s = NULL;
    struct tw_err err;
    assert_int_equal(store_open("", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_int_equal(store_open("sqlite:", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    /* A PostgreSQL store nobody serves (port 1): no DNS lookup, refused at once. */
    assert_int_equal(store_open("postgres://127.0.0.1:1/ca", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "postgres://127.0.0.1:1/ca"));
    assert_int_equal(store_open("/nonexistent-dir/x/ca.db", &s, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/ca.db"));
    assert_int_equal(store_open(tdir, &s, &err), -1); /* a directory */
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, tdir));
    assert_null(s);
}

static int count_row(const struct store_cert *c, void *ctx)
{
    (void)c;
    (*(int *)ctx)++;
    return 0;
}

/* Pages scribbled over after the header: whichever call first reads them says "corrupt". */
static void corrupt_pages_are_named_plainly(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct store_cert c;
    char serial[16];
    for (int i = 1; i <= 200; i++) {
        snprintf(serial, sizeof(serial), "%X", i);
        make_cert(&c, serial, "bulk");
        put_ok(s, &c);
    }
    store_free(s); /* checkpoints the WAL into the file */
    FILE *f = fopen(tdb, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 8 * 4096);
    assert_int_equal(fseek(f, 3 * 4096, SEEK_SET), 0);
    for (long i = 3 * 4096; i < size; i++)
        fputc(0xA5, f);
    fclose(f);

    struct tw_err err;
    s = NULL;
    int rc = store_open(tdb, &s, &err);
    if (rc == 0) {
        int n = 0;
        rc = store_cert_list(s, NULL, count_row, &n, &err);
        store_free(s);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "is corrupt"));
    assert_non_null(strstr(err.msg, tdb));
}

static void disk_full_is_named_plainly(void **state)
{
    (void)state;
    struct store *s = open_ok();
    struct tw_err err;
    /* Cap the file at its current size: the next page it needs is "disk full". */
    assert_int_equal(sqlite3_exec(s->db, "PRAGMA max_page_count = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    struct store_cert c;
    int rc = 0;
    char serial[16];
    for (int i = 1; i < 200 && rc == 0; i++) { /* fill the last free page */
        snprintf(serial, sizeof(serial), "%X", i);
        make_cert(&c, serial, "filler");
        rc = store_cert_put(s, &c, &err);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "disk full writing"));
    assert_non_null(strstr(err.msg, tdb));
    store_free(s);
}

static void busy_database_is_named_plainly(void **state)
{
    (void)state;
    struct store *s = open_ok();
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(tdb, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_busy_timeout(s->db, 50); /* do not wait the full timeout in a unit test */
    struct store_cert c;
    make_cert(&c, "B0", "bob");
    struct tw_err err;
    assert_int_equal(store_cert_put(s, &c, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "locked by another process"));
    int64_t n = 0;
    assert_int_equal(store_crl_number_next(s, &n, &err), -1);
    assert_int_equal(err.code, TW_ERR_STORE);
    assert_non_null(strstr(err.msg, "locked"));
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    put_ok(s, &c); /* usable again once the lock is gone */
    store_free(s);
}

static void sql_fail_maps_each_code(void **state)
{
    (void)state;
    struct store s;
    memset(&s, 0, sizeof(s));
    snprintf(s.path, sizeof(s.path), "/d/ca.db");
    struct {
        int rc;
        const char *words;
    } cases[] = {
        {SQLITE_FULL, "disk full writing /d/ca.db"},
        {SQLITE_IOERR_WRITE, "I/O error on /d/ca.db"},
        {SQLITE_BUSY, "/d/ca.db is locked"},
        {SQLITE_CORRUPT, "/d/ca.db is corrupt"},
        {SQLITE_NOTADB, "not a twoway store"},
        {SQLITE_READONLY, "/d/ca.db is read-only"},
        {SQLITE_CANTOPEN, "cannot open /d/ca.db"},
        {SQLITE_NOMEM, "out of memory"},
        {SQLITE_MISMATCH, "/d/ca.db"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tw_err err;
        assert_int_equal(store_sql_fail(&s, cases[i].rc, "testing", &err), -1);
        assert_int_equal(err.code, TW_ERR_STORE);
        assert_non_null(strstr(err.msg, cases[i].words));
        assert_non_null(strstr(err.msg, "testing"));
    }
}

static void serial_normalise_rules(void **state)
{
    (void)state;
    char out[STORE_SERIAL_MAX];
    assert_int_equal(store_serial_normalise("00ab0F", out), 0);
    assert_string_equal(out, "AB0F");
    assert_int_equal(store_serial_normalise("000", out), 0);
    assert_string_equal(out, "0");
    assert_int_equal(store_serial_normalise("", out), -1);
    assert_int_equal(store_serial_normalise("12:34", out), -1);
    assert_int_equal(store_serial_normalise("0x12", out), -1);
    char long_serial[100];
    memset(long_serial, 'A', sizeof(long_serial) - 1);
    long_serial[sizeof(long_serial) - 1] = '\0';
    assert_int_equal(store_serial_normalise(long_serial, out), -1);
    memset(long_serial, '0', 20); /* leading zeros do not count toward the limit */
    long_serial[20 + 64] = '\0';
    assert_int_equal(store_serial_normalise(long_serial, out), 0);
    assert_int_equal(strlen(out), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_private_db_at_latest_version, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(open_accepts_sqlite_uri, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(open_sets_wal_full_sync_and_foreign_keys, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(wal_side_files_are_private_too, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(open_tightens_loose_mode, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_rows_and_version, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(open_garbage_file_is_store_error_naming_path, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(open_newer_schema_is_refused, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(open_bad_uris_are_store_errors, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(corrupt_pages_are_named_plainly, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(disk_full_is_named_plainly, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(busy_database_is_named_plainly, tmp_setup, tmp_teardown),
        cmocka_unit_test(sql_fail_maps_each_code),
        cmocka_unit_test(serial_normalise_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
