/* `twoway ca token`: a one-time enrollment token for `twoway enroll`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "util/clock.h"

static const char usage[] =
    "usage: twoway ca token NAME [--dir D] [--ttl DURATION] [--san LIST]\n"
    "                       [--profile client|server] [--days N] [--url URL]\n"
    "\n"
    "Make a one-time token that lets NAME enroll once with `twoway enroll`. The token is\n"
    "printed alone on the last line; only its hash is kept. It is bound to NAME, the SANs and\n"
    "the profile given here, and expires after --ttl. Also prints the root fingerprint the\n"
    "enrolling machine pins (--ca-fingerprint).\n"
    "\n"
    "  --ttl DURATION       how long the token stays usable (default 24h; 90s 15m 12h 7d)\n"
    "  --san LIST           SANs the certificate may carry: dns:NAME,ip:ADDR,email:ADDR,uri:URI\n"
    "  --profile P          client (default) or server\n"
    "  --days N             certificate validity: days or a duration (default: the profile's)\n"
    "  --url URL            the `ca serve` URL, for the printed enroll command\n"
    "\n"
    "Examples:\n"
    "  twoway ca token alice --ttl 1h\n"
    "  twoway ca token web1 --profile server --san dns:web1.example.com,ip:10.0.0.5\n"
    "  TOKEN=$(twoway ca token alice | tail -n 1)\n";

static const char cmd[] = "ca token";

struct token_args {
    const char *dir, *url;
    struct pki_token_spec spec;
    struct pki_sans sans;
};

static int parse(int argc, char **argv, struct token_args *a)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},  {"ttl", required_argument, NULL, 't'},
        {"san", required_argument, NULL, 's'},  {"profile", required_argument, NULL, 'P'},
        {"days", required_argument, NULL, 'D'}, {"url", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    struct tw_err err;
    int c;
    optind = 0;
    opterr = 0;
    a->spec.profile = PKI_PROFILE_CLIENT;
    a->spec.ttl = 86400;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            a->dir = optarg;
            break;
        case 'u':
            a->url = optarg;
            break;
        case 's':
            if (pki_sans_parse(&a->sans, optarg, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            break;
        case 't':
            if (clock_duration_parse(optarg, &a->spec.ttl, &err) != 0 || a->spec.ttl < 1)
                return cli_usage_error(cmd, "--ttl '%s': expected a duration (90s, 15m, 24h, 7d)",
                                       optarg);
            break;
        case 'D':
            if (ca_parse_validity(optarg, &a->spec.lifetime, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            break;
        case 'P':
            if (strcmp(optarg, "client") != 0 && strcmp(optarg, "server") != 0)
                return cli_usage_error(cmd, "--profile '%s': use client or server", optarg);
            a->spec.profile =
                strcmp(optarg, "client") == 0 ? PKI_PROFILE_CLIENT : PKI_PROFILE_SERVER;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return ca_bad_option(cmd, c, optopt, argv, optind);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error(cmd, "expected one NAME");
    a->spec.name = argv[optind];
    if (pki_name_check(a->spec.name, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    a->spec.sans = &a->sans;
    return 0;
}

int cli_ca_token(int argc, char **argv)
{
    struct token_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse(argc, argv, &a);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, "token", 0, &ca, &err) != 0)
        return cli_fail(&err);
    char token[PKI_TOKEN_TEXT_MAX], hex[65], colon[96], when[32];
    int64_t expires = 0;
    rc = pki_cert_fingerprint(pki_ca_root_cert(ca), hex, colon, &err);
    if (rc == 0)
        rc = pki_ca_token_create(ca, &a.spec, token, &expires, &err);
    if (rc == 0) {
        printf("Enrollment token for %s (%s certificate), single use, expires %s\n", a.spec.name,
               pki_profile_name(a.spec.profile),
               clock_iso8601((time_t)expires, when, sizeof(when)));
        printf("root SHA256 fingerprint: %s\n", colon);
        printf("SHA256: %s\n", hex);
        printf("enroll with: twoway enroll %s --name %s --ca-fingerprint %s --token TOKEN\n",
               a.url != NULL ? a.url : "https://CA-HOST:8443", a.spec.name, hex);
        printf("%s\n", token);
        fflush(stdout);
    }
    OPENSSL_cleanse(token, sizeof(token));
    pki_ca_free(ca);
    if (rc != 0)
        return err.code == TW_ERR_USAGE ? cli_usage_error(cmd, "%s", err.msg) : cli_fail(&err);
    return 0;
}
