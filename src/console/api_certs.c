/* /api/v1/certs: the inventory as JSON or CSV, one certificate (JSON, PEM, DER), revocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>

#include "console/internal.h"
#include "util/cleanup.h"

static json_t *row_json(const struct console_row *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "serial", r->serial, "name", r->name,
                     "profile", r->profile, "status", console_status_name(r->status),
                     "not_before", (json_int_t)r->not_before, "not_after",
                     (json_int_t)r->not_after, "revoked_at", (json_int_t)r->revoked_at);
}

/* RFC 4180 field: quoted, quotes doubled; a leading = + - @ gets a ' so a spreadsheet does
 * not run it as a formula. */
static int csv_field(struct tw_buf *b, const char *v, int last, struct tw_err *err)
{
    TW_GUARD(tw_buf_append(b, "\"", 1, err));
    if (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')
        TW_GUARD(tw_buf_append(b, "'", 1, err));
    for (const char *p = v; *p != '\0'; p++)
        TW_GUARD(*p == '"' ? tw_buf_append(b, "\"\"", 2, err) : tw_buf_append(b, p, 1, err));
    return tw_buf_append(b, last ? "\"\r\n" : "\",", last ? 3 : 2, err);
}

static void send_csv(struct console_req *q, const struct console_page *p)
{
    struct tw_buf b;
    tw_buf_init(&b, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = tw_buf_appendf(&b, &err, "serial,name,profile,status,not_before,not_after\r\n");
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        const struct console_row *r = &p->rows[i];
        char nb[24], na[24];
        snprintf(nb, sizeof(nb), "%lld", (long long)r->not_before);
        snprintf(na, sizeof(na), "%lld", (long long)r->not_after);
        rc = csv_field(&b, r->serial, 0, &err) || csv_field(&b, r->name, 0, &err) ||
             csv_field(&b, r->profile, 0, &err) ||
             csv_field(&b, console_status_name(r->status), 0, &err) ||
             csv_field(&b, nb, 0, &err) || csv_field(&b, na, 1, &err);
    }
    const char *h[] = {"Content-Disposition", "attachment; filename=\"certificates.csv\"", NULL};
    if (rc == 0)
        console_send(q, 200, "text/csv; charset=utf-8", b.data, b.len, h);
    else
        console_fail(q, 500, "the export is too large; narrow the search or use pages");
    tw_buf_free(&b);
}

void console_api_certs(struct console_req *q, const char *arg)
{
    (void)arg;
    struct console_page p;
    if (console_certs_search(q, &p) != 0)
        return;
    const char *format = console_param(q, "format");
    if (format != NULL && strcmp(format, "csv") == 0) {
        send_csv(q, &p);
        console_page_free(&p);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; items != NULL && i < p.n; i++)
        json_array_append_new(items, row_json(&p.rows[i]));
    console_send_json(q, 200,
                      json_pack("{s:I, s:I, s:I, s:o*}", "total", (json_int_t)p.total, "page",
                                (json_int_t)p.page, "per_page", (json_int_t)p.per_page, "items",
                                items));
    console_page_free(&p);
}

/* The certificate's status as the OCSP responder answers it right now: a real request
 * through pki_ocsp_respond, read back with OpenSSL. */
const char *console_ocsp_says(struct console *c, X509 *cert)
{
    if (c->o.ocsp_signer == NULL)
        return "unavailable";
    TW_AUTO(OCSP_REQUEST) *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, cert, pki_ca_intermediate_cert(c->o.ca));
    if (req == NULL || id == NULL || OCSP_request_add0_id(req, id) == NULL) {
        OCSP_CERTID_free(id);
        return "unavailable";
    }
    unsigned char *der = NULL, *resp_der = NULL;
    int len = i2d_OCSP_REQUEST(req, &der);
    size_t rlen = 0;
    int status = -1;
    struct tw_err err;
    int rc = len > 0 ? pki_ocsp_respond(c->o.ca, c->o.ocsp_signer, der, (size_t)len, time(NULL),
                                        PKI_OCSP_VALIDITY, &resp_der, &rlen, &status, &err)
                     : -1;
    OPENSSL_free(der);
    const char *answer = "unavailable";
    const unsigned char *p = resp_der;
    TW_AUTO(OCSP_RESPONSE) *resp =
        rc == 0 && status == OCSP_RESPONSE_STATUS_SUCCESSFUL ? d2i_OCSP_RESPONSE(NULL, &p, (long)rlen)
                                                             : NULL;
    OPENSSL_free(resp_der);
    TW_AUTO(OCSP_BASICRESP) *basic = resp != NULL ? OCSP_response_get1_basic(resp) : NULL;
    TW_AUTO(OCSP_CERTID) *want = OCSP_cert_to_id(NULL, cert, pki_ca_intermediate_cert(c->o.ca));
    int cs = -1, reason = -1;
    if (basic != NULL && want != NULL &&
        OCSP_resp_find_status(basic, want, &cs, &reason, NULL, NULL, NULL) == 1)
        answer = OCSP_cert_status_str(cs);
    return answer;
}

