/* Copying a whole inventory between stores (`twoway ca migrate`), and the per-table summary
 * (row count + SHA-256) that proves the copy: each row is hashed from its fields as the API
 * reads them, and the row hashes are added modulo 2^256, so the sum does not depend on the
 * order a back end lists rows in. */
#include "store/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "util/buf.h"

enum { T_CERTS, T_TOKENS, T_AUDIT, T_PENDING, T_CRL };
static const char *const table_names[STORE_COPY_TABLES] = {"certs", "tokens", "audit",
                                                           "pending_requests", "crl_counter"};

struct sum {
    unsigned char acc[32];
    int64_t rows;
    int failed;
};

/* Fields separated by 0x1f, NULL-able text marked, so ("a", "bc") and ("ab", "c") differ. */
static void sum_row(struct sum *sm, const char *const *fields, size_t n)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char h[32];
    unsigned int len = 0;
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(md, fields[i], strlen(fields[i]) + 1) == 1;
    ok = ok && EVP_DigestFinal_ex(md, h, &len) == 1 && len == 32;
    EVP_MD_CTX_free(md);
    if (!ok) {
        sm->failed = 1;
        return;
    }
    unsigned carry = 0;
    for (int i = 31; i >= 0; i--) {
        carry += (unsigned)sm->acc[i] + h[i];
        sm->acc[i] = (unsigned char)carry;
        carry >>= 8;
    }
    sm->rows++;
}

static int sum_cert(const struct store_cert *c, void *ctx)
{
    char nb[24], na[24], ia[24], ra[24], rr[16];
    snprintf(nb, sizeof(nb), "%" PRId64, c->not_before);
    snprintf(na, sizeof(na), "%" PRId64, c->not_after);
    snprintf(ia, sizeof(ia), "%" PRId64, c->issued_at);
    snprintf(ra, sizeof(ra), "%" PRId64, c->revoked_at);
    snprintf(rr, sizeof(rr), "%d", c->revoke_reason);
    const char *f[] = {c->serial,
                       c->name,
                       c->subject,
                       c->sans,
                       c->profile,
                       c->issuer,
                       c->sha256,
                       nb,
                       na,
                       ia,
                       c->status == STORE_REVOKED ? "revoked" : "valid",
                       ra,
                       rr,
                       c->pem != NULL ? "pem" : "no-pem",
                       c->pem != NULL ? c->pem : ""};
    sum_row(ctx, f, sizeof(f) / sizeof(f[0]));
    return 0;
}

static int sum_token(const struct store_token *t, void *ctx)
{
    char lt[24], ca[24], ea[24], ua[24];
    snprintf(lt, sizeof(lt), "%" PRId64, t->lifetime);
    snprintf(ca, sizeof(ca), "%" PRId64, t->created_at);
    snprintf(ea, sizeof(ea), "%" PRId64, t->expires_at);
    snprintf(ua, sizeof(ua), "%" PRId64, t->used_at);
    const char *f[] = {t->hash, t->name, t->sans, t->profile, lt, ca, ea, ua, t->serial};
    sum_row(ctx, f, sizeof(f) / sizeof(f[0]));
    return 0;
}

static int sum_audit(const struct store_audit *a, void *ctx)
{
    char id[24], at[24];
    snprintf(id, sizeof(id), "%" PRId64, a->id);
    snprintf(at, sizeof(at), "%" PRId64, a->at);
    const char *f[] = {id, at, a->action, a->subject, a->serial, a->result};
    sum_row(ctx, f, sizeof(f) / sizeof(f[0]));
    return 0;
}

/* Every column; the CSR as the lower-case hex it is stored as. */
static int sum_pending(const struct store_pending *p, void *ctx)
{
    struct sum *sm = ctx;
    char *csr = malloc(2 * p->csr_len + 1);
    if (csr == NULL) {
        sm->failed = 1;
        return 1;
    }
    tw_hex_encode(p->csr, p->csr_len, csr);
    char ca[24], da[24], lt[24];
    snprintf(ca, sizeof(ca), "%" PRId64, p->created_at);
    snprintf(da, sizeof(da), "%" PRId64, p->decided_at);
    snprintf(lt, sizeof(lt), "%" PRId64, p->lifetime);
    const char *f[] = {p->id, csr,      p->name, p->subject, p->sans,   p->profile, p->peer,
                       ca,    p->state, da,      lt,         p->reason, p->serial};
    sum_row(sm, f, sizeof(f) / sizeof(f[0]));
    free(csr);
    return 0;
}

