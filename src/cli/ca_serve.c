/* `twoway ca serve`: the CA as an HTTPS service (EST enrollment and re-enrollment, CRL
 * distribution, OCSP responder). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "est/est.h"
#include "util/clock.h"

static const char usage[] =
    "usage: twoway ca serve [--dir D] [--listen ADDR:PORT] [--san LIST] [--passphrase-file F]\n"
    "                       [--rate N] [--burst N] [--access-log FILE|-|off]\n"
    "                       [--ocsp-validity DURATION]\n"
    "\n"
    "Serve the CA over HTTPS until SIGINT/SIGTERM:\n"
    "  /.well-known/est/{cacerts,simpleenroll,simplereenroll,csrattrs}   EST (RFC 7030),\n"
    "      also under /.well-known/est/client/ and /.well-known/est/server/\n"
    "  /crl            the current CRL (DER), with ETag and Cache-Control to its nextUpdate\n"
    "  /ocsp           OCSP responder (RFC 6960): POST, or GET /ocsp/BASE64\n"
    "  /healthz        liveness\n"
    "The server certificate is issued by the CA on first start (D/serve/server.crt) with the\n"
    "listen address, localhost, 127.0.0.1 and ::1 as SANs, and reissued when needed.\n"
    "\n"
    "  --listen ADDR:PORT   default 127.0.0.1:8443; port 0 picks a free port\n"
    "  --san LIST           more SANs for the server certificate (dns:NAME,ip:ADDR)\n"
    "  --rate N             requests per second per client address (default 20)\n"
    "  --burst N            requests a client may send at once (default 40)\n"
    "  --access-log FILE    JSON lines, one per request (default - : stderr; off: none)\n"
    "  --ocsp-validity D    OCSP nextUpdate - thisUpdate (default 1h)\n"
    "  --passphrase-file F  the CA passphrase, if the CA keys are encrypted\n"
    "\n"
    "Examples:\n"
    "  twoway ca serve --listen 0.0.0.0:8443 --san dns:ca.example.com\n"
    "  twoway ca token alice        # then on alice's machine: twoway enroll ...\n";

static const char cmd[] = "ca serve";

struct serve_args {
    const char *dir, *listen, *passfile, *access_log;
    struct pki_sans sans;
    double rate, burst;
    int64_t ocsp_validity;
};

static int parse_number(const char *flag, const char *text, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == NULL || *end != '\0' || !(v > 0) || v > 1e6)
        return cli_usage_error(cmd, "%s '%s': expected a positive number", flag, text);
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, struct serve_args *a)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"san", required_argument, NULL, 's'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"rate", required_argument, NULL, 'r'},
        {"burst", required_argument, NULL, 'b'},
        {"access-log", required_argument, NULL, 'a'},
        {"ocsp-validity", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct tw_err err;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a->dir = optarg;
            break;
        case 'l':
            a->listen = optarg;
            break;
        case 'p':
            a->passfile = optarg;
            break;
        case 'a':
            a->access_log = optarg;
            break;
        case 's':
            if (pki_sans_parse(&a->sans, optarg, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            break;
        case 'r':
            if (parse_number("--rate", optarg, &a->rate) != 0)
                return 2;
            break;
        case 'b':
            if (parse_number("--burst", optarg, &a->burst) != 0)
                return 2;
            break;
        case 'o':
            if (clock_duration_parse(optarg, &a->ocsp_validity, &err) != 0 || a->ocsp_validity < 1)
                return cli_usage_error(cmd, "--ocsp-validity '%s': expected a duration (1h)",
                                       optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return ca_bad_option(cmd, c, optopt, argv, optind);
        }
    }
    if (optind != argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (a->listen != NULL && est_listen_check(a->listen, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    return 0;
}

static int run(const struct serve_args *a, FILE *log, struct tw_err *err)
{
    struct pki_ca *ca = NULL;
    TW_GUARD(pki_ca_open(cli_data_dir(a->dir), &ca, err));
    struct pki_secret pass;
    memset(&pass, 0, sizeof(pass));
    int have = 0;
    struct pki_signer *ocsp = NULL;
    int rc = ca_passphrase(a->passfile, &pass, &have, err);
    if (rc == 0)
        rc = pki_ca_unlock(ca, have ? &pass : NULL, err);
    if (rc == 0 && (ocsp = pki_ca_ocsp_signer(ca, have ? &pass : NULL, err)) == NULL)
        rc = -1;
    pki_secret_wipe(&pass);
    if (rc == 0) {
        struct est_server_opts o = {.ca = ca,
                                    .ocsp_signer = ocsp,
                                    .listen = a->listen,
                                    .extra_sans = &a->sans,
                                    .rate = a->rate,
                                    .burst = a->burst,
                                    .access_log = log,
                                    .ocsp_validity = a->ocsp_validity};
        rc = est_server_run(&o, err);
    }
    pki_signer_free(ocsp);
    pki_ca_free(ca);
    return rc;
}

int cli_ca_serve(int argc, char **argv)
{
    struct serve_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
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
