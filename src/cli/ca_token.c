/* `twoway ca token`: a one-time enrollment token for `twoway enroll`; or, with --count, many
 * tokens for the names NAME-1..NAME-N written to a file (for fleets and `twoway bench --est`). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"

static const char usage[] =
    "usage: twoway ca token NAME [--dir D] [--ttl DURATION] [--san LIST]\n"
    "                       [--profile client|server] [--days N] [--url URL]\n"
    "                       [--count N --out FILE]\n"
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
    "  --count N            make N tokens, for the names NAME-1 .. NAME-N (at most 100000)\n"
    "  --out FILE           write the tokens there (mode 0600, a new file), a line\n"
    "                       `NAME-i TOKEN` each, instead of printing one; what\n"
    "                       `twoway bench --est --tokens FILE` reads\n"
    "\n"
    "Examples:\n"
    "  twoway ca token alice --ttl 1h\n"
    "  twoway ca token web1 --profile server --san dns:web1.example.com,ip:10.0.0.5\n"
    "  TOKEN=$(twoway ca token alice | tail -n 1)\n"
    "  twoway ca token sensor --count 1000 --ttl 2h --out sensor-tokens.txt\n";

static const char cmd[] = "ca token";

struct token_args {
    const char *dir, *url;
    struct pki_token_spec spec;
    struct pki_sans sans;
    int profile; /* --profile, an enum pki_profile */
    int count;   /* --count; 0: one token for NAME, printed */
    const char *out;
};

#define TOKEN_COUNT_MAX 100000 /* --count */
#define TOKEN_FILE_LINE (PKI_NAME_MAX + PKI_TOKEN_TEXT_MAX + 2)

static const struct flag_choice profiles[] = {
    {"client", PKI_PROFILE_CLIENT},
    {"server", PKI_PROFILE_SERVER},
    {NULL, 0},
};

#define AT(field) offsetof(struct token_args, field)

static const struct flag flags[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = AT(dir)},
    {.name = "ttl",
     .kind = FLAG_DURATION,
     .off = AT(spec.ttl),
     .min = 1,
     .bad = "expected a duration (90s, 15m, 24h, 7d)"},
    {.name = "san", .kind = FLAG_CALL, .off = AT(sans), .call = ca_flag_sans},
    {.name = "profile", .kind = FLAG_CHOICE, .off = AT(profile), .choices = profiles},
    {.name = "days", .kind = FLAG_CALL, .off = AT(spec.lifetime), .call = ca_flag_validity},
    {.name = "url", .kind = FLAG_STRING, .off = AT(url)},
    {.name = "count",
     .kind = FLAG_INT,
     .off = AT(count),
     .min = 1,
     .max = TOKEN_COUNT_MAX,
     .bad = "give"},
    {.name = "out", .kind = FLAG_STRING, .off = AT(out)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {
    .cmd = cmd, .usage = usage, .flags = flags, .nargs = 1, .nargs_error = "expected one NAME"};

static int parse(int argc, char **argv, struct token_args *a)
{
    a->profile = PKI_PROFILE_CLIENT;
    a->spec.ttl = 86400;
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    a->spec.name = argv[1];
    struct tw_err err;
    if (pki_name_check(a->spec.name, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    if (a->count > 0 && a->out == NULL)
        return cli_usage_error(cmd, "--count needs --out FILE (the tokens are not printed)");
    char last[PKI_NAME_MAX * 2];
    snprintf(last, sizeof(last), "%s-%d", a->spec.name, a->count);
    if (a->count > 0 && pki_name_check(last, &err) != 0)
        return cli_usage_error(cmd, "--count %d: the name %s: %s", a->count, last, err.msg);
    a->spec.profile = (enum pki_profile)a->profile;
    a->spec.sans = &a->sans;
    return FLAGS_GO_ON;
}

/* --out: count tokens for NAME-1..NAME-count into one new 0600 file; the tokens are wiped
 * from memory after. */
static int write_tokens(struct pki_ca *ca, struct token_args *a, int64_t *expires,
                        struct tw_err *err)
{
    /* Checked before any token is made, so none is stored that nobody can read; the atomic
     * write below still refuses a file that appeared meanwhile. */
    TW_ENSURE(!fs_exists(a->out), err, TW_ERR_EXISTS, "%s already exists: not overwritten",
              a->out);
    struct tw_buf buf;
    tw_buf_init(&buf, (size_t)(a->count > 0 ? a->count : 1) * TOKEN_FILE_LINE + 256);
    const char *base = a->spec.name;
    int n = a->count > 0 ? a->count : 1, rc = tw_buf_appendf(
        &buf, err, "# twoway enrollment tokens (%s certificates): NAME TOKEN, each used once\n",
        pki_profile_name(a->spec.profile));
    for (int i = 1; rc == 0 && i <= n; i++) {
        char name[PKI_NAME_MAX * 2], token[PKI_TOKEN_TEXT_MAX];
        snprintf(name, sizeof(name), "%s-%d", base, i);
        a->spec.name = a->count > 0 ? name : base;
        rc = pki_ca_token_create(ca, &a->spec, token, expires, err);
        if (rc == 0)
            rc = tw_buf_appendf(&buf, err, "%s %s\n", a->spec.name, token);
        OPENSSL_cleanse(token, sizeof(token));
    }
    a->spec.name = base;
    if (rc == 0)
        rc = fs_write_new(a->out, buf.data, buf.len, 0600, err);
    tw_buf_free(&buf);
    return rc;
}

int cli_ca_token(int argc, char **argv)
{
    struct token_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, "token", 0, &ca, &err) != 0)
        return cli_fail(&err);
    char token[PKI_TOKEN_TEXT_MAX], hex[65], colon[96], when[32];
    int64_t expires = 0;
    rc = pki_cert_fingerprint(pki_ca_root_cert(ca), hex, colon, &err);
    if (rc == 0 && a.out != NULL) {
        rc = write_tokens(ca, &a, &expires, &err);
        char names[PKI_NAME_MAX * 4];
        if (a.count > 0)
            snprintf(names, sizeof(names), "%s-1 .. %s-%d", a.spec.name, a.spec.name, a.count);
        else
            snprintf(names, sizeof(names), "%s", a.spec.name);
        if (rc == 0)
            printf("%d enrollment token%s for %s (%s certificates), single use, expire %s, "
                   "written to %s\nroot SHA256 fingerprint: %s\nSHA256: %s\n",
                   a.count > 0 ? a.count : 1, a.count > 1 ? "s" : "", names,
                   pki_profile_name(a.spec.profile),
                   clock_iso8601((time_t)expires, when, sizeof(when)), a.out, colon, hex);
        pki_ca_free(ca);
        return rc == 0 ? 0 : err.code == TW_ERR_USAGE ? cli_usage_error(cmd, "%s", err.msg)
                                                      : cli_fail(&err);
    }
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
