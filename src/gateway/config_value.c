/* Value parsers for the gateway configuration. Each takes the text as written and either
 * fills its output or writes a short reason, which the caller prefixes with the location. */
#include "gateway/config_priv.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util/clock.h"

static int why_set(char *why, size_t cap, const char *msg)
{
    snprintf(why, cap, "%s", msg);
    return -1;
}

/* Decimal digits only: no sign, no spaces, no hex, so "8443 " or "+1" are refused. */
static int parse_digits(const char *text, long long *out)
{
    if (text[0] == '\0' || strlen(text) > 18)
        return -1;
    for (const char *p = text; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    *out = strtoll(text, NULL, 10);
    return 0;
}

static int parse_port(const char *text, uint16_t *port, char *why, size_t cap)
{
    long long n;
    if (text[0] == '\0')
        return why_set(why, cap, "missing port: write HOST:PORT");
    if (parse_digits(text, &n) != 0 || n < 1 || n > 65535)
        return why_set(why, cap, "port must be 1-65535");
    *port = (uint16_t)n;
    return 0;
}

/* Split "host:port" or "[v6]:port". host gets the text between the brackets. */
static int split_host_port(const char *text, char *host, size_t hcap, const char **port,
                           bool *bracketed, char *why, size_t cap)
{
    const char *colon;
    size_t hlen;
    *bracketed = false;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return why_set(why, cap, "missing ']' after IPv6 address");
        if (close[1] != ':')
            return why_set(why, cap, "expected ':PORT' after ']'");
        hlen = (size_t)(close - text - 1);
        text++;
        colon = close + 1;
        *bracketed = true;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return why_set(why, cap, "missing port: write HOST:PORT");
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen) != NULL)
            return why_set(why, cap, "IPv6 addresses need brackets: [::1]:8443");
    }
    if (hlen == 0)
        return why_set(why, cap, "missing host before ':PORT'");
    if (hlen >= hcap)
        return why_set(why, cap, "host name too long");
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    *port = colon + 1;
    return 0;
}

int cfg_parse_addr(const char *text, struct gw_addr *out, char *why, size_t cap)
{
    char host[INET6_ADDRSTRLEN + 8];
    const char *port_text;
    bool v6;
    uint16_t port;

    memset(out, 0, sizeof(*out));
    if (split_host_port(text, host, sizeof(host), &port_text, &v6, why, cap) != 0)
        return -1;
    if (parse_port(port_text, &port, why, cap) != 0)
        return -1;
    if (v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return why_set(why, cap, "not a numeric IPv6 address");
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        out->len = sizeof(*sin6);
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
        snprintf(out->text, sizeof(out->text), "[%s]:%u", buf, (unsigned)port);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return why_set(why, cap,
                           "not a numeric address: use e.g. 0.0.0.0:8443, 127.0.0.1:8443 or "
                           "[::]:8443");
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        out->len = sizeof(*sin);
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
        snprintf(out->text, sizeof(out->text), "%s:%u", buf, (unsigned)port);
    }
    return 0;
}

/* A DNS name or IPv4 literal: letters, digits, '-', '.', '_'; labels 1-63; total <= 253. */
static int check_hostname(const char *host, bool allow_wildcard, char *why, size_t cap)
{
    size_t len = strlen(host), label = 0;
    if (allow_wildcard && strncmp(host, "*.", 2) == 0)
        host += 2, len -= 2;
    if (len == 0 || len > 253)
        return why_set(why, cap, "host name must be 1-253 characters");
    for (const char *p = host; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '.') {
            if (label == 0)
                return why_set(why, cap, "empty label in host name");
            label = 0;
            continue;
        }
        if (!isalnum(ch) && ch != '-' && ch != '_')
            return why_set(why, cap,
                           "host names may contain only letters, digits, '-', "
                           "'_' and '.'");
        if (++label > 63)
            return why_set(why, cap, "host name label longer than 63 characters");
    }
    return 0;
}

