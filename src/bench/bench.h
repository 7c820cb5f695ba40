/* twoway bench: an mTLS load generator. N concurrent connection slots on one libevent loop,
 * plain SSL over non-blocking sockets, each slot running connections back to back: a full or
 * resumed mutual handshake, then optionally a request (echoed back), a bulk download or
 * upload, or holding the connection idle. Measures connections per second, latency
 * percentiles, throughput and, with a server pid, that process's CPU time and resident memory
 * per operation (from /proc).
 *
 * Every run is bounded: by a connection count, a duration, or both, and always by a hard
 * time limit; every connection by an inactivity timeout. */
#ifndef TW_BENCH_H
#define TW_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "util/err.h"

#define BENCH_MAX_CONNS 10000         /* concurrent slots (--conns) and --hold */
#define BENCH_MAX_COUNT 10000000      /* --count */
#define BENCH_MAX_DURATION_S 3600     /* --duration, and the hard limit of any run */
#define BENCH_MAX_BYTES (1ULL << 40)  /* --request / --download / --upload per connection */
#define BENCH_MAX_REQUEST (16u << 20) /* --request: read back in full, so kept small */
#define BENCH_MAX_SAMPLES (1u << 22)  /* latencies recorded; beyond, the first ones count */
#define BENCH_ERR_KINDS 24            /* distinct failure reasons tallied */
#define BENCH_MAX_STREAMS 1000        /* --streams: requests in flight per connection */

enum bench_mode {
    BENCH_MODE_HANDSHAKE = 0, /* handshake (+ request), close_notify, wait for the server's close */
    BENCH_MODE_DOWNLOAD,      /* handshake, read `download` bytes, close */
    BENCH_MODE_UPLOAD,        /* handshake, write `upload` bytes, close_notify, wait for close */
    BENCH_MODE_HOLD,          /* open `hold` connections (+ request), keep them idle, close */
};

struct bench_opts {
    const char *host;        /* name or IP literal */
    const char *port;        /* decimal */
    const char *server_name; /* checked on the server certificate and sent as SNI; NULL: host */
    const char *cert_file;   /* client certificate (+ chain) */
    const char *key_file;    /* its key (0600) */
    const char *ca_file;     /* CAs for the server certificate; NULL: system store */
    int conns;               /* concurrent connections, 1..BENCH_MAX_CONNS */
    int64_t count;           /* connections to complete; 0: until duration */
    int64_t duration_ms;     /* 0: until count (hard limit BENCH_MAX_DURATION_S) */
    int64_t timeout_ms;      /* per-connection inactivity timeout; 0: 10 s */
    int64_t hold_ms;         /* HOLD: how long the connections stay idle; 0: 1 s */
    bool resume;             /* reuse each slot's session (first handshake per slot is full) */
    int tls_version;         /* 0: 1.2..1.3; else TLS1_2_VERSION or TLS1_3_VERSION */
    enum bench_mode mode;
    uint64_t request;  /* bytes sent after the handshake and read back (echo); 0: none */
    uint64_t download; /* DOWNLOAD: bytes read per connection */
    uint64_t upload;   /* UPLOAD: bytes written per connection */
    int hold;          /* HOLD: connections held open at once */
    int pid;           /* server process to sample from /proc; 0: none */
    /* HTTP/2 (--h2 --streams N): N GET requests of path in flight per connection (ALPN h2);
     * count is then in requests and the server CPU per request. 0: off. */
    int h2_streams;
    const char *path; /* --path; NULL: "/" */
};

/* --resume: the share of offered sessions that must resume for a run to count (a server that
 * resumes fewer is measured doing full handshakes, which a resumption figure must not hide). */
#define BENCH_MIN_RESUMED_PCT 90

/* Defaults: 8 connections, 1000 connections to complete, 10 s timeout. */
void bench_opts_init(struct bench_opts *o);

/* Resource use of one process, from /proc/PID/stat and /proc/PID/status. */
struct bench_proc_sample {
    bool ok;
    int64_t cpu_us; /* utime + stime, all threads, in microseconds (tick resolution) */
    int64_t rss_kb; /* VmRSS */
};

/* Read /proc/pid. TW_ERR_IO naming the pid when the process is gone or unreadable. */
int bench_proc_sample(int pid, struct bench_proc_sample *out, struct tw_err *err) TW_MUST_CHECK;

struct bench_err_count {
    char code[32]; /* "unknown-ca", "timeout", "connect", "short-read", ... */
    int64_t n;
};

