/* The schema, as a list of steps. A database records every step applied in schema_version;
 * opening it applies the missing ones, each in its own transaction, and refuses a database
 * that has steps this build does not know (it was written by a newer twoway).
 * Never edit a released step: add a new one. Issue 4 adds enrollment tokens as step 2,
 * manual EST approval the pending requests as step 3.
 * Each step is written twice, once per SQL dialect, here and nowhere else: the same tables,
 * columns, constraints and rules. PostgreSQL differences: BIGINT for times and numbers, a
 * BIGSERIAL for audit ids, a seq column on certs standing in for SQLite's rowid (insertion
 * order, for stable listings), and a trigger function for the append-only audit trail. */
#include "store/internal.h"

const struct store_migration store_migrations[] = {
    {
        1,
        "certificates, CRL numbers and audit trail",
        /* serial is upper-case hex without leading zeros (see store_serial_normalise).
         * status is stored as text so the file reads plainly in the sqlite3 shell; "expired"
         * is never stored, it is derived from not_after when read. */
        "CREATE TABLE certs ("
        "  serial TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  sans TEXT NOT NULL DEFAULT '',"
        "  profile TEXT NOT NULL,"
        "  issuer TEXT NOT NULL,"
        "  sha256 TEXT NOT NULL,"
        "  not_before INTEGER NOT NULL,"
        "  not_after INTEGER NOT NULL,"
        "  issued_at INTEGER NOT NULL,"
        "  status TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),"
        "  revoked_at INTEGER,"
        "  revoke_reason INTEGER,"
        "  pem TEXT"
        ");"
        "CREATE INDEX certs_name ON certs (name, issued_at);"
        "CREATE INDEX certs_issuer_status ON certs (issuer, status);"
        /* One row holding the last CRL number handed out. */
        "CREATE TABLE crl_counter ("
        "  id INTEGER PRIMARY KEY CHECK (id = 1),"
        "  last INTEGER NOT NULL"
        ");"
        "INSERT INTO crl_counter (id, last) VALUES (1, 0);"
        "CREATE TABLE audit ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  at INTEGER NOT NULL,"
        "  action TEXT NOT NULL,"
        "  subject TEXT,"
        "  serial TEXT,"
        "  result TEXT NOT NULL"
        ");"
        /* Append-only: history cannot be rewritten through this database. */
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
        "  BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;"
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
        "  BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;",
        /* PostgreSQL dialect of step 1. */
        "CREATE TABLE certs ("
        "  serial TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  sans TEXT NOT NULL DEFAULT '',"
        "  profile TEXT NOT NULL,"
        "  issuer TEXT NOT NULL,"
        "  sha256 TEXT NOT NULL,"
        "  not_before BIGINT NOT NULL,"
        "  not_after BIGINT NOT NULL,"
        "  issued_at BIGINT NOT NULL,"
        "  status TEXT NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),"
        "  revoked_at BIGINT,"
        "  revoke_reason INTEGER,"
        "  pem TEXT,"
        "  seq BIGSERIAL NOT NULL"
        ");"
        "CREATE INDEX certs_name ON certs (name, issued_at);"
        "CREATE INDEX certs_issuer_status ON certs (issuer, status);"
        "CREATE TABLE crl_counter ("
        "  id INTEGER PRIMARY KEY CHECK (id = 1),"
        "  last BIGINT NOT NULL"
        ");"
        "INSERT INTO crl_counter (id, last) VALUES (1, 0);"
        "CREATE TABLE audit ("
        "  id BIGSERIAL PRIMARY KEY,"
        "  at BIGINT NOT NULL,"
        "  action TEXT NOT NULL,"
        "  subject TEXT,"
        "  serial TEXT,"
        "  result TEXT NOT NULL"
        ");"
        "CREATE FUNCTION tw_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "  $$ BEGIN RAISE EXCEPTION 'audit rows are append-only'; END $$;"
        "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
        "  FOR EACH ROW EXECUTE FUNCTION tw_audit_append_only();"
        "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
        "  FOR EACH STATEMENT EXECUTE FUNCTION tw_audit_append_only();",
    },
    {
        2,
        "enrollment tokens",
        /* Issue 4. A token is kept only as the SHA-256 hex of its text; used_at is set once,
         * by a conditional UPDATE, which is what makes a token single-use across processes.
         * lifetime is the validity (seconds) of the certificate it buys; 0: the profile's. */
        "CREATE TABLE tokens ("
        "  hash TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  sans TEXT NOT NULL DEFAULT '',"
        "  profile TEXT NOT NULL,"
        "  lifetime INTEGER NOT NULL DEFAULT 0,"
        "  created_at INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL,"
        "  used_at INTEGER,"
        "  serial TEXT"
        ");"
        "CREATE INDEX tokens_name ON tokens (name, created_at);",
        /* PostgreSQL dialect of step 2. */
        "CREATE TABLE tokens ("
        "  hash TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  sans TEXT NOT NULL DEFAULT '',"
        "  profile TEXT NOT NULL,"
        "  lifetime BIGINT NOT NULL DEFAULT 0,"
        "  created_at BIGINT NOT NULL,"
        "  expires_at BIGINT NOT NULL,"
        "  used_at BIGINT,"
        "  serial TEXT"
        ");"
        "CREATE INDEX tokens_name ON tokens (name, created_at);",
    },
    {
        3,
        "pending enrollment requests (manual approval)",
        /* EST with manual approval (RFC 7030 §4.2.3). id is the SHA-256 hex of the CSR's DER,
         * csr the DER as lower-case hex (text in both dialects). state moves once, from
         * 'pending' to 'approved' or 'rejected', by a conditional UPDATE; serial is set once,
         * after approval, when the certificate is made. */
        "CREATE TABLE pending_requests ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  csr TEXT NOT NULL,"
        "  name TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  sans TEXT NOT NULL DEFAULT '',"
        "  profile TEXT NOT NULL,"
        "  peer TEXT NOT NULL DEFAULT '',"
        "  created_at INTEGER NOT NULL,"
        "  state TEXT NOT NULL DEFAULT 'pending'"
        "    CHECK (state IN ('pending', 'approved', 'rejected')),"
        "  decided_at INTEGER,"
        "  lifetime INTEGER NOT NULL DEFAULT 0,"
        "  reason TEXT NOT NULL DEFAULT '',"
        "  serial TEXT"
        ");"
        "CREATE INDEX pending_state ON pending_requests (state, created_at);",
        /* PostgreSQL dialect of step 3. */
        "CREATE TABLE pending_requests ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  csr TEXT NOT NULL,"
        "  name TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  sans TEXT NOT NULL DEFAULT '',"
        "  profile TEXT NOT NULL,"
        "  peer TEXT NOT NULL DEFAULT '',"
        "  created_at BIGINT NOT NULL,"
        "  state TEXT NOT NULL DEFAULT 'pending'"
        "    CHECK (state IN ('pending', 'approved', 'rejected')),"
        "  decided_at BIGINT,"
        "  lifetime BIGINT NOT NULL DEFAULT 0,"
        "  reason TEXT NOT NULL DEFAULT '',"
        "  serial TEXT"
        ");"
        "CREATE INDEX pending_state ON pending_requests (state, created_at);",
    },
};

const size_t store_migration_count = sizeof(store_migrations) / sizeof(store_migrations[0]);
