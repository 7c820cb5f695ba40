/* twoway doctor: connect to HOST:PORT, show each step of the two-way handshake as it happens,
 * then say in plain words what went wrong and how to fix it. Without HOST:PORT, check a
 * certificate file offline the same way. Exit 0 when the mutual handshake (or the file) is
 * fine, 1 otherwise, 2 on usage errors. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/prov_ssl.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "util/clock.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: twoway doctor HOST:PORT [--cert F --key F] [--ca F] [--server-name N]\n"
            "                     [--timeout D] [--tls-min V] [--tls-max V] [--ciphers L] "
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
            "  --ca FILE           CAs trusted for the server's certificate (default: system);\n"
            "                      offline: the CAs the certificate must chain to\n"
            "  --server-name NAME  name the server's certificate must hold (default: HOST)\n"
            "  --timeout D         connect and read timeout (default 10s)\n"
            "  --tls-min V, --tls-max V   1.2 or 1.3 (default 1.2 .. 1.3)\n"
            "  --ciphers LIST      TLS 1.2 cipher list (default: ECDHE with AEAD)\n"
            "  --crl FILE          offline: also check revocation against this CRL\n"
            "  --role client|server  offline: the use to check (default: from the certificate)\n"
            "  --json              one JSON object on stdout instead of the narration\n\n"
            "examples:\n"
            "  twoway doctor gw.example.com:8443 --cert alice.chain.pem --key alice.key "
            "--ca chain.pem\n"
            "  twoway doctor 127.0.0.1:8443 --server-name localhost --ca chain.pem\n"
            "  twoway doctor --cert alice.crt --key alice.key --ca twoway-data/ca/chain.pem\n");
}

struct opts {
    const char *target, *cert, *key, *ca, *crl, *server_name, *ciphers;
    char host[256], port[8];
    int64_t timeout_s;
    int tls_min, tls_max;
    enum tlsx_cert_role role;
    bool json;
};

static int parse_version(const char *v, int *out)
{
    if (strcmp(v, "1.2") == 0)
        *out = TLS1_2_VERSION;
    else if (strcmp(v, "1.3") == 0)
        *out = TLS1_3_VERSION;
    else
        return cli_usage_error("doctor", "TLS version '%s': use 1.2 or 1.3", v);
    return -1;
}

/* "host:port", "[v6]:port". */
static int split_target(struct opts *o)
{
    const char *t = o->target;
    const char *colon = strrchr(t, ':');
    if (colon == NULL || colon == t || colon[1] == '\0')
        return cli_usage_error("doctor", "'%s': give HOST:PORT", t);
    size_t hlen = (size_t)(colon - t);
    if (t[0] == '[' && hlen >= 2 && t[hlen - 1] == ']')
        t++, hlen -= 2;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return cli_usage_error("doctor", "'%s': port must be 1-65535", o->target);
    if (hlen == 0 || hlen >= sizeof(o->host))
        return cli_usage_error("doctor", "'%s': host is empty or too long", o->target);
    memcpy(o->host, t, hlen);
    o->host[hlen] = '\0';
    snprintf(o->port, sizeof(o->port), "%ld", port);
    return -1;
}

static int take(int argc, char **argv, int *i, const char **out)
{
    if (*i + 1 >= argc)
        return cli_usage_error("doctor", "%s needs a value", argv[*i]);
    *out = argv[++*i];
    return -1;
}

