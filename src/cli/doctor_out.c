/* twoway doctor output: each handshake step as it happens, the certificate file summary, the
 * diagnosis, and the same report as JSON for scripts. */
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "cli/doctor.h"
#include "util/clock.h"

const char *doctor_time(int64_t t, char *buf, size_t cap)
{
    return clock_iso8601((time_t)t, buf, cap);
}

static void print_cert(FILE *out, const char *indent, const struct tlsx_cert_info *c, bool sans)
{
    char a[32], b[32];
    fprintf(out, "%ssubject  %s\n", indent, c->subject);
    fprintf(out, "%sissuer   %s\n", indent, c->issuer);
    fprintf(out, "%svalid    %s to %s\n", indent, doctor_time(c->not_before, a, sizeof(a)),
            doctor_time(c->not_after, b, sizeof(b)));
    if (sans)
        fprintf(out, "%snames    %s\n", indent, c->sans[0] != '\0' ? c->sans : "(no SAN)");
}

static const char *eku_text(const struct tlsx_cert_info *c)
{
    if (!c->has_eku)
        return "(none)";
    if (c->eku_client && c->eku_server)
        return "clientAuth, serverAuth";
    return c->eku_client ? "clientAuth" : c->eku_server ? "serverAuth" : "(other uses only)";
}

static void print_server_cert(FILE *out, const struct tlsx_probe *p, const struct doctor_facts *f)
{
    fprintf(out, "> Server certificate chain (%zu certificate%s):\n", p->nserver_chain,
            p->nserver_chain == 1 ? "" : "s");
    for (size_t i = 0; i < p->nserver_chain; i++) {
        fprintf(out, "    [%zu]\n", i);
        print_cert(out, "      ", &p->server_chain[i], i == 0);
    }
    const char *against = f->ca_file != NULL ? f->ca_file : "the system trust store";
    if (p->chain_err == X509_V_OK)
        fprintf(out, "    chain: trusted (verified against %s)\n", against);
    else
        fprintf(out, "    chain: NOT trusted: %s (at depth %d; checked against %s)\n",
                X509_verify_cert_error_string(p->chain_err), p->chain_err_depth, against);
    if (p->name_err == X509_V_OK)
        fprintf(out, "    name:  %s matches the certificate\n", p->server_name);
    else
        fprintf(out, "    name:  %s is NOT in the certificate's names\n", p->server_name);
}

static void print_cert_request(FILE *out, const struct tlsx_probe *p)
{
    if (p->nca_names_total == 0) {
        fprintf(out, "> CertificateRequest: the server asks for a client certificate (no CA "
                     "names given)\n");
    } else {
        fprintf(out, "> CertificateRequest: the server asks for a client certificate issued "
                     "by:\n");
        for (size_t i = 0; i < p->nca_names; i++)
            fprintf(out, "      %s\n", p->ca_names[i]);
        if (p->nca_names_total > p->nca_names)
            fprintf(out, "      (+%zu more)\n", p->nca_names_total - p->nca_names);
    }
    fprintf(out, "    signature algorithms:");
    size_t col = 26;
    for (size_t i = 0; i < p->nsigalgs; i++) {
        size_t w = strlen(p->sigalgs[i]) + 2;
        if (i > 0 && col + w > 96) {
            fprintf(out, ",\n     ");
            col = 5;
        } else if (i > 0) {
            fputc(',', out);
        }
        fprintf(out, " %s", p->sigalgs[i]);
        col += w;
    }
    fprintf(out, "%s\n", p->nsigalgs == 0 ? " (none listed)" : "");
}

static void print_verdict(FILE *out, const struct tlsx_probe *p)
{
    if (!p->tcp_ok)
        return;
    if (p->accepted && p->client_cert_sent)
        fprintf(out,
                "> Verdict: the server accepted the client certificate (two-way TLS "
                "established in %lld ms)\n",
                (long long)p->elapsed_ms);
    else if (p->accepted)
        fprintf(out, "> Verdict: the server accepted the connection%s\n",
                p->cert_requested ? " without a client certificate" : "");
    else
        fprintf(out, "> Verdict: refused: %s%s%s\n", tlsx_reason_text(p->reason),
                p->detail[0] != '\0' ? " - " : "", p->detail);
}

