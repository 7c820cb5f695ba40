/* Every class of configuration error: TW_ERR_CONFIG, and a message that names file:line and
 * the key (or section) at fault, plus why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/config.h"

#define SVC(name, addr)                                                                            \
    "[service " name "]\n"                                                                         \
    "listen = " addr "\n"                                                                          \
    "backend = 127.0.0.1:8080\n"                                                                   \
    "cert = s.crt\n"                                                                               \
    "key = s.key\n"                                                                                \
    "client-ca = ca.pem\n"
#define BASE SVC("web", "0.0.0.0:8443") /* 6 lines: an appended key is on line 7 */

struct error_case {
    const char *text;
    const char *where; /* "t.conf:7: [service web] listen" */
    const char *why;
};

static const struct error_case cases[] = {
    /* values */
    {BASE "listen = 0.0.0.0:99999\n", "t.conf:7: [service web] listen = \"0.0.0.0:99999\"",
     "port must be 1-65535"},
    {BASE "listen = localhost:80\n", "t.conf:7: [service web] listen", "not a numeric address"},
    {BASE "listen = ::1:80\n", "t.conf:7: [service web] listen", "need brackets"},
    {BASE "listen = 0.0.0.0:8443\n", "t.conf:7: [service web] listen", "already listed"},
    {BASE "backend = http://x:80\n", "t.conf:7: [service web] backend", "set twice"},
    {SVC("web", "0.0.0.0:1") "[service b]\nbackend = ftp://x:80\n", "t.conf:8: [service b] backend",
     "unknown scheme"},
    {SVC("web", "0.0.0.0:1") "[service b]\nbackend = unix:\n", "t.conf:8: [service b] backend",
     "missing socket path"},
    {SVC("web", "0.0.0.0:1") "[service b]\nbackend = unix:/"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "\n",
     "t.conf:8: [service b] backend", "longer than 107"},
    {SVC("web", "0.0.0.0:1") "[service b]\nbackend = bad_host!:80\n",
     "t.conf:8: [service b] backend", "host names may contain only"},
    {BASE "mode = udp\n", "t.conf:7: [service web] mode = \"udp\"", "expected http or tcp"},
    {BASE "ocsp = maybe\n", "t.conf:7: [service web] ocsp", "expected on or off"},
    {BASE "ocsp-fail = sometimes\n", "t.conf:7: [service web] ocsp-fail",
     "expected closed or open"},
    {BASE "crl-expired = ignore\n", "t.conf:7: [service web] crl-expired", "reject or warn"},
    {BASE "crl = ftp://ca/crl\n", "t.conf:7: [service web] crl", "http:// or https://"},
    {BASE "crl = https:///crl\n", "t.conf:7: [service web] crl", "missing host"},
    {BASE "allow = xx:foo\n", "t.conf:7: [service web] allow = \"xx:foo\"", "unknown rule type"},
    {BASE "allow = alice\n", "t.conf:7: [service web] allow", "unknown rule type"},
    {BASE "allow = cn:\n", "t.conf:7: [service web] allow", "empty value"},
    {BASE "allow = serial:zz\n", "t.conf:7: [service web] allow", "hexadecimal"},
    {BASE "allow = sha256:abcd\n", "t.conf:7: [service web] allow", "64 hex digits"},
    {BASE "server-name = a*.b.com\n", "t.conf:7: [service web] server-name", "wildcard"},
    {BASE "server-name = a..b\n", "t.conf:7: [service web] server-name", "empty label"},
    {BASE "tls-min = 1.1\n", "t.conf:7: [service web] tls-min", "expected 1.2 or 1.3"},
    {BASE "tls-min = 1.3\ntls-max = 1.2\n", "t.conf:8: [service web] tls-max",
     "tls-max is below tls-min"},
    {BASE "ciphers = ALL;rm\n", "t.conf:7: [service web] ciphers", "OpenSSL names"},
    {BASE "idle-timeout = 5x\n", "t.conf:7: [service web] idle-timeout", "duration"},
    {BASE "handshake-timeout = 0\n", "t.conf:7: [service web] handshake-timeout", "from 1s"},
    {BASE "max-headers = -1\n", "t.conf:7: [service web] max-headers", "whole number"},
    {BASE "max-header-bytes = 10\n", "t.conf:7: [service web] max-header-bytes", "size from"},
    {BASE "buffer-size = 99999999999999999999\n", "t.conf:7: [service web] buffer-size",
     "size from"},
    {BASE "max-connections = 2000000\n", "t.conf:7: [service web] max-connections", "whole number"},
    {BASE "cert =\n", "t.conf:7: [service web] cert", "set twice"},
    {SVC("web", "0.0.0.0:1") "[service b]\ncert =\n", "t.conf:8: [service b] cert", "empty value"},
    {BASE "crl = a\x01.crl\n", "t.conf:7: [service web] crl", "control characters"},
    {"[global]\nworkers = 0\n" BASE, "t.conf:2: [global] workers", "auto or a number"},
    {"[global]\nmetrics = 9100\n" BASE, "t.conf:2: [global] metrics", "missing port"},
    {"[global]\nlog-level = loud\n" BASE, "t.conf:2: [global] log-level", "debug, info"},
    {"[global]\nidle-timeout = never\n" BASE, "t.conf:2: [global] idle-timeout", "duration"},
    {"[global]\nticket-rotate = 1s\n" BASE, "t.conf:2: [global] ticket-rotate", "from 1m"},
    {"[global]\nmax-connections = 0\n" BASE, "t.conf:2: [global] max-connections", "whole number"},

    /* keys and sections */
    {BASE "lisen = 1.2.3.4:5\n", "t.conf:7: [service web] lisen", "did you mean listen?"},
    {BASE "frobnicate = 1\n", "t.conf:7: [service web] frobnicate", "unknown key"},
    {BASE "workers = 4\n", "t.conf:7: [service web] workers", "belongs in the [global]"},
    {"[global]\nlisten = 0.0.0.0:1\n" BASE, "t.conf:2: [global] listen", "[service NAME]"},
    {"[global]\nallow = cn:x\n" BASE, "t.conf:2: [global] allow", "[service NAME]"},
    {BASE "cert = other.crt\n", "t.conf:7: [service web] cert", "set twice (first at line 4)"},
    {"[global]\nworkers = 1\n[global]\nworkers = 2\n" BASE, "t.conf:4: [global] workers",
     "set twice"},
    {BASE "[service web]\n", "t.conf:7: [service web]", "duplicate service name"},
    {BASE "[service]\n", "t.conf:7: [service]", "needs a name"},
    {BASE "[service bad/name]\n", "t.conf:7: [service \"bad/name\"]", "only letters"},
    {BASE "[servce api]\n", "t.conf:7: unknown section [servce api]",
     "(did you mean [service NAME]?)"},
    {BASE "[globl]\n", "t.conf:7: unknown section [globl]", "(did you mean [global]?)"},
    {BASE "[service api]\n[xyzzy]\n", "t.conf:8: unknown section [xyzzy]", "[service NAME]"},
    {BASE "= value\n", "t.conf:7:", "missing key name"},
    {BASE "[tunnel]\n", "t.conf:7: unknown section [tunnel]", "[tunnel NAME]"},
    {BASE "[service api\n", "t.conf:7:", "section header"},
    {BASE "[service api] x\n", "t.conf:7:", "section header"},
    {"listen = 0.0.0.0:1\n" BASE, "t.conf:1: listen", "outside a section"},
    {BASE "just words\n", "t.conf:7:", "expected 'key = value'"},
    {"", "t.conf", "no [service NAME] section"},
    {"[global]\nworkers = 2\n", "t.conf", "no [service NAME] section"},

    /* required keys and combinations */
    {"[service web]\nlisten = 0.0.0.0:1\n", "t.conf:1: [service web]", "backend is required"},
    {"[service web]\nbackend = 127.0.0.1:1\n", "t.conf:1: [service web]", "listen is required"},
    {"[service web]\nlisten = 0.0.0.0:1\nbackend = 127.0.0.1:1\ncert = c\nkey = k\n",
     "t.conf:1: [service web]", "client-ca is required"},
    {BASE "forward = proxy-v2\n", "t.conf:7: [service web] forward = \"proxy-v2\"",
     "proxy-v2 needs mode = tcp"},
    {BASE "mode = tcp\nforward = rfc9440\n", "t.conf:8: [service web] forward",
     "needs mode = http"},
    {BASE "mode = tcp\nforward = xfcc\n", "t.conf:8: [service web] forward", "needs mode = http"},
    {BASE "forward = xfcc\nforward-chain = on\n", "t.conf:8: [service web] forward-chain",
     "rfc9440"},
    {BASE "proxy-v2-cert = on\n", "t.conf:7: [service web] proxy-v2-cert", "proxy-v2"},
    {BASE "backend-ca = b.pem\n", "t.conf:7: [service web] backend-ca", "tls:// backend"},
    {BASE "insecure-skip-backend-verify = on\n",
     "t.conf:7: [service web] insecure-skip-backend-verify", "tls:// backend"},
    {SVC("web", "0.0.0.0:1") "[service b]\nlisten = 0.0.0.0:2\nbackend = tls://b:1\ncert = c\n"
                             "key = k\nclient-ca = ca\nbackend-cert = gw.crt\n",
     "t.conf:7: [service b]", "backend-cert and backend-key must be set together"},

    /* several services */
    {BASE SVC("api", "0.0.0.0:8443"), "t.conf:1: [service web]", "needs server-name"},
    {BASE "server-name = a.example\n" SVC("api", "0.0.0.0:8443") "server-name = A.example\n",
     "t.conf:8: [service api]", "a.example is also answered by service web"},
    {BASE SVC("api", "127.0.0.1:8443"), "t.conf:8: [service api] listen = \"127.0.0.1:8443\"",
     "overlaps 0.0.0.0:8443 of service web"},
    {BASE "mode = tcp\n" SVC("api", "0.0.0.0:8443") "mode = tcp\n",
     "t.conf:9: [service api] listen", "in tcp mode a listener serves one service"},
    {BASE SVC("api", "0.0.0.0:8443") "mode = tcp\n", "t.conf:8: [service api] listen",
     "one listener has one mode"},
    {"[global]\nmetrics = 0.0.0.0:8443\n" BASE, "t.conf:4: [service web] listen",
     "conflicts with metrics = 0.0.0.0:8443"},
};

