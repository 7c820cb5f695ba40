/* The CA inventory: every issued certificate, revocations, CRL numbers, enrollment tokens and
 * an append-only audit trail. One interface, two back ends (SQLite, the embedded default, and
 * PostgreSQL, shared by several CA servers): callers never see SQL. Every write is durable when
 * the call returns. */
#ifndef TW_STORE_H
#define TW_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/err.h"

struct store;

/* Certificate status as stored; "expired" is derived from not_after at read time. */
enum store_status { STORE_VALID = 0, STORE_REVOKED = 1, STORE_EXPIRED = 2 };

#define STORE_SERIAL_MAX 66  /* hex of up to 32 bytes + NUL */
#define STORE_NAME_MAX 256   /* CN as given to `ca issue` */
#define STORE_SUBJECT_MAX 512
#define STORE_SANS_MAX 2048  /* "dns:a,ip:1.2.3.4,..." */
#define STORE_PROFILE_MAX 16 /* "client" "server" "ocsp" "intermediate" "root" */
#define STORE_SHA256_MAX 65  /* lower-case hex */

/* One inventory row. pem is owned by the row (store_cert_clear frees it). */
struct store_cert {
    char serial[STORE_SERIAL_MAX]; /* upper-case hex, no leading zeros, as openssl prints */
    char name[STORE_NAME_MAX];     /* the NAME it was issued to (CN) */
    char subject[STORE_SUBJECT_MAX];
    char sans[STORE_SANS_MAX];
    char profile[STORE_PROFILE_MAX];
    char issuer[STORE_SUBJECT_MAX];
    char sha256[STORE_SHA256_MAX];
    int64_t not_before; /* unix seconds */
    int64_t not_after;
    int64_t issued_at;        /* 0 on put: now */
    enum store_status status; /* STORE_EXPIRED when not_after is past and not revoked */
    int64_t revoked_at;       /* 0 when not revoked */
    int revoke_reason;        /* RFC 5280 CRLReason code; -1 when not revoked */
    char *pem;
};

/* Release what a row owns and zero it. Accepts a zeroed row. */
void store_cert_clear(struct store_cert *c);

/* Open (creating if needed) the store at uri: "sqlite:/path/ca.db" or a plain path (SQLite,
 * the file created 0600), or "postgres://..." / "postgresql://..." (a libpq URI; the database
 * must exist, the tables are created). Applies pending schema migrations, each in one
 * transaction; refuses a schema newer than this build knows (TW_ERR_STORE). On PostgreSQL a
 * lost connection is re-established at the next call outside a transaction. */
int store_open(const char *uri, struct store **out, struct tw_err *err) TW_MUST_CHECK;

/* Close. Accepts NULL. */
void store_free(struct store *s);

/* The schema version now in the database. */
int store_schema_version(struct store *s, int *version, struct tw_err *err) TW_MUST_CHECK;

/* Insert a new row (status valid). Fails with TW_ERR_EXISTS when the serial is taken, so a
 * random-serial collision is detected rather than overwriting. Durable on return. */
int store_cert_put(struct store *s, const struct store_cert *c, struct tw_err *err) TW_MUST_CHECK;

/* Fetch by serial (case-insensitive hex, leading zeros ignored). TW_ERR_NOTFOUND if none. */
int store_cert_get(struct store *s, const char *serial, struct store_cert *out,
                   struct tw_err *err) TW_MUST_CHECK;

/* The newest certificate (by issued_at, then not_before) issued to name, any status.
 * TW_ERR_NOTFOUND if none. */
int store_cert_newest(struct store *s, const char *name, struct store_cert *out,
                      struct tw_err *err) TW_MUST_CHECK;

/* Filters for store_cert_list; zero/NULL fields do not filter, except status where 0 is
 * STORE_VALID: set status = -1 for any. A NULL filter lists everything. */
struct store_filter {
    int status;               /* -1 any, else enum store_status */
    int64_t expiring_within;  /* >0: valid and not_after <= now + this */
    const char *name_glob;    /* fnmatch(3) pattern on name */
    const char *profile;      /* exact profile */
    int64_t now;              /* 0: time(NULL) */
};