void doctor_print_step(FILE *out, enum tlsx_probe_step step, const struct tlsx_probe *p,
                       const struct doctor_facts *f)
{
    switch (step) {
    case TLSX_STEP_TCP:
        if (p->tcp_ok)
            fprintf(out, "> TCP connected to %s\n", p->address);
        else
            fprintf(out, "> TCP connection to %s failed: %s\n", p->address, p->detail);
        break;
    case TLSX_STEP_CLIENT_HELLO:
        fprintf(out, "> ClientHello sent (checking the server as %s)\n", p->server_name);
        break;
    case TLSX_STEP_SERVER_HELLO:
        fprintf(out, "> ServerHello: %s, cipher %s\n", p->version, p->cipher);
        break;
    case TLSX_STEP_SERVER_CERT:
        print_server_cert(out, p, f);
        break;
    case TLSX_STEP_CERT_REQUEST:
        print_cert_request(out, p);
        break;
    case TLSX_STEP_CLIENT_CERT:
        if (p->client_cert_sent)
            fprintf(out, "> Client certificate sent: %s (issuer %s; %zu certificate%s)\n",
                    p->client_cert.subject, p->client_cert.issuer, p->client_certs_sent,
                    p->client_certs_sent == 1 ? "" : "s");
        else
            fprintf(out, "> No client certificate sent (empty Certificate message)\n");
        break;
    case TLSX_STEP_ALERT:
        if (p->alert_last_sent)
            fprintf(out, "> Alert sent: %s\n", tlsx_alert_name(p->alert_sent));
        else
            fprintf(out, "> Alert received from the server: %s%s\n",
                    tlsx_alert_name(p->alert_received),
                    p->alert_after_handshake ? " (after the handshake)" : "");
        break;
    case TLSX_STEP_HANDSHAKE_DONE:
        fprintf(out, "> Handshake finished on this side; waiting for the server's verdict\n");
        break;
    case TLSX_STEP_VERDICT:
        print_verdict(out, p);
        break;
    }
    fflush(out);
}

void doctor_print_files(FILE *out, const struct doctor_facts *f)
{
    const struct tlsx_file_check *m = f->mine;
    if (m == NULL)
        return;
    fprintf(out, "Certificate %s (checked as a %s certificate):\n", f->cert_file,
            m->role == TLSX_ROLE_SERVER ? "server" : "client");
    print_cert(out, "    ", &m->leaf, true);
    fprintf(out, "    usage    %s\n", eku_text(&m->leaf));
    fprintf(out, "    serial   %s\n", m->leaf.serial_hex);
    for (size_t i = 0; i < m->nchain; i++)
        fprintf(out, "    chain[%zu] %s (issuer %s)\n", i + 1, m->chain[i].subject,
                m->chain[i].issuer);
    if (m->key_checked)
        fprintf(out, "    key      %s %s\n", f->key_file,
                m->key_match ? "matches" : "does NOT match");
    if (f->key_where[0] != '\0')
        fprintf(out, "    held     %s: it signs there, the private key never leaves it\n",
                f->key_where);
    if (m->chain_checked && !f->online) {
        if (m->chain_err == X509_V_OK)
            fprintf(out, "    chain    verifies against %s%s\n", f->ca_file,
                    f->crl_file != NULL ? " (not revoked)" : "");
        else
            fprintf(out, "    chain    does NOT verify against %s: %s\n", f->ca_file,
                    X509_verify_cert_error_string(m->chain_err));
    }
}

void doctor_print_diagnosis(FILE *out, const struct doctor_facts *f,
                            const struct doctor_diagnosis *d)
{
    (void)f;
    if (d->n > 0)
        fprintf(out, "\nDiagnosis:\n");
    for (size_t i = 0; i < d->n; i++) {
        fprintf(out, "  %s [%s] %s\n", d->f[i].fatal ? "problem:" : "warning:", d->f[i].code,
                d->f[i].problem);
        fprintf(out, "      fix: %s\n", d->f[i].fix);
    }
    if (f->online && d->ok && f->key_where[0] != '\0' && f->probe != NULL &&
        f->probe->client_cert_sent)
        fprintf(out, "\nThe client's handshake signature (CertificateVerify) was made %s.\n",
                f->key_where);
    if (f->online)
        fprintf(out, "\nResult: %s\n",
                d->ok ? "two-way TLS handshake OK" : "two-way TLS handshake FAILED");
    else
        fprintf(out, "\nResult: %s\n", d->ok ? "certificate OK" : "certificate has problems");
}

/* ---- JSON -------------------------------------------------------------------------------- */

