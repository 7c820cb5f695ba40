/* twoway doctor: connect to HOST:PORT, show each step of the two-way handshake as it happens,
 * then say in plain words what went wrong and how to fix it. Without HOST:PORT, check a
 * certificate file offline the same way. Exit 0 when the mutual handshake (or the file) is
 * fine, 1 otherwise, 2 on usage errors. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/prov_ssl.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "cli/flags.h"
#include "keystore/keystore.h"
#include "util/clock.h"

static const char usage[] =
    "usage: twoway doctor HOST:PORT [--cert F --key F] [--ca F] [--server-name N]\n"
    "                     [--timeout D] [--verdict-wait D] [--tls-min V] [--tls-max V]\n"
    "                     [--ciphers L] "
    "[--json]\n"
    "       twoway doctor --cert F [--key F] [--ca F] [--crl F] [--role R] [--json]\n\n"
    "Runs one two-way TLS handshake against HOST:PORT and prints each step: ClientHello,\n"
    "ServerHello, the server's chain and whether it verifies against --ca and the name,\n"
    "the CA names and signature algorithms of the CertificateRequest, the client\n"
    "certificate sent, and the server's verdict (a TLS 1.3 server refuses a client\n"
    "certificate only after the handshake: doctor waits for that alert). Then a\n"
    "diagnosis in plain words, with the fix. Without HOST:PORT it checks certificate\n"
    "files offline: validity, extended key usage, key match, chain to --ca.\n"
    "Exit 0 when the two-way handshake (or the certificate) is fine, 1 otherwise.\n\n"
    "options:\n"
    "  --cert FILE         client certificate (PEM: certificate, then its chain)\n"
    "  --key FILE          its private key (0600)\n"
    "  --pin-file F        PIN of a key in a PKCS#11 token (0600 file, first line)\n"
    "  --pkcs11-module M   the PKCS#11 module (.so) when the key's URI names none\n"
    "  --ca FILE           CAs trusted for the server's certificate (default: system);\n"
    "                      offline: the CAs the certificate must chain to\n"
    "  --server-name NAME  name the server's certificate must hold (default: HOST)\n"
    "  --timeout D         connect and read timeout (default 10s)\n"
    "  --verdict-wait D    how long to wait after the handshake for a refusal\n"
    "                      (default 1s; longer for servers that check OCSP first)\n"
    "  --tls-min V, --tls-max V   1.2 or 1.3 (default 1.2 .. 1.3)\n"
    "  --ciphers LIST      TLS 1.2 cipher list (default: ECDHE with AEAD)\n"
    "  --crl FILE          offline: also check revocation against this CRL\n"
    "  --role client|server  offline: the use to check (default: from the certificate)\n"
    "  --json              one JSON object on stdout instead of the narration\n\n"
    "examples:\n"
    "  twoway doctor gw.example.com:8443 --cert alice.chain.pem --key alice.key "
    "--ca chain.pem\n"
    "  twoway doctor 127.0.0.1:8443 --server-name localhost --ca chain.pem\n"
    "  twoway doctor --cert alice.crt --key alice.key --ca twoway-data/ca/chain.pem\n";

struct opts {
    struct flags_tls tls;
    const char *target, *crl, *server_name, *ciphers;
    char host[256], port[8];
    int64_t timeout_s;
    int64_t verdict_s;
    int tls_min, tls_max;
    int role; /* enum tlsx_cert_role */
    bool json;
};

static const struct flag_choice versions[] = {
    {"1.2", TLS1_2_VERSION},
    {"1.3", TLS1_3_VERSION},
    {NULL, 0},
};

static const struct flag_choice roles[] = {
    {"client", TLSX_ROLE_CLIENT},
    {"server", TLSX_ROLE_SERVER},
    {NULL, 0},
};

#define AT(field) offsetof(struct opts, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(tls), .group = flags_tls_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "crl", .kind = FLAG_STRING, .off = AT(crl)},
    {.name = "server-name", .kind = FLAG_STRING, .off = AT(server_name)},
    {.name = "ciphers", .kind = FLAG_STRING, .off = AT(ciphers)},
    {.name = "json", .kind = FLAG_BOOL, .off = AT(json)},
    {.name = "timeout",
     .kind = FLAG_DURATION,
     .off = AT(timeout_s),
     .min = 1,
     .max = 3600,
     .bad = "give 1s to 1h"},
    {.name = "verdict-wait",
     .kind = FLAG_DURATION,
     .off = AT(verdict_s),
     .min = 1,
     .max = 60,
     .bad = "give 1s to 1m"},
    {.name = "tls-min", .kind = FLAG_CHOICE, .off = AT(tls_min), .choices = versions},
    {.name = "tls-max", .kind = FLAG_CHOICE, .off = AT(tls_max), .choices = versions},
    {.name = "role", .kind = FLAG_CHOICE, .off = AT(role), .choices = roles},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {
    .cmd = "doctor", .usage = usage, .flags = flags, .nargs = FLAGS_ANY_ARGS};