static json_t *cert_json(struct console *c, const struct store_cert *row, X509 *cert)
{
    EVP_PKEY *pk = cert != NULL ? X509_get0_pubkey(cert) : NULL;
    char key[64] = "?";
    if (pk != NULL)
        snprintf(key, sizeof(key), "%s %d bits", EVP_PKEY_get0_type_name(pk), EVP_PKEY_get_bits(pk));
    json_t *chain = json_pack("[s, s]", "intermediate", "root");
    char inter[STORE_SUBJECT_MAX] = "", root[STORE_SUBJECT_MAX] = "";
    struct tw_err err;
    if (pki_name_to_text(X509_get_subject_name(pki_ca_intermediate_cert(c->o.ca)), inter,
                         sizeof(inter), &err) == 0 &&
        pki_name_to_text(X509_get_subject_name(pki_ca_root_cert(c->o.ca)), root, sizeof(root),
                         &err) == 0) {
        json_decref(chain);
        chain = json_pack("[s, s, s]", row->subject, inter, root);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s?, s:s, "
                     "s:o*, s:s}",
                     "serial", row->serial, "name", row->name, "subject", row->subject, "sans",
                     row->sans, "profile", row->profile, "issuer", row->issuer, "sha256",
                     row->sha256, "status", console_status_name((int)row->status), "not_before",
                     (json_int_t)row->not_before, "not_after", (json_int_t)row->not_after,
                     "issued_at", (json_int_t)row->issued_at, "revoked_at",
                     (json_int_t)row->revoked_at, "revoke_reason",
                     row->revoke_reason >= 0 ? pki_reason_name(row->revoke_reason) : NULL,
                     "key", key, "chain", chain, "ocsp", cert != NULL ? console_ocsp_says(c, cert) : "?");
}

int console_cert_load(struct console_req *q, const char *serial, struct store_cert *row,
                      X509 **cert)
{
    struct tw_err err;
    memset(row, 0, sizeof(*row));
    if (store_cert_get(pki_ca_store(q->c->o.ca), serial, row, &err) != 0) {
        console_fail(q, console_status_of(&err),
                     err.code == TW_ERR_NOTFOUND ? "no certificate with that serial"
                                                 : "the inventory cannot be read");
        return -1;
    }
    *cert = row->pem != NULL ? pki_cert_from_pem(row->pem, strlen(row->pem), row->serial, &err)
                             : NULL;
    return 0;
}

void console_api_cert(struct console_req *q, const char *serial)
{
    struct store_cert row;
    X509 *cert = NULL;
    if (console_cert_load(q, serial, &row, &cert) != 0)
        return;
    const char *path = q->path;
    size_t n = strlen(path);
    char disp[128];
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s.%s\"", row.serial,
             n > 4 && strcmp(path + n - 4, "/der") == 0 ? "der" : "pem");
    const char *h[] = {"Content-Disposition", disp, NULL};
    if (n > 4 && strcmp(path + n - 4, "/pem") == 0) {
        console_send(q, 200, "application/x-pem-file", row.pem, strlen(row.pem), h);
    } else if (n > 4 && strcmp(path + n - 4, "/der") == 0) {
        unsigned char *der = NULL;
        int len = cert != NULL ? i2d_X509(cert, &der) : -1;
        if (len > 0)
            console_send(q, 200, "application/pkix-cert", der, (size_t)len, h);
        else
            console_fail(q, 500, "the certificate cannot be encoded");
        OPENSSL_free(der);
    } else {
        json_t *o = cert_json(q->c, &row, cert);
        if (o != NULL)
            json_object_set_new(o, "pem", json_string(row.pem));
        console_send_json(q, 200, o);
    }
    X509_free(cert);
    store_cert_clear(&row);
}

int console_do_revoke(struct console_req *q, const char *serial, const char *reason,
                      struct tw_err *err)
{
    int code = 0;
    char what[160];
    snprintf(what, sizeof(what), "revoke %.66s %.40s", serial, reason != NULL ? reason : "");
    int rc = reason == NULL ? tw_err_set(err, TW_ERR_USAGE, "reason is required (e.g. "
                                                            "keyCompromise, superseded)")
                            : pki_reason_parse(reason, &code, err);
    if (rc == 0 && !(console_form(q, "confirm") != NULL &&
                     strcmp(console_form(q, "confirm"), "yes") == 0))
        rc = tw_err_set(err, TW_ERR_USAGE, "confirm=yes is required to revoke");
    if (rc == 0)
        rc = pki_ca_revoke(q->c->o.ca, serial, code, (int64_t)time(NULL), err);
    if (rc == 0 && pki_ca_crl_write(q->c->o.ca, 0, NULL, NULL, NULL, NULL, err) != 0) {
        char msg[TW_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        tw_err_set(err, err->code, "revoked, but writing the CRL failed: %s", msg);
        rc = -1;
    }
    console_audit(q, "revoke", what, rc == 0 ? NULL : err);
    return rc;
}

void console_api_revoke(struct console_req *q, const char *serial)
{
    struct tw_err err;
    if (console_do_revoke(q, serial, console_form(q, "reason"), &err) != 0) {
        console_fail(q, console_status_of(&err), err.msg);
        return;
    }
    console_send_json(q, 200, json_pack("{s:s, s:s}", "serial", serial, "status", "revoked"));
}