struct bench_result {
    int64_t started, ok, failed;
    int64_t full, resumed;         /* handshakes among the successful connections */
    int64_t offered;               /* --resume: successful connections that offered a session */
    int64_t primed;                /* --resume: the first full handshake per slot, not counted */
    int64_t held;                  /* HOLD: connections established at once */
    int64_t elapsed_us;            /* measured phase, wall clock */
    uint64_t bytes_up, bytes_down; /* application data, successful connections */
    double rate;                   /* successful connections per second */
    double mbytes_per_s;           /* bulk: (up + down) MB (10^6) per second */
    /* Latency of successful connections, connect to done (handshake / answer / transfer). */
    int64_t lat_p50_us, lat_p90_us, lat_p99_us, lat_max_us, lat_mean_us;
    int64_t hs_p50_us, hs_p99_us; /* connect to handshake complete */
    struct bench_err_count errors[BENCH_ERR_KINDS];
    size_t nerrors;
    char first_error[200]; /* the first failure in words */
    bool hit_time_limit;   /* stopped by the duration or hard limit, not the count */
    bool gave_up;          /* stopped early: every connection (or every warm-up) failed */
    int64_t client_cpu_us; /* this process (the load generator) during the measured phase */
    /* With opts.pid: the server before and after the measured phase (HOLD: after is taken
     * while every connection is held). */
    int pid;
    struct bench_proc_sample before, after;
    int tls_version; /* negotiated on the last successful connection (TLS1_x_VERSION) */
    char cipher[64];
};

/* Run the benchmark. Returns 0 when it ran (failures of individual connections are counted
 * in res, not errors); -1 with err when it could not start: unreadable certificate files
 * (TW_ERR_IO / TW_ERR_CONFIG), an unresolvable host (TW_ERR_USAGE), a pid with no /proc
 * entry (TW_ERR_IO). */
int bench_run(const struct bench_opts *o, struct bench_result *res,
              struct tw_err *err) TW_MUST_CHECK;

/* Derived figures, for the report and callers: server CPU µs per successful connection,
 * server CPU seconds per GB (10^9 bytes) moved, server kB per held connection. -1 when not
 * measured. */
double bench_server_us_per_conn(const struct bench_result *r);
double bench_server_s_per_gb(const struct bench_result *r);
double bench_server_kb_per_held(const struct bench_result *r);

/* The result as a JSON object (new reference), or NULL on allocation failure. */
json_t *bench_result_json(const struct bench_opts *o, const struct bench_result *r);

/* The result for humans, a few lines. */
void bench_result_print(FILE *fp, const struct bench_opts *o, const struct bench_result *r);

/* false when a --resume run resumed fewer than BENCH_MIN_RESUMED_PCT % of the sessions its
 * connections offered (or offered none); true otherwise, and for runs without --resume. */
bool bench_resumed_enough(const struct bench_opts *o, const struct bench_result *r);

/* ------------------------------------------------------------------ EST enrollment (--est) */
/* twoway bench --est: token enrollments (RFC 7030 §4.2.1 simpleenroll) against `ca serve`,
 * every one a new TLS connection with its own one-time token and a CSR for its own key. The
 * keys, CSRs and requests are made before the measured window. Closed loop (--clients C
 * enrollments back to back) or open loop (--rate R arrivals per second, at most --clients in
 * flight; latency counts from the scheduled arrival, so a server that falls behind shows in
 * the percentiles instead of slowing the generator down). Every answer is checked: HTTP 200,
 * a certs-only PKCS#7 whose first certificate holds the CSR's public key. */

#define BENCH_EST_MAX_ENROLLMENTS 100000  /* --enrollments, and tokens read from a file */
#define BENCH_EST_MAX_RATE 100000.0       /* --rate */
#define BENCH_EST_TOKENS_FILE_MAX (64u << 20) /* bytes of a --tokens file */
#define BENCH_EST_NAME_MAX 64             /* a token's NAME (pki_name_check's limit) */
#define BENCH_EST_TOKEN_MAX 64            /* a token's text */
#define BENCH_EST_RESPONSE_MAX (64u * 1024) /* an answer: headers and one certificate */

/* One line of a tokens file: "NAME TOKEN" (what `twoway ca token --count N --out F` writes). */
struct bench_token {
    char name[BENCH_EST_NAME_MAX + 1];
    char token[BENCH_EST_TOKEN_MAX + 1];
};

/* Parse a tokens file's text: lines "NAME TOKEN" separated by one or more spaces or tabs;
 * blank lines and lines starting with '#' are skipped; at most BENCH_EST_MAX_ENROLLMENTS.
 * *out (free with bench_tokens_free) gets the tokens in file order. TW_ERR_CONFIG naming
 * what (a source label) and the line for a line without two fields, a field too long, a
 * field with a character outside [A-Za-z0-9._@-] (a token is sent in an HTTP Basic
 * credential: no ':'), too many lines, or no token at all. */
