/* Private to src/bench: twoway bench --est's prepared enrollments and its event loop state. */
#ifndef TW_BENCH_EST_INTERNAL_H
#define TW_BENCH_EST_INTERNAL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netdb.h>
#include <openssl/ssl.h>

#include "bench/internal.h"

/* One enrollment, made before the window: its key (to check the answer) and its request. */
struct est_item {
    unsigned char *spki; /* the CSR key's SubjectPublicKeyInfo, DER: what the answer must carry */
    size_t spki_len;
    char *req; /* the whole HTTP request, CSR and token included (wiped when freed) */
    size_t req_len;
};

enum est_state { EST_IDLE = 0, EST_CONNECT, EST_HANDSHAKE, EST_WRITE, EST_READ };

struct est_bench;

struct est_slot {
    struct est_bench *b;
    enum est_state st;
    int fd;
    SSL *ssl;
    struct event ev;
    bool ev_added;
    size_t idx;                 /* the enrollment (item and token) of this connection */
    int64_t t_sched, t_start;   /* scheduled arrival (closed loop: = t_start), connect */
    int64_t t_hs;               /* handshake done */
    size_t wdone;               /* request bytes written */
    char *resp;                 /* the answer so far (grows up to BENCH_EST_RESPONSE_MAX) */
    size_t rlen, rcap;
};

struct est_bench {
    const struct bench_est_opts *o;
    struct bench_est_result *res;
    struct est_item *items;
    size_t n;    /* enrollments to make */
    size_t next; /* the next enrollment to start */
    size_t done; /* enrollments ended, ok or not */
    size_t answered; /* enrollments the server answered in HTTP (a certificate or a refusal) */
    struct event_base *base;
    SSL_CTX *ctx;
    struct addrinfo *ai;
    struct est_slot *slots;
    int nslots;
    int active;
    bool stopping;
    struct event *arrival_ev, *stop_ev, *hard_ev;
    int64_t t0, t_end, cpu0;
    double interval_us; /* open loop: between arrivals */
    struct bench_samples lat, hs;
    char (*serials)[BENCH_EST_SERIAL_MAX]; /* --issued: one per certificate received */
};

/* est_prep.c: items[0..n) from tokens[0..n) (key, CSR, request). */
int est_items_prepare(const struct bench_est_opts *o, const struct bench_token *tokens,
                      size_t n, struct est_item *items, struct tw_err *err) TW_MUST_CHECK;
void est_items_free(struct est_item *items, size_t n);

/* est_conn.c: one enrollment on a free slot; its end is reported to est_after_end. */
void est_slot_start(struct est_slot *s, size_t idx, int64_t t_sched);
void est_slot_abort(struct est_slot *s);
/* est.c: what the loop does after a slot's enrollment ended. */
void est_after_end(struct est_slot *s, bool failed);

#endif
