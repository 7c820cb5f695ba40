/* `twoway ca serve`: the CA as an HTTPS service (EST enrollment and re-enrollment, CRL
 * distribution, OCSP responder), and optionally plain HTTP for CRL, OCSP and CA certificates. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "console/console.h"
#include "est/est.h"
#include "util/clock.h"
#include "util/priv.h"

static const char usage[] =
    "usage: twoway ca serve [--dir D] [--listen ADDR:PORT] [--http-listen ADDR:PORT|off]\n"
    "                       [--san LIST] [--passphrase-file F]\n"
    "                       [--rate N] [--burst N] [--access-log FILE|-|off]\n"
    "                       [--ocsp-validity DURATION] [--approval token|manual]\n"
    "                       [--retry-after DURATION] [--max-pending N]\n"
    "                       [--user NAME | --allow-root]\n"
    "                       [--console [--console-allow RULE]... [--console-admin-allow RULE]...]\n"
    "\n"
    "Serve the CA over HTTPS until SIGINT/SIGTERM:\n"
    "  /.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}   EST (RFC 7030),\n"
    "      also under /.well-known/est/client/ and /.well-known/est/server/\n"
    "  /crl            the current CRL (DER), with ETag and Cache-Control to its nextUpdate\n"
    "  /ocsp           OCSP responder (RFC 6960): POST, or GET /ocsp/BASE64\n"
    "  /ca.crt         the issuing intermediate (DER), /chain.pem intermediate + root (PEM)\n"
    "  /healthz        liveness\n"
    "The server certificate is issued by the CA on first start (D/serve/server.crt) with the\n"
    "listen address, localhost, 127.0.0.1 and ::1 as SANs, and reissued when needed.\n"
    "\n"
    "  --listen ADDR:PORT   default 127.0.0.1:8443; port 0 picks a free port\n"
    "  --http-listen ADDR:PORT  also answer plain HTTP there, for relying parties: only\n"
    "                       /crl, /ocsp, /ca.crt and /chain.pem (never enrollment); default\n"
    "                       http-listen in D/ca/ca.conf, else none; off: none\n"
    "  --san LIST           more SANs for the server certificate (dns:NAME,ip:ADDR)\n"
    "  --rate N             requests per second per client address (default 20)\n"
    "  --burst N            requests a client may send at once (default 40)\n"
    "  --access-log FILE    JSON lines, one per request (default - : stderr; off: none)\n"
    "  --ocsp-validity D    OCSP nextUpdate - thisUpdate (default 1h)\n"
    "  --passphrase-file F  the CA passphrase, if the CA keys are encrypted\n"
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "  --approval MODE      token (default): simpleenroll needs a `ca token`; manual: without\n"
    "                       one the request waits for `twoway ca approve` (202 Accepted)\n"
    "  --retry-after D      Retry-After of a 202 (default 60s)\n"
    "  --max-pending N      requests that may wait for approval at once (default 1000)\n"
    "  --user NAME          started as root: listen and read the CA keys, then run as NAME\n"
    "                       (D must be writable by NAME)\n"
    "  --allow-root         serve as root although no --user is given\n"
    "  --console            also serve the web console at /console/ and its JSON API at\n"
    "                       /api/v1/, to client certificates of this CA matching a rule:\n"
    "  --console-allow RULE       read access (cn:, o:, ou:, dns:, email:, uri:, serial:,\n"
    "                       sha256:, exact or * globs; repeatable); none: nobody\n"
    "  --console-admin-allow RULE read and write access (revoke, tokens, approvals) for\n"
    "                       certificates made by `ca issue admin` that match; none: nobody\n"
    "\n"
    "Examples:\n"
    "  twoway ca serve --listen 0.0.0.0:8443 --san dns:ca.example.com\n"
    "  twoway ca serve --http-listen 0.0.0.0:80   # a CA made with --base-url http://HOST\n"
    "  twoway ca token alice        # then on alice's machine: twoway enroll ...\n"
    "  twoway ca serve --console --console-admin-allow cn:ops --console-allow 'ou:security'\n";

static const char cmd[] = "ca serve";

#define CONSOLE_RULES_MAX 64

struct serve_args {
    struct flags_ca ca;
    const char *listen, *http_listen, *access_log;
    struct pki_sans sans;
    double rate, burst;
    int64_t ocsp_validity;
    int approval; /* 1: manual */
    int64_t retry_after;
    int max_pending;
    const char *user;
    bool allow_root;
    bool console;
    struct rules {
        const char *v[CONSOLE_RULES_MAX];
        size_t n;
    } readers, admins;
};

