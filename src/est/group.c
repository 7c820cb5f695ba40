/* Group commit: enrollments that arrive together share one transaction and one fsync.
 *
 * A handler checks what it can alone (credentials, the CSR) and hands the enrollment over as a
 * job; the first job of a group activates the flush event, which runs once the loop has
 * dispatched the other requests that were ready in the same turn (or at once when the group is
 * full). The flush opens one store transaction, runs every job inside it as a nested one (a
 * savepoint: a job that fails is rolled back alone, with its failure audited), commits, and
 * only then answers: a certificate leaves only after the commit that made its row durable, and
 * a failed commit fails each of its jobs cleanly (nothing was issued, 503). The transaction
 * starts and ends inside one callback, so no other request ever sees it open. Token
 * consumption stays atomic with its issuance: both are in the job's savepoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "est/internal.h"
#include "store/store.h"
#include "util/log.h"

struct est_job {
    struct est_req r; /* the request as dispatched, for the answer and its log line */
    struct evhttp_connection *conn;
    int gone; /* the client closed the connection: nothing to run or answer */
    int reenroll;
    char user[PKI_NAME_MAX + 1];
    char token[PKI_TOKEN_TEXT_MAX];
    struct pki_csr *csr;
    X509 *peer;         /* reenroll: the current certificate (up-referenced) */
    X509_NAME *subject; /* reenroll: the CSR's subject */
    X509 *cert;         /* issued, waiting for the commit */
    struct tw_err err;  /* why the job failed */
    int rc;
};

/* Stop hearing about j's connection (before answering: the answer may end it). */
static void unwatch(struct est_job *j)
{
    if (j->conn != NULL && !j->gone)
        evhttp_connection_set_closecb(j->conn, NULL, NULL);
    j->conn = NULL;
}

static void job_free(struct est_job *j)
{
    unwatch(j);
    OPENSSL_cleanse(j->token, sizeof(j->token));
    pki_csr_free(j->csr);
    X509_free(j->peer);
    X509_NAME_free(j->subject);
    X509_free(j->cert);
    free(j);
}

static void on_client_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct est_job *j = arg;
    j->gone = 1; /* evhttp frees the request after this returns */
}

static void run_job(struct pki_ca *ca, struct est_job *j)
{
    tw_err_clear(&j->err);
    if (j->reenroll)
        j->rc = pki_ca_reenroll(ca, j->peer, j->csr, j->subject, j->r.label, &j->cert, &j->err);
    else
        j->rc = pki_ca_enroll_token(ca, j->user, j->token, j->csr, j->r.label, &j->cert, &j->err);
    OPENSSL_cleanse(j->token, sizeof(j->token));
}

static void answer(struct est_job *j)
{
    if (j->gone)
        return;
    unwatch(j);
    if (j->rc == 0)
        est_send_cert(&j->r, j->cert);
    else
        est_fail(&j->r, &j->err, j->reenroll ? 403 : 401);
}

struct batch {
    struct pki_ca *ca;
    struct est_job **jobs;
    size_t n;
};

/* Inside the group's transaction: each job is a nested transaction of its own, so one that
 * fails is rolled back alone and the batch goes on. */
static int run_batch(struct store *s, void *ctx, struct tw_err *err)
{
    (void)s;
    (void)err;
    struct batch *b = ctx;
    for (size_t i = 0; i < b->n; i++)
        if (!b->jobs[i]->gone)
            run_job(b->ca, b->jobs[i]);
    return 0;
}

/* Token jobs in token order, re-enrollments after. Every instance sharing one PostgreSQL
 * inventory then locks token rows in the same order, so two groups can wait for each other
 * only one way, never in a cycle (a deadlock PostgreSQL would break by failing a request). */
static int job_order(const void *a, const void *b)
{
    const struct est_job *x = *(struct est_job *const *)a, *y = *(struct est_job *const *)b;
    if (x->reenroll != y->reenroll)
        return x->reenroll - y->reenroll;
    return strcmp(x->token, y->token);
}