static int parse(int argc, char **argv, struct opts *o)
{
    int nargs = 0;
    int rc = flags_parse(&flag_set, o, argc, argv, &nargs);
    if (rc != FLAGS_GO_ON)
        return rc;
    if (nargs > 1)
        return cli_usage_error("doctor", "one HOST:PORT only ('%s')", argv[2]);
    o->target = nargs == 1 ? argv[1] : NULL;
    if (o->target == NULL && o->tls.cert == NULL)
        return cli_usage_error("doctor", "give HOST:PORT, or --cert FILE to check offline");
    if (o->target != NULL && o->tls.cert != NULL && o->tls.key == NULL)
        return cli_usage_error("doctor", "--cert needs --key to present the certificate");
    if (o->target == NULL && o->tls.key != NULL && o->tls.cert == NULL)
        return cli_usage_error("doctor", "--key needs --cert");
    if (o->target != NULL)
        return flags_host_port("doctor", o->target, o->host, sizeof(o->host), o->port,
                               sizeof(o->port));
    return FLAGS_GO_ON;
}

struct step_ctx {
    const struct doctor_facts *facts;
    bool quiet;
};

static void on_step(enum tlsx_probe_step step, const struct tlsx_probe *p, void *arg)
{
    const struct step_ctx *sc = arg;
    if (!sc->quiet)
        doctor_print_step(stdout, step, p, sc->facts);
}

static int finish(const struct doctor_facts *facts, bool json)
{
    struct doctor_diagnosis *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return 1;
    doctor_diagnose(facts, d);
    if (json) {
        json_t *o = doctor_json(facts, d);
        char *text = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        doctor_print_diagnosis(stdout, facts, d);
    }
    int rc = d->ok ? 0 : 1;
    free(d);
    return rc;
}

/* The key in a token or TPM could not be used: say which key and where, then the store's
 * reason; for a refused PIN, what to fix (the PIN was tried once, as it always is). */
static void hw_key_failure(const char *key, const char *where, const struct tw_err *err)
{
    fprintf(stderr, "twoway doctor: the key %s is %s, and it cannot be used:\n", key, where);
    if (strstr(err->msg, "wrong PIN") != NULL)
        fprintf(stderr, "twoway doctor: the token refused the PIN. Put the token's user PIN "
                        "on the first line of the PIN file (pin-source=file: in the key's "
                        "URI, --pin-file, or $TWOWAY_PKCS11_PIN_FILE). It was tried once and "
                        "will not be tried again: each wrong try counts towards locking "
                        "the token.\n");
}

static int check_files(const struct opts *o, struct doctor_facts *facts,
                       struct tlsx_file_check *mine)
{
    struct tlsx_file_check_opts fo = {.cert_file = o->tls.cert,
                                      .key_file = o->tls.key,
                                      .ca_file = o->tls.ca,
                                      .crl_file = o->target == NULL ? o->crl : NULL,
                                      .role = o->target != NULL ? TLSX_ROLE_CLIENT
                                                                : (enum tlsx_cert_role)o->role,
                                      .now = facts->now};
    struct tw_err err;
    tw_err_clear(&err);
    if (o->tls.key != NULL) /* a token or TPM: say so, the success and failures differ */
        keystore_describe(o->tls.key, facts->key_where, sizeof(facts->key_where));
    if (tlsx_file_check(&fo, mine, &err) != 0) {
        if (facts->key_where[0] != '\0')
            hw_key_failure(o->tls.key, facts->key_where, &err);
        return cli_fail(&err);
    }
    facts->mine = mine;
    facts->key_unusable = mine->key_checked && !mine->key_match;
    return -1;
}

static int run(const struct opts *o)
{
    struct doctor_facts facts = {.online = o->target != NULL,
                                 .target = o->target,
                                 .cert_file = o->tls.cert,
                                 .key_file = o->tls.key,
                                 .ca_file = o->tls.ca,
                                 .crl_file = o->crl,
                                 .now = (int64_t)time(NULL)};
    struct tlsx_file_check *mine = calloc(1, sizeof(*mine));
    struct tlsx_probe *probe = calloc(1, sizeof(*probe));
    int rc = 1;
    if (mine == NULL || probe == NULL)
        goto out;
    if (o->tls.cert != NULL && (rc = check_files(o, &facts, mine)) >= 0)
        goto out;
    if (!o->json && facts.mine != NULL)
        doctor_print_files(stdout, &facts);
    if (facts.online) {
        if (!o->json)
            printf("%sProbing %s\n", facts.mine != NULL ? "\n" : "", o->target);
        struct step_ctx sc = {.facts = &facts, .quiet = o->json};
        struct tlsx_probe_opts po = {.host = o->host,
                                     .port = o->port,
                                     .server_name = o->server_name,
                                     .ca_file = o->tls.ca,
                                     .cert_file = facts.key_unusable ? NULL : o->tls.cert,
                                     .key_file = facts.key_unusable ? NULL : o->tls.key,
                                     .min_version = o->tls_min,
                                     .max_version = o->tls_max,
                                     .ciphers = o->ciphers,
                                     .timeout_ms = o->timeout_s * 1000,
                                     .verdict_ms = o->verdict_s * 1000,
                                     .on_step = on_step,
                                     .arg = &sc};
        facts.probe = probe;
        struct tw_err err;
        tw_err_clear(&err);
        if (tlsx_probe_run(&po, probe, &err) != 0) {
            rc = cli_fail(&err);
            goto out;
        }
    }
    rc = finish(&facts, o->json);
out:
    free(mine);
    free(probe);
    return rc;
}

int cli_doctor(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    return run(&o);
}