static int parse_tcp_backend(const char *text, struct gw_backend *out, char *why, size_t cap)
{
    char host[256];
    const char *port_text;
    bool v6;
    if (split_host_port(text, host, sizeof(host), &port_text, &v6, why, cap) != 0)
        return -1;
    if (parse_port(port_text, &out->port, why, cap) != 0)
        return -1;
    if (v6) {
        struct in6_addr a;
        if (inet_pton(AF_INET6, host, &a) != 1)
            return why_set(why, cap, "not a numeric IPv6 address inside [ ]");
    } else if (check_hostname(host, false, why, cap) != 0) {
        return -1;
    }
    out->host = strdup(host);
    return out->host != NULL ? 0 : why_set(why, cap, "out of memory");
}

int cfg_parse_backend(const char *text, struct gw_backend *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (path[0] == '\0')
            return why_set(why, cap, "missing socket path after 'unix:'");
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return why_set(why, cap, "unix socket path longer than 107 bytes");
        if (cfg_check_path(path, why, cap) != 0)
            return -1;
        out->kind = GW_BACKEND_UNIX;
        out->path = strdup(path);
        if (out->path == NULL)
            return why_set(why, cap, "out of memory");
    } else if (strncmp(text, "tls://", 6) == 0) {
        out->kind = GW_BACKEND_TLS;
        if (parse_tcp_backend(text + 6, out, why, cap) != 0)
            return -1;
    } else if (strstr(text, "://") != NULL) {
        return why_set(why, cap, "unknown scheme: use HOST:PORT, unix:/PATH or tls://HOST:PORT");
    } else {
        out->kind = GW_BACKEND_TCP;
        if (parse_tcp_backend(text, out, why, cap) != 0)
            return -1;
    }
    out->text = strdup(text);
    if (out->text == NULL)
        return why_set(why, cap, "out of memory");
    return 0;
}

/* RFC 5280 serials are at most 20 octets; SHA-256 is 32. Colons between bytes are allowed,
 * and `*` globs (then the digit count is not checked), as tlsx_policy_add accepts. */
static int check_hex(const char *v, size_t min_digits, size_t max_digits, char *why, size_t cap,
                     const char *what)
{
    size_t digits = 0;
    bool glob = false;
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        if (*p == '*') {
            glob = true;
            continue;
        }
        if (!isxdigit((unsigned char)*p)) {
            snprintf(why, cap, "%s must be hexadecimal (colons allowed)", what);
            return -1;
        }
        digits++;
    }
    if (!glob && (digits < min_digits || digits > max_digits)) {
        if (min_digits == max_digits)
            snprintf(why, cap, "%s must be %zu hex digits", what, min_digits);
        else
            snprintf(why, cap, "%s must be %zu-%zu hex digits", what, min_digits, max_digits);
        return -1;
    }
    return 0;
}

int cfg_check_allow_rule(const char *text, char *why, size_t cap)
{
    static const char *const types[] = {"cn", "ou", "o", "dns", "email", "uri", "serial", "sha256"};
    const char *colon = strchr(text, ':');
    size_t tlen = colon != NULL ? (size_t)(colon - text) : 0;
    bool known = false;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (colon != NULL && strlen(types[i]) == tlen && strncasecmp(text, types[i], tlen) == 0)
            known = true;
    if (!known)
        return why_set(why, cap,
                       "unknown rule type: use cn:, ou:, o:, dns:, email:, uri:, "
                       "serial: or sha256:");
    const char *v = colon + 1;
    if (v[0] == '\0')
        return why_set(why, cap, "empty value after the rule type");
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return why_set(why, cap, "control characters are not allowed");
    if (strncasecmp(text, "serial:", 7) == 0)
        return check_hex(v, 1, 40, why, cap, "a serial");
    if (strncasecmp(text, "sha256:", 7) == 0)
        return check_hex(v, 64, 64, why, cap, "a SHA-256 fingerprint");
    return 0;
}

int cfg_check_server_name(const char *text, char *why, size_t cap)
{
    if (text[0] == '\0')
        return why_set(why, cap, "empty server name");
    if (strchr(text, '*') != NULL && strncmp(text, "*.", 2) != 0)
        return why_set(why, cap,
                       "a wildcard is only allowed as the whole first label: "
                       "*.example.com");
    if (strchr(text + 1, '*') != NULL)
        return why_set(why, cap, "only one leading '*.' wildcard is allowed");
    return check_hostname(text, true, why, cap);
}