void est_group_flush(struct est_server *srv)
{
    struct est_group *g = &srv->group;
    size_t n = g->n;
    if (n == 0)
        return;
    g->n = 0; /* jobs added while answering start a new group */
    struct est_job *jobs[EST_GROUP_MAX];
    memcpy(jobs, g->jobs, n * sizeof(jobs[0]));
    qsort(jobs, n, sizeof(jobs[0]), job_order);
    struct batch b = {srv->opts->ca, jobs, n};
    struct tw_err err;
    if (store_transaction(pki_ca_store(b.ca), run_batch, &b, &err) != 0) {
        /* Not begun or not committed: no row of this group exists, so no job succeeded. */
        err.code = TW_ERR_STORE;
        for (size_t i = 0; i < n; i++) {
            X509_free(jobs[i]->cert);
            jobs[i]->cert = NULL;
            jobs[i]->rc = -1;
            jobs[i]->err = err;
        }
    }
    g->groups++;
    g->jobs_run += n;
    for (size_t i = 0; i < n; i++) {
        answer(jobs[i]);
        job_free(jobs[i]);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    est_group_flush(arg);
}

int est_group_start(struct est_server *srv, struct tw_err *err)
{
    srv->group.flush = event_new(srv->base, -1, 0, on_flush, srv);
    TW_ENSURE(srv->group.flush != NULL, err, TW_ERR_INTERNAL, "cannot make the group commit event");
    return 0;
}

void est_group_stop(struct est_server *srv)
{
    struct est_group *g = &srv->group;
    for (size_t i = 0; i < g->n; i++) /* never begun: nothing to roll back, nothing issued */
        job_free(g->jobs[i]);
    g->n = 0;
    if (g->groups > 0)
        log_info("ca serve: %llu enrollments in %llu group commits", g->jobs_run, g->groups);
    if (g->flush != NULL)
        event_free(g->flush);
    g->flush = NULL;
}

/* Queue j (taken) into the current group; answers 500 itself when it cannot. */
static void add(struct est_req *r, struct est_job *j)
{
    struct est_group *g = &r->srv->group;
    if (g->n == EST_GROUP_MAX)
        est_group_flush(r->srv);
    j->r = *r;
    j->conn = evhttp_request_get_connection(r->req);
    if (j->conn == NULL || g->flush == NULL) {
        struct tw_err err;
        tw_err_set(&err, TW_ERR_INTERNAL, "cannot queue the enrollment");
        est_fail(r, &err, 500);
        job_free(j);
        return;
    }
    evhttp_connection_set_closecb(j->conn, on_client_gone, j);
    g->jobs[g->n++] = j;
    if (g->n == 1)
        event_active(g->flush, 0, 0);
}

static struct est_job *job_new(struct est_req *r, struct pki_csr *csr)
{
    struct est_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        struct tw_err err;
        tw_err_set(&err, TW_ERR_INTERNAL, "out of memory");
        est_fail(r, &err, 500);
        pki_csr_free(csr);
        return NULL;
    }
    j->csr = csr;
    return j;
}

void est_group_enroll(struct est_req *r, const char *user, const char *token, struct pki_csr *csr)
{
    struct est_job *j = job_new(r, csr);
    if (j == NULL)
        return;
    snprintf(j->user, sizeof(j->user), "%s", user);
    snprintf(j->token, sizeof(j->token), "%s", token);
    add(r, j);
}

void est_group_reenroll(struct est_req *r, X509 *peer, X509_NAME *subject, struct pki_csr *csr)
{
    struct est_job *j = job_new(r, csr);
    if (j == NULL) {
        X509_NAME_free(subject);
        return;
    }
    X509_up_ref(peer);
    j->reenroll = 1;
    j->peer = peer;
    j->subject = subject;
    add(r, j);
}