int store_checksum(struct store *s, struct store_copy_report *out, struct tw_err *err)
{
    struct sum sums[STORE_COPY_TABLES];
    memset(sums, 0, sizeof(sums));
    struct store_filter all = {.status = -1};
    TW_GUARD(s->ops->cert_list(s, &all, sum_cert, &sums[T_CERTS], err));
    TW_GUARD(s->ops->token_list(s, sum_token, &sums[T_TOKENS], err));
    TW_GUARD(s->ops->audit_list(s, sum_audit, &sums[T_AUDIT], err));
    TW_GUARD(store_pending_export(s, sum_pending, &sums[T_PENDING], err));
    int64_t last = 0;
    TW_GUARD(s->ops->crl_counter(s, &last, err));
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, last);
    const char *f[] = {num};
    sum_row(&sums[T_CRL], f, 1);
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < STORE_COPY_TABLES; i++) {
        TW_ENSURE(!sums[i].failed, err, TW_ERR_INTERNAL, "SHA-256 unavailable");
        out->tables[i].table = table_names[i];
        out->tables[i].rows = sums[i].rows;
        for (int b = 0; b < 32; b++)
            snprintf(out->tables[i].sha256 + 2 * b, 3, "%02x", sums[i].acc[b]);
    }
    return 0;
}

/* ------------------------------------------------------------------ copying */

struct copy {
    struct store *dst;
    struct tw_err *err;
    int failed;
};

static int copy_cert(const struct store_cert *c, void *ctx)
{
    struct copy *cp = ctx;
    if (cp->dst->ops->cert_put(cp->dst, c, cp->err) != 0 ||
        (c->status == STORE_REVOKED &&
         cp->dst->ops->cert_revoke(cp->dst, c->serial, c->revoke_reason, c->revoked_at, cp->err) !=
             0))
        cp->failed = 1;
    return cp->failed;
}

static int copy_token(const struct store_token *t, void *ctx)
{
    struct copy *cp = ctx;
    if (cp->dst->ops->token_import(cp->dst, t, cp->err) != 0)
        cp->failed = 1;
    return cp->failed;
}

static int copy_audit(const struct store_audit *a, void *ctx)
{
    struct copy *cp = ctx;
    if (cp->dst->ops->audit_import(cp->dst, a, cp->err) != 0)
        cp->failed = 1;
    return cp->failed;
}

static int copy_pending(const struct store_pending *p, void *ctx)
{
    struct copy *cp = ctx;
    if (store_pending_import(cp->dst, p, cp->err) != 0)
        cp->failed = 1;
    return cp->failed;
}

struct copy_job {
    struct store *src;
    struct store_copy_report *rep;
};

static int copy_all(struct store *dst, void *ctx, struct tw_err *err)
{
    struct copy_job *job = ctx;
    struct store *src = job->src;
    struct store_copy_report before, after;
    TW_GUARD(store_checksum(dst, &before, err));
    for (int i = 0; i < T_CRL; i++)
        TW_ENSURE(before.tables[i].rows == 0, err, TW_ERR_EXISTS,
                  "%s is not empty (%s holds %" PRId64 " rows): migrate only into a new store",
                  dst->path, before.tables[i].table, before.tables[i].rows);
    struct copy cp = {dst, err, 0};
    struct store_filter all = {.status = -1};
    TW_GUARD(src->ops->cert_list(src, &all, copy_cert, &cp, err));
    TW_GUARD(cp.failed ? -1 : src->ops->token_list(src, copy_token, &cp, err));
    TW_GUARD(cp.failed ? -1 : src->ops->audit_list(src, copy_audit, &cp, err));
    TW_GUARD(cp.failed ? -1 : store_pending_export(src, copy_pending, &cp, err));
    TW_GUARD(cp.failed ? -1 : 0);
    int64_t last = 0;
    TW_GUARD(src->ops->crl_counter(src, &last, err));
    TW_GUARD(dst->ops->crl_counter_set(dst, last, err));
    /* Verify inside the transaction: a mismatch rolls everything back. */
    TW_GUARD(store_checksum(src, &before, err));
    TW_GUARD(store_checksum(dst, &after, err));
    for (int i = 0; i < STORE_COPY_TABLES; i++) {
        TW_ENSURE(before.tables[i].rows == after.tables[i].rows, err, TW_ERR_STORE,
                  "copy check failed: %s has %" PRId64 " rows in %s but %" PRId64 " in %s",
                  before.tables[i].table, before.tables[i].rows, src->path, after.tables[i].rows,
                  dst->path);
        TW_ENSURE(strcmp(before.tables[i].sha256, after.tables[i].sha256) == 0, err, TW_ERR_STORE,
                  "copy check failed: the %s checksums of %s and %s differ", before.tables[i].table,
                  src->path, dst->path);
    }
    *job->rep = after;
    return 0;
}

int store_copy(struct store *src, struct store *dst, struct store_copy_report *rep,
               struct tw_err *err)
{
    struct copy_job job = {src, rep};
    return store_transaction(dst, copy_all, &job, err);
}