static const struct flag_choice approvals[] = {
    {"token", 0},
    {"manual", 1},
    {NULL, 0},
};

static int number_flag(const char *flag, const char *text, double *out, struct tw_err *err)
{
    char *end = NULL;
    double v = strtod(text, &end);
    TW_ENSURE(end != NULL && *end == '\0' && v > 0 && v <= 1e6, err, TW_ERR_USAGE,
              "%s '%s': expected a positive number", flag, text);
    *out = v;
    return 0;
}

static int rate_flag(void *rate, const char *value, struct tw_err *err)
{
    return number_flag("--rate", value, rate, err);
}

static int burst_flag(void *burst, const char *value, struct tw_err *err)
{
    return number_flag("--burst", value, burst, err);
}

static int rule_flag(void *field, const char *value, struct tw_err *err)
{
    struct rules *r = field;
    TW_ENSURE(r->n < CONSOLE_RULES_MAX, err, TW_ERR_USAGE, "at most %d console rules of a kind",
              CONSOLE_RULES_MAX);
    r->v[r->n++] = value;
    return 0;
}

#define AT(field) offsetof(struct serve_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(ca), .group = flags_ca_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "listen", .kind = FLAG_STRING, .off = AT(listen)},
    {.name = "http-listen", .kind = FLAG_STRING, .off = AT(http_listen)},
    {.name = "san", .kind = FLAG_CALL, .off = AT(sans), .call = ca_flag_sans},
    {.name = "rate", .kind = FLAG_CALL, .off = AT(rate), .call = rate_flag},
    {.name = "burst", .kind = FLAG_CALL, .off = AT(burst), .call = burst_flag},
    {.name = "access-log", .kind = FLAG_STRING, .off = AT(access_log)},
    {.name = "ocsp-validity",
     .kind = FLAG_DURATION,
     .off = AT(ocsp_validity),
     .min = 1,
     .bad = "expected a duration (1h)"},
    {.name = "approval", .kind = FLAG_CHOICE, .off = AT(approval), .choices = approvals},
    {.name = "retry-after",
     .kind = FLAG_DURATION,
     .off = AT(retry_after),
     .min = 1,
     .max = 86400,
     .bad = "expected a duration from 1s to 1d (60s, 5m)"},
    {.name = "max-pending", .kind = FLAG_INT, .off = AT(max_pending), .min = 1, .max = 1000000},
    {.name = "user", .kind = FLAG_STRING, .off = AT(user)},
    {.name = "allow-root", .kind = FLAG_BOOL, .off = AT(allow_root)},
    {.name = "console", .kind = FLAG_BOOL, .off = AT(console)},
    {.name = "console-allow", .kind = FLAG_CALL, .off = AT(readers), .call = rule_flag},
    {.name = "console-admin-allow", .kind = FLAG_CALL, .off = AT(admins), .call = rule_flag},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd, .usage = usage, .flags = flags};