static json_t *cert_json(const struct tlsx_cert_info *c)
{
    char a[32], b[32];
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "subject", c->subject, "issuer",
                     c->issuer, "names", c->sans, "serial", c->serial_hex, "not_before",
                     doctor_time(c->not_before, a, sizeof(a)), "not_after",
                     doctor_time(c->not_after, b, sizeof(b)), "self_signed", c->self_signed, "ca",
                     c->is_ca);
}

static json_t *alert_json(int alert)
{
    return alert >= 0 ? json_string(tlsx_alert_name(alert)) : json_null();
}

static json_t *verify_json(long err)
{
    return err == X509_V_OK ? json_string("ok") : json_string(X509_verify_cert_error_string(err));
}

static json_t *probe_json(const struct tlsx_probe *p)
{
    json_t *chain = json_array(), *cas = json_array(), *algs = json_array();
    for (size_t i = 0; i < p->nserver_chain; i++)
        json_array_append_new(chain, cert_json(&p->server_chain[i]));
    for (size_t i = 0; i < p->nca_names; i++)
        json_array_append_new(cas, json_string(p->ca_names[i]));
    for (size_t i = 0; i < p->nsigalgs; i++)
        json_array_append_new(algs, json_string(p->sigalgs[i]));
    json_t *o = json_pack(
        "{s:s, s:b, s:b, s:s, s:s, s:o, s:{s:s, s:o, s:o}, s:b, s:o, s:o, s:b, s:I, s:o}",
        "address", p->address, "tcp", p->tcp_ok, "server_hello", p->server_hello, "version",
        p->version, "cipher", p->cipher, "server_chain", chain, "server_check", "name",
        p->server_name, "chain", verify_json(p->chain_err), "name_check", verify_json(p->name_err),
        "certificate_requested", p->cert_requested, "ca_names", cas, "signature_algorithms", algs,
        "client_certificate_sent", p->client_cert_sent, "client_certificates_sent",
        (json_int_t)p->client_certs_sent, "alert_received", alert_json(p->alert_received));
    if (o == NULL)
        return json_null();
    json_object_set_new(o, "alert_sent", alert_json(p->alert_sent));
    json_object_set_new(o, "alert_after_handshake", json_boolean(p->alert_after_handshake));
    json_object_set_new(o, "handshake_done", json_boolean(p->handshake_done));
    json_object_set_new(o, "accepted", json_boolean(p->accepted));
    json_object_set_new(o, "server_closed", json_boolean(p->server_closed));
    json_object_set_new(o, "reason", json_string(tlsx_reason_code(p->reason)));
    json_object_set_new(o, "detail", json_string(p->detail));
    json_object_set_new(o, "elapsed_ms", json_integer(p->elapsed_ms));
    if (p->client_cert_sent)
        json_object_set_new(o, "client_certificate", cert_json(&p->client_cert));
    return o;
}

static json_t *file_json(const struct doctor_facts *f)
{
    const struct tlsx_file_check *m = f->mine;
    json_t *o =
        json_pack("{s:s, s:o, s:s, s:b}", "file", f->cert_file, "certificate", cert_json(&m->leaf),
                  "role", m->role == TLSX_ROLE_SERVER ? "server" : "client", "eku_ok", m->eku_ok);
    if (o == NULL)
        return json_null();
    json_object_set_new(o, "key_store", f->key_where[0] != '\0' ? json_string(f->key_where)
                                                                : json_null());
    json_object_set_new(o, "key_match", m->key_checked ? json_boolean(m->key_match) : json_null());
    json_object_set_new(o, "chain", m->chain_checked ? verify_json(m->chain_err) : json_null());
    json_object_set_new(o, "validity", json_string(tlsx_reason_code(m->validity)));
    return o;
}

json_t *doctor_json(const struct doctor_facts *f, const struct doctor_diagnosis *d)
{
    json_t *findings = json_array();
    for (size_t i = 0; i < d->n; i++)
        json_array_append_new(findings, json_pack("{s:s, s:b, s:s, s:s}", "code", d->f[i].code,
                                                  "fatal", d->f[i].fatal, "problem",
                                                  d->f[i].problem, "fix", d->f[i].fix));
    json_t *o = json_pack("{s:b, s:o}", "ok", d->ok, "diagnosis", findings);
    if (o == NULL)
        return NULL;
    if (f->online) {
        json_object_set_new(o, "target", json_string(f->target));
        json_object_set_new(o, "handshake", probe_json(f->probe));
    }
    if (f->mine != NULL)
        json_object_set_new(o, "certificate", file_json(f));
    return o;
}