static void test_error_cases(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tw_err err = {0};
        struct gw_config *cfg =
            gw_config_load_buffer("t.conf", cases[i].text, strlen(cases[i].text), &err);
        if (cfg != NULL) {
            gw_config_free(cfg);
            print_error("case %zu (%s): accepted\n", i, cases[i].where);
            bad++;
        } else if (err.code != TW_ERR_CONFIG ||
                   strncmp(err.msg, cases[i].where, strlen(cases[i].where)) != 0 ||
                   strstr(err.msg, cases[i].why) == NULL) {
            print_error("case %zu: got [%s] \"%s\", want \"%s ... %s\"\n", i,
                        tw_errc_name(err.code), err.msg, cases[i].where, cases[i].why);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Builds text of BASE + count copies of "line\n". */
static char *repeat(const char *head, const char *line, size_t count)
{
    size_t hl = strlen(head), ll = strlen(line);
    char *text = malloc(hl + count * ll + 1);
    assert_non_null(text);
    memcpy(text, head, hl);
    for (size_t i = 0; i < count; i++)
        memcpy(text + hl + i * ll, line, ll);
    text[hl + count * ll] = '\0';
    return text;
}

static void expect_error(const char *text, size_t len, const char *where, const char *why)
{
    struct tw_err err = {0};
    struct gw_config *cfg = gw_config_load_buffer("t.conf", text, len, &err);
    assert_null(cfg);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    if (strstr(err.msg, where) == NULL || strstr(err.msg, why) == NULL)
        fail_msg("got \"%s\", want \"%s ... %s\"", err.msg, where, why);
}

static void test_limits(void **state)
{
    (void)state;
    char *text = repeat(BASE, "allow = cn:x\n", GW_CONFIG_ALLOW_MAX + 1);
    expect_error(text, strlen(text), "[service web] allow", "more than 1024 entries");
    free(text);

    /* 65 services */
    size_t cap = 80 * (GW_CONFIG_SERVICES_MAX + 1) + 1, used = 0;
    text = malloc(cap);
    assert_non_null(text);
    for (unsigned i = 0; i <= GW_CONFIG_SERVICES_MAX; i++)
        used += (size_t)snprintf(text + used, cap - used, "[service s%u]\nlisten = 0.0.0.0:%u\n", i,
                                 1000 + i);
    expect_error(text, used, "[service s64]", "more than 64 services");
    free(text);

    /* A value longer than libinih's line buffer, and a line beyond GW_CONFIG_LINE_MAX. */
    text = repeat(BASE "crl = /", "a", 300);
    expect_error(text, strlen(text), "t.conf:7:", "line longer than");
    free(text);
    text = repeat(BASE "; ", "a", GW_CONFIG_LINE_MAX);
    expect_error(text, strlen(text), "t.conf:7:", "line longer than 4096 bytes");
    free(text);

    static const char nul[] = BASE "cert\0 = x\n";
    expect_error(nul, sizeof(nul) - 1, "t.conf:7:", "NUL byte");

    /* A file over GW_CONFIG_FILE_MAX is refused before parsing (TW_ERR_IO). */
    char path[] = "/tmp/twoway-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i <= GW_CONFIG_FILE_MAX / 16; i++)
        fputs(";;;;;;;;;;;;;;;\n", f);
    fclose(f);
    struct tw_err err = {0};
    assert_null(gw_config_load_file(path, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    unlink(path);
}

/* Long file names and values are shortened, never the reason at the end. */
static void test_long_message_keeps_reason(void **state)
{
    (void)state;
    char name[200], text[512];
    memset(name, 'd', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    memcpy(name, "/tmp/", 5);
    snprintf(text, sizeof(text), BASE "crl = ftp://%0150d\n", 7);
    struct tw_err err = {0};
    assert_null(gw_config_load_buffer(name, text, strlen(text), &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, ":7: [service web] crl = \"ftp://00"));
    assert_non_null(strstr(err.msg, "...\": a CRL is a file path or an http:// or https:// URL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_cases),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_long_message_keeps_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
