/* HTTP mode helpers without parser state: canned error responses, the Host check, header-name
 * and value character rules, and the 101 check after an Upgrade. */
#include "gateway/http.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Spelled out so they live in static storage and need no formatting at run time; the unit test
 * checks every Content-Length against its body. Body: "<status> <reason>\n". */
static const struct {
    int status;
    const char *text;
} responses[] = {
    {400, "HTTP/1.1 400 Bad Request\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 16\r\n\r\n400 Bad Request\n"},
    {403, "HTTP/1.1 403 Forbidden\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 14\r\n\r\n403 Forbidden\n"},
    {421, "HTTP/1.1 421 Misdirected Request\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 24\r\n\r\n421 Misdirected Request\n"},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 36\r\n\r\n431 Request Header Fields Too Large\n"},
    {500, "HTTP/1.1 500 Internal Server Error\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 26\r\n\r\n500 Internal Server Error\n"},
    {502, "HTTP/1.1 502 Bad Gateway\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 16\r\n\r\n502 Bad Gateway\n"},
    {503, "HTTP/1.1 503 Service Unavailable\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 24\r\n\r\n503 Service Unavailable\n"},
    {504, "HTTP/1.1 504 Gateway Timeout\r\n"
           "Content-Type: text/plain\r\nConnection: close\r\n"
           "Content-Length: 20\r\n\r\n504 Gateway Timeout\n"},
};

const char *gw_http_error_response(int status, size_t *len)
{
    size_t fallback = 0;
    for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
        if (responses[i].status == 500)
            fallback = i;
        if (responses[i].status == status) {
            *len = strlen(responses[i].text);
            return responses[i].text;
        }
    }
    *len = strlen(responses[fallback].text);
    return responses[fallback].text;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Split "name", "name:port", "[v6]" or "[v6]:port" into the name part. False when malformed. */
static bool host_name_part(const char *v, size_t n, const char **name, size_t *name_len)
{
    if (n > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (close == NULL)
            return false;
        size_t after = n - (size_t)(close - v) - 1;
        if (after > 0 && (close[1] != ':' || !all_digits(close + 2, after - 1)))
            return false;
        *name = v + 1;
        *name_len = (size_t)(close - v) - 1;
        return *name_len > 0;
    }
    const char *colon = memchr(v, ':', n);
    if (colon != NULL) {
        size_t port_len = n - (size_t)(colon - v) - 1;
        if (!all_digits(colon + 1, port_len))
            return false; /* a second colon or a non-numeric port */
        n = (size_t)(colon - v);
    }
    /* "example.com." names the same host as "example.com". */
    if (n > 1 && v[n - 1] == '.')
        n--;
    *name = v;
    *name_len = n;
    return n > 0;
}

static bool name_matches(const char *pattern, const char *name, size_t len)
{
    size_t plen = strlen(pattern);
    if (plen > 1 && pattern[plen - 1] == '.')
        plen--;
    if (plen == len && strncasecmp(pattern, name, len) == 0)
        return true;
    /* "*.example.com": exactly one non-empty label in front of example.com. */
    if (plen > 2 && pattern[0] == '*' && pattern[1] == '.') {
        const char *dot = memchr(name, '.', len);
        if (dot == NULL || dot == name)
            return false;
        size_t rest = len - (size_t)(dot - name) - 1;
        return rest == plen - 2 && strncasecmp(pattern + 2, dot + 1, rest) == 0;
    }
    return false;
}

int gw_http_host_allowed(const char *const *hosts, size_t n_hosts, const char *host, size_t len)
{
    const char *name;
    size_t name_len;
    if (!host_name_part(host, len, &name, &name_len))
        return 0;
    for (size_t i = 0; i < n_hosts; i++)
        if (hosts[i] != NULL && name_matches(hosts[i], name, name_len))
            return 1;
    return 0;
}

int gw_http_upgrade_accepted(const void *data, size_t len)
{
    /* "HTTP/1.1 101" then SP (or, from lax servers, the line end). HTTP/1.0 has no Upgrade. */
    static const char want[] = "HTTP/1.1 101";
    const size_t n = sizeof(want) - 1;
    const char *p = data;
    if (memcmp(p, want, len < n ? len : n) != 0)
        return 0;
    if (len <= n)
        return -1;
    return p[n] == ' ' || p[n] == '\r' || p[n] == '\n';
}