/* Called for each matching row, oldest first; the row is only valid during the call. Return
 * non-zero to stop early. */
typedef int (*store_cert_fn)(const struct store_cert *c, void *ctx);

int store_cert_list(struct store *s, const struct store_filter *f, store_cert_fn fn, void *ctx,
                    struct tw_err *err) TW_MUST_CHECK;

/* Mark revoked with reason and time (0: now). TW_ERR_NOTFOUND for an unknown serial,
 * TW_ERR_EXISTS when already revoked (the first revocation is kept), TW_ERR_USAGE for a
 * reason that is not an RFC 5280 CRLReason code. */
int store_cert_revoke(struct store *s, const char *serial, int reason, int64_t when,
                      struct tw_err *err) TW_MUST_CHECK;

/* Every revoked certificate issued by issuer (subject string; NULL: any issuer), expired ones
 * included, ordered by revocation time, for building a CRL. */
int store_revoked_list(struct store *s, const char *issuer, store_cert_fn fn, void *ctx,
                       struct tw_err *err) TW_MUST_CHECK;

/* How many certificates of issuer (NULL: any) are revoked: what store_revoked_list would list.
 * Cheap enough to ask every second (a CA server compares it with the CRL it serves). */
int store_revoked_count(struct store *s, const char *issuer, int64_t *count,
                        struct tw_err *err) TW_MUST_CHECK;

/* Take the next CRL number: strictly greater than every number handed out before, even across
 * processes. Durable on return. */
int store_crl_number_next(struct store *s, int64_t *number, struct tw_err *err) TW_MUST_CHECK;

/* Make every later store_crl_number_next return more than at_least: the counter becomes
 * max(counter, at_least), in one transaction that holds the counter's lock (so a concurrent
 * store_crl_number_next is ordered before or after it, never interleaved). For repairs that
 * find a CRL on disk the counter has not seen. Durable on return (or with the outermost
 * transaction it runs in). */
int store_crl_number_raise(struct store *s, int64_t at_least, struct tw_err *err) TW_MUST_CHECK;

/* Append to the audit trail. action e.g. "issue", "revoke"; result "ok" or a short error.
 * Any of subject/serial may be NULL. Rows are never updated or deleted (a trigger enforces it). */
int store_audit_add(struct store *s, const char *action, const char *subject, const char *serial,
                    const char *result, struct tw_err *err) TW_MUST_CHECK;

/* One audit row, for `ca audit`-style listings and tests. */
struct store_audit {
    int64_t id;
    int64_t at;
    char action[32];
    char subject[STORE_SUBJECT_MAX];
    char serial[STORE_SERIAL_MAX];
    char result[256];
};
typedef int (*store_audit_fn)(const struct store_audit *a, void *ctx);
int store_audit_list(struct store *s, store_audit_fn fn, void *ctx,
                     struct tw_err *err) TW_MUST_CHECK;

/* Run fn inside one transaction: committed when fn returns 0, rolled back otherwise (fn's
 * error is kept). Lets a caller make several writes all-or-nothing. Nesting is allowed: a
 * store_transaction (or any store write) inside fn becomes a SAVEPOINT, rolled back alone when
 * it fails; nothing is durable until the outermost transaction commits. The outermost takes
 * the write lock at once (BEGIN IMMEDIATE), so other processes wait (busy timeout) rather
 * than deadlock. */
