/* RFC 7512 PKCS#11 URIs: "pkcs11:" path attributes separated by ';', then an optional '?'
 * and query attributes separated by '&', values percent-encoded (RFC 7512 §2.3). twoway reads
 * the attributes that name a key (token, object, id, type) and those that say how to reach it
 * (module-path, pin-source); pin-value is refused so a PIN never sits in a config file or a
 * process listing. */
#include <stdio.h>
#include <string.h>

#include "keystore/internal.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode [v, v + n) into out (cap bytes); *outlen the decoded length. */
static int pct_decode(const char *v, size_t n, unsigned char *out, size_t cap, size_t *outlen,
                      const char *attr, struct tw_err *err)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)v[i];
        if (c == '%') {
            TW_ENSURE(i + 2 < n, err, TW_ERR_CONFIG,
                      "pkcs11 URI: '%s' has a truncated %%-escape", attr);
            int h = hexval((unsigned char)v[i + 1]);
            int l = hexval((unsigned char)v[i + 2]);
            TW_ENSURE(h >= 0 && l >= 0, err, TW_ERR_CONFIG,
                      "pkcs11 URI: '%s' has a bad %%-escape", attr);
            c = h * 16 + l;
            i += 2;
        }
        TW_ENSURE(o < cap, err, TW_ERR_CONFIG, "pkcs11 URI: '%s' is longer than %zu bytes", attr,
                  cap);
        out[o++] = (unsigned char)c;
    }
    *outlen = o;
    return 0;
}

/* Decode into a NUL-terminated string; an embedded NUL is refused. */
static int pct_string(const char *v, size_t n, char *out, size_t cap, const char *attr,
                      struct tw_err *err)
{
    size_t len = 0;
    TW_GUARD(pct_decode(v, n, (unsigned char *)out, cap - 1, &len, attr, err));
    TW_ENSURE(memchr(out, '\0', len) == NULL, err, TW_ERR_CONFIG,
              "pkcs11 URI: '%s' holds a NUL byte", attr);
    out[len] = '\0';
    return 0;
}

static int set_pin_source(struct p11_uri *u, const char *v, size_t n, struct tw_err *err)
{
    char src[KEYSTORE_REF_MAX];
    TW_GUARD(pct_string(v, n, src, sizeof(src), "pin-source", err));
    const char *path = strncmp(src, "file:", 5) == 0 ? src + 5 : src;
    TW_ENSURE(path[0] == '/', err, TW_ERR_CONFIG,
              "pkcs11 URI: pin-source must be file:/absolute/path (got '%s')", src);
    snprintf(u->pin_file, sizeof(u->pin_file), "%s", path);
    return 0;
}

static int set_attr(struct p11_uri *u, const char *a, size_t an, const char *v, size_t vn,
                    struct tw_err *err)
{
#define IS(name) (an == strlen(name) && memcmp(a, name, an) == 0)
    if (IS("token"))
        return pct_string(v, vn, u->token, sizeof(u->token), "token", err);
    if (IS("object"))
        return pct_string(v, vn, u->object, sizeof(u->object), "object", err);
    if (IS("id"))
        return pct_decode(v, vn, u->id, sizeof(u->id), &u->id_len, "id", err);
    if (IS("module-path"))
        return pct_string(v, vn, u->module, sizeof(u->module), "module-path", err);
    if (IS("pin-source"))
        return set_pin_source(u, v, vn, err);
    if (IS("type")) {
        u->want_private = vn == 7 && memcmp(v, "private", 7) == 0;
        TW_ENSURE(u->want_private, err, TW_ERR_CONFIG,
                  "pkcs11 URI: type=%.*s does not name a private key (use type=private)",
                  (int)vn, v);
        return 0;
    }
    if (IS("pin-value"))
        return tw_err_set(err, TW_ERR_CONFIG,
                          "pkcs11 URI: pin-value is refused (a PIN in a URI ends up in configs "
                          "and logs); use pin-source=file:/path or $TWOWAY_PKCS11_PIN_FILE");
    /* Attributes that only narrow the search further are accepted and ignored. */
    static const char *const ignored[] = {"manufacturer", "model",        "serial",
                                          "library-manufacturer", "library-description",
                                          "library-version", "slot-description",
                                          "slot-manufacturer", "slot-id", "module-name"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        if (IS(ignored[i]))
            return 0;
#undef IS
    return tw_err_set(err, TW_ERR_CONFIG, "pkcs11 URI: unknown attribute '%.*s'", (int)an, a);
}

int p11_uri_parse(const char *uri, struct p11_uri *out, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    out->want_private = 1;
    TW_ENSURE(strncmp(uri, "pkcs11:", 7) == 0, err, TW_ERR_CONFIG,
              "'%s' is not a pkcs11: URI", uri);
    TW_ENSURE(strlen(uri) < KEYSTORE_REF_MAX, err, TW_ERR_CONFIG,
              "pkcs11 URI longer than %d characters", KEYSTORE_REF_MAX);
    const char *p = uri + 7;
    while (*p != '\0') {
        size_t n = strcspn(p, ";?&");
        if (n > 0) {
            const char *eq = memchr(p, '=', n);
            TW_ENSURE(eq != NULL, err, TW_ERR_CONFIG,
                      "pkcs11 URI: '%.*s' is not attribute=value", (int)n, p);
            TW_GUARD(set_attr(out, p, (size_t)(eq - p), eq + 1, n - (size_t)(eq - p) - 1, err));
        }
        p += n;
        if (*p != '\0')
            p++;
    }
    TW_ENSURE(out->token[0] != '\0', err, TW_ERR_CONFIG,
              "pkcs11 URI '%s' names no token (add token=LABEL)", uri);
    return p11_uri_apply_defaults(out, err);
}