int cfg_check_path(const char *text, char *why, size_t cap)
{
    if (text[0] == '\0')
        return why_set(why, cap, "empty path");
    if (strlen(text) > 1024)
        return why_set(why, cap, "path longer than 1024 bytes");
    for (const char *p = text; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return why_set(why, cap, "control characters are not allowed in a path");
    return 0;
}

int cfg_check_crl(const char *text, bool *is_url, char *why, size_t cap)
{
    *is_url = false;
    const char *rest = NULL;
    if (strncmp(text, "https://", 8) == 0)
        rest = text + 8;
    else if (strncmp(text, "http://", 7) == 0)
        rest = text + 7;
    else if (strstr(text, "://") != NULL)
        return why_set(why, cap, "a CRL is a file path or an http:// or https:// URL");
    if (rest == NULL)
        return cfg_check_path(text, why, cap);
    if (rest[0] == '\0' || rest[0] == '/' || rest[0] == ':')
        return why_set(why, cap, "missing host in URL");
    for (const char *p = rest; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return why_set(why, cap, "spaces and control characters are not allowed in a URL");
    *is_url = true;
    return 0;
}

int cfg_parse_bool(const char *text, bool *out, char *why, size_t cap)
{
    static const struct {
        const char *word;
        bool value;
    } words[] = {{"on", true},   {"off", false},   {"yes", true}, {"no", false},
                 {"true", true}, {"false", false}, {"1", true},   {"0", false}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(text, words[i].word) == 0) {
            *out = words[i].value;
            return 0;
        }
    }
    return why_set(why, cap, "expected on or off");
}

int cfg_parse_int(const char *text, long long min, long long max, long long *out, char *why,
                  size_t cap)
{
    long long n;
    if (parse_digits(text, &n) != 0 || n < min || n > max) {
        snprintf(why, cap, "expected a whole number from %lld to %lld", min, max);
        return -1;
    }
    *out = n;
    return 0;
}

/* Bytes with an optional k or m suffix (binary: 64k = 65536). */
int cfg_parse_size(const char *text, long long min, long long max, long long *out, char *why,
                   size_t cap)
{
    char digits[32];
    size_t len = strlen(text);
    long long scale = 1, n;
    if (len > 0 && len < sizeof(digits)) {
        char last = (char)tolower((unsigned char)text[len - 1]);
        if (last == 'k' || last == 'm') {
            scale = last == 'k' ? 1024 : 1024 * 1024;
            len--;
        }
        memcpy(digits, text, len);
        digits[len] = '\0';
        if (parse_digits(digits, &n) == 0 && n <= max / scale && n * scale >= min &&
            n * scale <= max) {
            *out = n * scale;
            return 0;
        }
    }
    snprintf(why, cap, "expected a size from %lld to %lld bytes (k and m suffixes allowed)", min,
             max);
    return -1;
}

/* "90s", "5m", "7d": the largest unit that divides the value. */
static const char *duration_text(long long s, char *out, size_t cap)
{
    if (s > 0 && s % 86400 == 0)
        snprintf(out, cap, "%lldd", s / 86400);
    else if (s > 0 && s % 3600 == 0)
        snprintf(out, cap, "%lldh", s / 3600);
    else if (s > 0 && s % 60 == 0)
        snprintf(out, cap, "%lldm", s / 60);
    else
        snprintf(out, cap, "%llds", s);
    return out;
}

int cfg_parse_duration(const char *text, long long min, long long max, int64_t *out, char *why,
                       size_t cap)
{
    int64_t s;
    struct tw_err e;
    if (clock_duration_parse(text, &s, &e) != 0 || s < min || s > max) {
        char lo[24], hi[24];
        snprintf(why, cap, "expected a duration from %s to %s, e.g. 30s, 5m, 1h",
                 duration_text(min, lo, sizeof(lo)), duration_text(max, hi, sizeof(hi)));
        return -1;
    }
    *out = s;
    return 0;
}