typedef int (*store_txn_fn)(struct store *s, void *ctx, struct tw_err *err);
int store_transaction(struct store *s, store_txn_fn fn, void *ctx,
                      struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- enrollment tokens (issue 4) */

#define STORE_TOKEN_HASH_MAX 65 /* SHA-256 of the token text, lower-case hex */

/* One enrollment token. The token text itself is never stored, only its hash. */
struct store_token {
    char hash[STORE_TOKEN_HASH_MAX];
    char name[STORE_NAME_MAX];       /* the NAME it may enroll */
    char sans[STORE_SANS_MAX];       /* "dns:a,ip:1.2.3.4": the SANs it may ask for */
    char profile[STORE_PROFILE_MAX]; /* "client" or "server" */
    int64_t lifetime;                /* certificate validity in seconds; 0: profile default */
    int64_t created_at;              /* 0 on put: now */
    int64_t expires_at;
    int64_t used_at;                 /* 0 while unused */
    char serial[STORE_SERIAL_MAX];   /* certificate it bought, "" until then */
};

/* Insert a new, unused token. TW_ERR_EXISTS when the hash is taken. Durable on return. */
int store_token_put(struct store *s, const struct store_token *t, struct tw_err *err) TW_MUST_CHECK;

/* Fetch by hash. TW_ERR_NOTFOUND if none. */
int store_token_get(struct store *s, const char *hash, struct store_token *out,
                    struct tw_err *err) TW_MUST_CHECK;

/* Mark the token used at now, only if it exists, is unused and has not expired: one
 * conditional UPDATE whose change count decides, so of several concurrent callers (threads or
 * processes) exactly one succeeds. Fails with TW_ERR_NOTFOUND (unknown hash), TW_ERR_EXISTS
 * (already used) or TW_ERR_VERIFY (expired). Run it inside store_transaction together with the
 * issuance, so a failed issuance leaves the token unused. */
int store_token_use(struct store *s, const char *hash, int64_t now,
                    struct tw_err *err) TW_MUST_CHECK;

/* Record the serial of the certificate a used token bought. */
int store_token_set_serial(struct store *s, const char *hash, const char *serial,
                           struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- back ends (issue 7) */

/* "sqlite" or "postgresql". */
const char *store_backend(const struct store *s);

/* Where the store is, for messages: the file, or the URI with any password masked. */
const char *store_where(const struct store *s);

/* Every token, ordered by hash (for copying a store). */
typedef int (*store_token_fn)(const struct store_token *t, void *ctx);
int store_token_list(struct store *s, store_token_fn fn, void *ctx,
                     struct tw_err *err) TW_MUST_CHECK;

/* What store_copy moved: per table, the rows and a SHA-256 over them (order-independent, the
 * same on both back ends for the same content). */
#define STORE_COPY_TABLES 5 /* certs, tokens, audit, pending_requests, crl_counter */
struct store_copy_report {
    struct {
        const char *table;
        int64_t rows;
        char sha256[STORE_SHA256_MAX];
    } tables[STORE_COPY_TABLES];
};

/* Summarise a store as store_copy verifies it. */
int store_checksum(struct store *s, struct store_copy_report *out, struct tw_err *err) TW_MUST_CHECK;

/* Copy every certificate, token, audit row, pending enrollment request and the CRL counter
 * from src into dst, losslessly (audit ids and times, token use, request decisions and serials
 * kept), in one transaction on dst that commits only when the row counts and checksums of both
 * sides agree. TW_ERR_EXISTS when dst already holds a certificate, token, audit row or pending
 * request (nothing is written). rep gets dst's summary. */
int store_copy(struct store *src, struct store *dst, struct store_copy_report *rep,
               struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- pending enrollments */

/* EST enrollment with manual approval (RFC 7030 §4.2.3): a CSR sent without credentials waits
 * in pending_requests until an operator approves or rejects it. The id is the SHA-256 of the
 * CSR's DER, so the same CSR sent again is the same request. */
#define STORE_PENDING_ID_MAX 65            /* SHA-256 hex of the CSR DER */
#define STORE_PENDING_CSR_MAX (32u * 1024) /* bytes of a stored CSR (DER) */
#define STORE_PEER_MAX 64                  /* client address as text */
#define STORE_REASON_MAX 256               /* why a request was rejected */

/* "pending" (waiting), "approved" (serial "" until the certificate is made), "rejected". */
struct store_pending {
    char id[STORE_PENDING_ID_MAX];
    char name[STORE_NAME_MAX];       /* the CSR's CN: the certificate's NAME */
    char subject[STORE_SUBJECT_MAX]; /* the CSR's subject as sent */
    char sans[STORE_SANS_MAX];       /* the CSR's SANs as sent */
    char profile[STORE_PROFILE_MAX]; /* "client" or "server" */
    char peer[STORE_PEER_MAX];       /* the client address that sent it */
    int64_t created_at;              /* 0 on add: now */
    char state[16];
    int64_t decided_at;            /* 0 while pending */
    int64_t lifetime;              /* validity chosen at approval (seconds); 0: the profile's */
    char reason[STORE_REASON_MAX]; /* rejection reason */
    char serial[STORE_SERIAL_MAX]; /* the certificate made after approval; "" before */
    unsigned char *csr;            /* DER (store_pending_get only; store_pending_clear frees) */
    size_t csr_len;
};

/* Free what a row owns and zero it. Accepts a zeroed row. */
void store_pending_clear(struct store_pending *p);

/* Add a pending request (state pending; csr/csr_len required). TW_ERR_EXISTS when the id is
 * already there (any state), TW_ERR_POLICY when max_pending requests (> 0) already wait,
 * TW_ERR_USAGE for an id that is not SHA-256 hex or a CSR over STORE_PENDING_CSR_MAX. */
int store_pending_add(struct store *s, const struct store_pending *p, int64_t max_pending,
                      struct tw_err *err) TW_MUST_CHECK;

/* Fetch by whole id, CSR included. TW_ERR_NOTFOUND if none. */
int store_pending_get(struct store *s, const char *id, struct store_pending *out,
                      struct tw_err *err) TW_MUST_CHECK;

/* Fetch by a unique id prefix (hex, any case; the CSR not included). TW_ERR_NOTFOUND when no
 * id starts with it, TW_ERR_USAGE when it is not hex or when several do (ambiguous). */
int store_pending_find(struct store *s, const char *prefix, struct store_pending *out,
                       struct tw_err *err) TW_MUST_CHECK;

/* Every request in state (NULL: any), oldest first, without CSRs. */
typedef int (*store_pending_fn)(const struct store_pending *p, void *ctx);
int store_pending_list(struct store *s, const char *state, store_pending_fn fn, void *ctx,
                       struct tw_err *err) TW_MUST_CHECK;

/* Decide a pending request at now: approve (lifetime seconds, 0: profile default) or reject
 * (reason). One conditional UPDATE, so of two operators exactly one decides. TW_ERR_NOTFOUND
 * for an unknown id, TW_ERR_EXISTS when it was already decided. */
int store_pending_decide(struct store *s, const char *id, int approve, int64_t lifetime,
                         const char *reason, int64_t now, struct tw_err *err) TW_MUST_CHECK;

/* Record the certificate made for an approved request, once: TW_ERR_EXISTS when it already has
 * one or is not approved. Run it in store_transaction with the issuance, so a request gets
 * exactly one certificate even with several servers. */
int store_pending_set_serial(struct store *s, const char *id, const char *serial,
                             struct tw_err *err) TW_MUST_CHECK;

/* Versions of the client libraries linked in: SQLite ("3.40.1") and libpq ("15.5", into buf). */
const char *store_sqlite_version(void);
void store_libpq_version(char *buf, size_t cap);

/* Revocations committed by any process on the same PostgreSQL database (LISTEN/NOTIFY on a
 * second connection, opened with the store's own parameters). NULL with TW_ERR_USAGE for a
 * SQLite store, TW_ERR_STORE when the connection fails. fd: wait for it to be readable, then
 * drain: 1 when at least one revocation was announced, 0 none, -1 the connection is lost
 * (free it and open a new one). */
struct store_watch;
struct store_watch *store_watch_revocations(struct store *s, struct tw_err *err);
int store_watch_fd(const struct store_watch *w);
int store_watch_drain(struct store_watch *w) TW_MUST_CHECK;
void store_watch_free(struct store_watch *w);

#endif
