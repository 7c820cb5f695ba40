/* EST server URLs as given on the command line: https://HOST[:PORT][/PATH]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "est/internal.h"

int est_url_parse(const char *url, struct est_url *out, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    static const char scheme[] = "https://";
    TW_ENSURE(url != NULL && strncasecmp(url, scheme, sizeof(scheme) - 1) == 0, err, TW_ERR_USAGE,
              "URL '%s' must start with https://", url != NULL ? url : "");
    const char *h = url + sizeof(scheme) - 1;
    const char *hend = h[0] == '[' ? strchr(h, ']') : h + strcspn(h, ":/");
    TW_ENSURE(hend != NULL && hend > h, err, TW_ERR_USAGE, "URL '%s' has no host", url);
    if (h[0] == '[')
        hend++;
    TW_ENSURE((size_t)(hend - h) < sizeof(out->host), err, TW_ERR_USAGE, "URL '%s': host too long",
              url);
    memcpy(out->host, h, (size_t)(hend - h));
    /* A DNS name or an address: anything else ("user@host", "%" escapes) would mean
     * something else to the URL parser of the HTTP library than to the name check. */
    const char *ok = h[0] == '[' ? "0123456789abcdefABCDEF:." : "0123456789abcdefghijklmnopqrstuvwxyz"
                                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ-.";
    size_t inner = h[0] == '[' ? strlen(out->host) - 2 : strlen(out->host);
    TW_ENSURE(inner > 0 && strspn(out->host + (h[0] == '['), ok) == inner, err, TW_ERR_USAGE,
              "URL '%s': the host is not a DNS name or an IP address", url);
    const char *p = hend;
    snprintf(out->port, sizeof(out->port), "443");
    if (*p == ':') {
        size_t n = strspn(p + 1, "0123456789");
        TW_ENSURE(n > 0 && n < 6 && (p[1 + n] == '\0' || p[1 + n] == '/'), err, TW_ERR_USAGE,
                  "URL '%s': bad port", url);
        long port = strtol(p + 1, NULL, 10);
        TW_ENSURE(port > 0 && port <= 65535, err, TW_ERR_USAGE, "URL '%s': bad port", url);
        snprintf(out->port, sizeof(out->port), "%ld", port);
        p += 1 + n;
    }
    TW_ENSURE(*p == '\0' || *p == '/', err, TW_ERR_USAGE, "URL '%s' is not https://HOST[:PORT]",
              url);
    for (const char *c = p; *c != '\0'; c++)
        TW_ENSURE(*c > ' ' && *c < 127 && *c != '?' && *c != '#', err, TW_ERR_USAGE,
                  "URL '%s': unsupported character in the path", url);
    size_t plen = strlen(p);
    while (plen > 0 && p[plen - 1] == '/')
        plen--;
    const char *wk = "/.well-known/est";
    int has = memmem(p, plen, wk, strlen(wk)) != NULL;
    TW_ENSURE(plen + strlen(wk) < sizeof(out->est_base), err, TW_ERR_USAGE, "URL '%s' too long",
              url);
    snprintf(out->est_base, sizeof(out->est_base), "%.*s%s", (int)plen, p, has ? "" : wk);
    snprintf(out->origin, sizeof(out->origin), "https://%s:%s", out->host, out->port);
    return 0;
}