int bench_tokens_parse(const char *what, const char *text, size_t len, struct bench_token **out,
                       size_t *n, struct tw_err *err) TW_MUST_CHECK;

/* Read and parse the file at path (TW_ERR_IO when unreadable or larger than
 * BENCH_EST_TOKENS_FILE_MAX). */
int bench_tokens_load(const char *path, struct bench_token **out, size_t *n,
                      struct tw_err *err) TW_MUST_CHECK;

/* Wipe (they are secrets) and free. NULL is a no-op. */
void bench_tokens_free(struct bench_token *t, size_t n);

struct bench_est_opts {
    const char *host, *port;  /* the `ca serve` listener */
    const char *base;         /* EST base path; NULL: "/.well-known/est" */
    const char *server_name;  /* checked on the server certificate and sent as SNI; NULL: host */
    const char *ca_file;      /* CAs for the server certificate; NULL: system store */
    const char *tokens_file;  /* --tokens */
    int64_t enrollments;      /* 0: one per token in the file */
    int clients;              /* closed loop: enrollments in flight; open loop: the cap;
                               * 0: 8 closed, 256 open */
    double rate;              /* > 0: open loop, arrivals per second */
    int64_t timeout_ms;       /* per-connection inactivity timeout; 0: 10 s */
    int64_t duration_ms;      /* stop starting enrollments after this long; 0: no limit */
    int pid;                  /* server process to sample from /proc; 0: none */
    const char *issued_file;  /* --issued: the serial (hex) of every certificate received,
                               * one a line, written after the run; NULL: none */
};

/* Defaults: closed loop, 10 s timeout. */
void bench_est_opts_init(struct bench_est_opts *o);

/* EST figures beyond bench_result (which holds the counts, latencies, failures by kind with
 * the first in words, the generator's CPU and the server samples). */
struct bench_est_result {
    struct bench_result r;
    int64_t prep_us;       /* making the keys, CSRs and requests (before the window) */
    int clients;           /* enrollments in flight at most (the default filled in) */
    int64_t behind;        /* open loop: arrivals started more than 1 ms after they were due */
    int64_t lat_max_sched_us; /* open loop: the worst lag of a start behind its schedule */
};

/* Load the tokens, prepare every enrollment, run, summarise. 0 when it ran (failed
 * enrollments are counted in res); -1 with err when it could not start: bad options
 * (TW_ERR_USAGE), an unreadable or malformed tokens file, fewer tokens than --enrollments
 * (TW_ERR_CONFIG), unreadable --ca (TW_ERR_IO / TW_ERR_CONFIG), an unresolvable host. */
int bench_est_run(const struct bench_est_opts *o, struct bench_est_result *res,
                  struct tw_err *err) TW_MUST_CHECK;

#define BENCH_EST_SERIAL_MAX 48 /* hex of a serial (RFC 5280 §4.1.2.2: at most 20 octets) */

/* Check one answer to a simpleenroll (the whole HTTP/1.1 response as received): the status
 * line, the end of the headers, a 200, and a base64 body carrying spki (the CSR key's
 * SubjectPublicKeyInfo, DER). With serial: the body is decoded as a certs-only PKCS#7 whose
 * first certificate must hold spki, and its serial is returned in upper-case hex. Without
 * (serial NULL, the throughput runs): spki must appear byte for byte in the decoded body --
 * OpenSSL 3.0 decodes every public key of a parsed certificate through its provider decoders,
 * which cost the generator more CPU than the rest of its answer handling. 0 when the answer
 * is right; else -1 with code (a short tally name: "http-401", "http-503", "bad-answer",
 * "wrong-key", "truncated") and detail in words (for a refusal, the server's text). */
int bench_est_answer_check(const char *resp, size_t len, const unsigned char *spki,
                           size_t spki_len, char serial[BENCH_EST_SERIAL_MAX], char code[32],
                           char *detail, size_t detail_cap);

/* Where the HTTP answer ends, from its headers: 1 and *total (headers + Content-Length) when
 * they are complete and carry a Content-Length; 0 when more bytes are needed (or the answer
 * ends at EOF); -1 for headers that are malformed or beyond BENCH_EST_RESPONSE_MAX. */
int bench_est_answer_length(const char *resp, size_t len, size_t *total);

json_t *bench_est_result_json(const struct bench_est_opts *o, const struct bench_est_result *r);
void bench_est_result_print(FILE *fp, const struct bench_est_opts *o,
                            const struct bench_est_result *r);

#endif