static int parse_flag(int argc, char **argv, int *i, struct opts *o)
{
    const char *a = argv[*i], *v = NULL;
    const struct {
        const char *flag;
        const char **dst;
    } values[] = {{"--cert", &o->cert},
                  {"--key", &o->key},
                  {"--ca", &o->ca},
                  {"--crl", &o->crl},
                  {"--server-name", &o->server_name},
                  {"--ciphers", &o->ciphers}};
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++)
        if (strcmp(a, values[k].flag) == 0)
            return take(argc, argv, i, values[k].dst);
    int rc;
    if (strcmp(a, "--json") == 0) {
        o->json = true;
    } else if (strcmp(a, "--timeout") == 0) {
        if ((rc = take(argc, argv, i, &v)) >= 0)
            return rc;
        struct tw_err err;
        if (clock_duration_parse(v, &o->timeout_s, &err) != 0 || o->timeout_s < 1 ||
            o->timeout_s > 3600)
            return cli_usage_error("doctor", "--timeout '%s': give 1s to 1h", v);
    } else if (strcmp(a, "--tls-min") == 0 || strcmp(a, "--tls-max") == 0) {
        if ((rc = take(argc, argv, i, &v)) >= 0)
            return rc;
        return parse_version(v, a[6] == 'i' ? &o->tls_min : &o->tls_max);
    } else if (strcmp(a, "--role") == 0) {
        if ((rc = take(argc, argv, i, &v)) >= 0)
            return rc;
        if (strcmp(v, "client") != 0 && strcmp(v, "server") != 0)
            return cli_usage_error("doctor", "--role '%s': use client or server", v);
        o->role = v[0] == 'c' ? TLSX_ROLE_CLIENT : TLSX_ROLE_SERVER;
    } else if (a[0] == '-') {
        return cli_usage_error("doctor", "unknown option '%s'", a);
    } else if (o->target == NULL) {
        o->target = a;
    } else {
        return cli_usage_error("doctor", "one HOST:PORT only ('%s')", a);
    }
    return -1;
}

static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        int rc = parse_flag(argc, argv, &i, o);
        if (rc >= 0)
            return rc;
    }
    if (o->target == NULL && o->cert == NULL)
        return cli_usage_error("doctor", "give HOST:PORT, or --cert FILE to check offline");
    if (o->target != NULL && o->cert != NULL && o->key == NULL)
        return cli_usage_error("doctor", "--cert needs --key to present the certificate");
    if (o->target == NULL && o->key != NULL && o->cert == NULL)
        return cli_usage_error("doctor", "--key needs --cert");
    if (o->target != NULL)
        return split_target(o);
    return -1;
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

static int check_files(const struct opts *o, struct doctor_facts *facts,
                       struct tlsx_file_check *mine)
{
    struct tlsx_file_check_opts fo = {.cert_file = o->cert,
                                      .key_file = o->key,
                                      .ca_file = o->ca,
                                      .crl_file = o->target == NULL ? o->crl : NULL,
                                      .role = o->target != NULL ? TLSX_ROLE_CLIENT : o->role,
                                      .now = facts->now};
    struct tw_err err;
    tw_err_clear(&err);
    if (tlsx_file_check(&fo, mine, &err) != 0)
        return cli_fail(&err);
    facts->mine = mine;
    facts->key_unusable = mine->key_checked && !mine->key_match;
    return -1;
}

static int run(const struct opts *o)
{
    struct doctor_facts facts = {.online = o->target != NULL,
                                 .target = o->target,
                                 .cert_file = o->cert,
                                 .key_file = o->key,
                                 .ca_file = o->ca,
                                 .crl_file = o->crl,
                                 .now = (int64_t)time(NULL)};
    struct tlsx_file_check *mine = calloc(1, sizeof(*mine));
    struct tlsx_probe *probe = calloc(1, sizeof(*probe));
    int rc = 1;
    if (mine == NULL || probe == NULL)
        goto out;
    if (o->cert != NULL && (rc = check_files(o, &facts, mine)) >= 0)
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
                                     .ca_file = o->ca,
                                     .cert_file = facts.key_unusable ? NULL : o->cert,
                                     .key_file = facts.key_unusable ? NULL : o->key,
                                     .min_version = o->tls_min,
                                     .max_version = o->tls_max,
                                     .ciphers = o->ciphers,
                                     .timeout_ms = o->timeout_s * 1000,
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