static int parse(int argc, char **argv, struct serve_args *a)
{
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    if (a->listen != NULL && est_listen_check("--listen", a->listen, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    if (a->http_listen != NULL && strcmp(a->http_listen, "off") != 0 &&
        est_listen_check("--http-listen", a->http_listen, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    if (priv_check(a->user, a->allow_root, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    if (!a->console && (a->readers.n > 0 || a->admins.n > 0))
        return cli_usage_error(cmd, "--console-allow and --console-admin-allow need --console");
    return FLAGS_GO_ON;
}

/* --http-listen, else ca.conf's http-listen (checked here: pki does not know addresses). */
static int http_listen(const struct serve_args *a, struct pki_ca *ca, const char **out,
                       struct tw_err *err)
{
    *out = a->http_listen != NULL ? a->http_listen : pki_ca_http_listen(ca);
    if (*out != NULL && strcmp(*out, "off") == 0)
        *out = NULL;
    else if (*out != NULL && a->http_listen == NULL &&
             est_listen_check("ca.conf http-listen", *out, err) != 0)
        return (err->code = TW_ERR_CONFIG, -1);
    return 0;
}

/* The console's role rules as policies (*out NULL when there are none). */
static int rules_policy(const struct rules *r, const char *flag, struct tlsx_policy **out,
                        struct tw_err *err)
{
    *out = NULL;
    if (r->n == 0)
        return 0;
    struct tlsx_policy *p = tlsx_policy_new(err);
    if (p == NULL)
        return -1;
    for (size_t i = 0; i < r->n; i++)
        if (tlsx_policy_add(p, r->v[i], err) != 0) {
            tlsx_policy_free(p);
            char msg[TW_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            return tw_err_set(err, TW_ERR_USAGE, "%s: %s", flag, msg);
        }
    *out = p;
    return 0;
}

static struct console *console_make(const struct serve_args *a, struct pki_ca *ca,
                                     struct pki_signer *ocsp, struct tw_err *err)
{
    struct tlsx_policy *readers = NULL, *admins = NULL;
    struct console *c = NULL;
    if (rules_policy(&a->readers, "--console-allow", &readers, err) == 0 &&
        rules_policy(&a->admins, "--console-admin-allow", &admins, err) == 0) {
        struct console_opts o = {
            .ca = ca, .ocsp_signer = ocsp, .readers = readers, .admins = admins};
        c = console_new(&o, err);
    }
    tlsx_policy_free(readers);
    tlsx_policy_free(admins);
    if (c != NULL) {
        char line[1200];
        console_describe(c, line, sizeof(line));
        fprintf(stderr, "twoway ca serve: %s\n", line);
    }
    return c;
}

static int run(const struct serve_args *a, FILE *log, struct tw_err *err)
{
    struct pki_ca *ca = NULL;
    TW_GUARD(pki_ca_open(cli_data_dir(a->ca.dir), &ca, err));
    const char *plain = NULL;
    if (http_listen(a, ca, &plain, err) != 0) {
        pki_ca_free(ca);
        return -1;
    }
    struct pki_secret pass;
    memset(&pass, 0, sizeof(pass));
    int have = 0;
    struct pki_signer *ocsp = NULL;
    int rc = ca_passphrase(a->ca.passfile, &pass, &have, err);
    if (rc == 0)
        rc = pki_ca_unlock(ca, have ? &pass : NULL, err);
    if (rc == 0 && (ocsp = pki_ca_ocsp_signer(ca, have ? &pass : NULL, err)) == NULL)
        rc = -1;
    pki_secret_wipe(&pass);
    struct console *console = NULL;
    if (rc == 0 && a->console && (console = console_make(a, ca, ocsp, err)) == NULL)
        rc = -1;
    if (rc == 0) {
        struct est_server_opts o = {.ca = ca,
                                    .ocsp_signer = ocsp,
                                    .listen = a->listen,
                                    .http_listen = plain,
                                    .extra_sans = &a->sans,
                                    .rate = a->rate,
                                    .burst = a->burst,
                                    .access_log = log,
                                    .ocsp_validity = a->ocsp_validity,
                                    .approval_manual = a->approval,
                                    .retry_after = (long)a->retry_after,
                                    .max_pending = a->max_pending,
                                    .user = a->user,
                                    .exts = console != NULL ? console_exts(console) : NULL};
        rc = est_server_run(&o, err);
    }
    console_free(console);
    pki_signer_free(ocsp);
    pki_ca_free(ca);
    return rc;
}

int cli_ca_serve(int argc, char **argv)
{
    struct serve_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    FILE *log = stderr;
    if (a.access_log != NULL && strcmp(a.access_log, "off") == 0)
        log = NULL;
    else if (a.access_log != NULL && strcmp(a.access_log, "-") != 0 &&
             (log = fopen(a.access_log, "a")) == NULL) {
        fprintf(stderr, "twoway: cannot open access log %s\n", a.access_log);
        return 1;
    }
    struct tw_err err;
    tw_err_clear(&err);
    rc = run(&a, log, &err);
    if (log != NULL && log != stderr)
        fclose(log);
    if (rc != 0)
        return err.code == TW_ERR_USAGE ? cli_usage_error(cmd, "%s", err.msg) : cli_fail(&err);
    return 0;
}
