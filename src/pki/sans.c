/* subjectAltName entries: parsing what users type, validating, and converting to and from the
 * ASN.1 GENERAL_NAMES that certificates and CSRs carry. */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"

#define SANS_LIST_MAX 8192 /* bytes of one --san argument */

static const char *const san_names[] = {
    [PKI_SAN_DNS] = "dns", [PKI_SAN_IP] = "ip", [PKI_SAN_EMAIL] = "email", [PKI_SAN_URI] = "uri"};

const char *pki_san_type_name(enum pki_san_type t)
{
    return (size_t)t < sizeof(san_names) / sizeof(san_names[0]) ? san_names[t] : "unknown";
}

/* RFC 1035 host name (letters, digits, hyphens; labels 1..63), with an optional leading "*."
 * wildcard label. */
static int dns_ok(const char *v)
{
    size_t len = strlen(v);
    if (len == 0 || len > 253)
        return 0;
    const char *p = v;
    if (strncmp(p, "*.", 2) == 0)
        p += 2;
    size_t label = 0;
    for (; *p != '\0'; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-')
            return 0;
        if (label == 0 && *p == '-')
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && p[-1] != '-';
}

static int printable_no_space(const char *v)
{
    for (const char *p = v; *p != '\0'; p++)
        if (!isgraph((unsigned char)*p) || *p == ',')
            return 0;
    return 1;
}

static int email_ok(const char *v)
{
    const char *at = strchr(v, '@');
    return printable_no_space(v) && at != NULL && at != v && at[1] != '\0' &&
           strchr(at + 1, '@') == NULL && strlen(v) <= 254;
}

/* RFC 3986 scheme ":" then something. */
static int uri_ok(const char *v)
{
    if (!isalpha((unsigned char)v[0]) || !printable_no_space(v))
        return 0;
    const char *p = v + 1;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    return *p == ':' && p[1] != '\0';
}

static int ip_canonical(const char *v, char *out, size_t cap)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, v, addr) == 1)
        return inet_ntop(AF_INET, addr, out, (socklen_t)cap) != NULL ? 0 : -1;
    if (inet_pton(AF_INET6, v, addr) == 1)
        return inet_ntop(AF_INET6, addr, out, (socklen_t)cap) != NULL ? 0 : -1;
    return -1;
}

int pki_sans_add(struct pki_sans *sans, enum pki_san_type type, const char *value,
                 struct tw_err *err)
{
    char v[PKI_SAN_VALUE_MAX];
    const char *kind = pki_san_type_name(type);
    TW_ENSURE(strlen(value) < sizeof(v), err, TW_ERR_USAGE, "SAN %s:%.40s...: too long", kind,
              value);
    int ok = 0;
    switch (type) {
    case PKI_SAN_DNS:
        ok = dns_ok(value);
        break;
    case PKI_SAN_IP:
        ok = ip_canonical(value, v, sizeof(v)) == 0;
        break;
    case PKI_SAN_EMAIL:
        ok = email_ok(value);
        break;
    case PKI_SAN_URI:
        ok = uri_ok(value);
        break;
    }
    TW_ENSURE(ok, err, TW_ERR_USAGE, "SAN %s:%s is not a valid %s", kind, value,
              type == PKI_SAN_DNS     ? "DNS name"
              : type == PKI_SAN_IP    ? "IPv4 or IPv6 address"
              : type == PKI_SAN_EMAIL ? "email address"
                                      : "URI (scheme:rest, no spaces or commas)");
    if (type != PKI_SAN_IP)
        snprintf(v, sizeof(v), "%s", value);
    for (size_t i = 0; i < sans->count; i++)
        if (sans->items[i].type == type && strcasecmp(sans->items[i].value, v) == 0)
            return 0;
    TW_ENSURE(sans->count < PKI_SANS_MAX, err, TW_ERR_USAGE, "more than %d SANs", PKI_SANS_MAX);
    sans->items[sans->count].type = type;
    snprintf(sans->items[sans->count].value, PKI_SAN_VALUE_MAX, "%s", v);
    sans->count++;
    return 0;
}

static int parse_one(struct pki_sans *sans, const char *item, struct tw_err *err)
{
    const char *colon = strchr(item, ':');
    TW_ENSURE(colon != NULL && colon != item, err, TW_ERR_USAGE,
              "SAN '%s' needs a kind: dns:, ip:, email: or uri:", item);
    size_t klen = (size_t)(colon - item);
    for (size_t t = 0; t < sizeof(san_names) / sizeof(san_names[0]); t++)
        if (strlen(san_names[t]) == klen && strncasecmp(item, san_names[t], klen) == 0)
            return pki_sans_add(sans, (enum pki_san_type)t, colon + 1, err);
    return tw_err_set(err, TW_ERR_USAGE, "SAN '%s': unknown kind (use dns:, ip:, email:, uri:)",
                      item);
}

int pki_sans_parse(struct pki_sans *sans, const char *list, struct tw_err *err)
{
    char buf[SANS_LIST_MAX];
    TW_ENSURE(strlen(list) < sizeof(buf), err, TW_ERR_USAGE, "SAN list longer than %d bytes",
              SANS_LIST_MAX);
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    int items = 0;
    for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        TW_GUARD(parse_one(sans, item, err));
        items++;
    }
    TW_ENSURE(items > 0, err, TW_ERR_USAGE, "empty SAN list");
    return 0;
}

int pki_sans_format(const struct pki_sans *sans, char *out, size_t cap, struct tw_err *err)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sans->count; i++) {
        int n = snprintf(out + used, cap - used, "%s%s:%s", i > 0 ? "," : "",
                         pki_san_type_name(sans->items[i].type), sans->items[i].value);
        TW_ENSURE(n >= 0 && (size_t)n < cap - used, err, TW_ERR_INTERNAL,
                  "SAN list longer than %zu bytes", cap);
        used += (size_t)n;
    }
    return 0;
}

static int ia5_text(const ASN1_STRING *s, char *out, size_t cap)
{
    int len = ASN1_STRING_length(s);
    const unsigned char *data = ASN1_STRING_get0_data(s);
    if (len <= 0 || (size_t)len >= cap || memchr(data, '\0', (size_t)len) != NULL)
        return -1;
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    return 0;
}

static int ip_text(const ASN1_OCTET_STRING *s, char *out, size_t cap)
{
    int len = ASN1_STRING_length(s);
    const unsigned char *data = ASN1_STRING_get0_data(s);
    if (len == 4)
        return inet_ntop(AF_INET, data, out, (socklen_t)cap) != NULL ? 0 : -1;
    if (len == 16)
        return inet_ntop(AF_INET6, data, out, (socklen_t)cap) != NULL ? 0 : -1;
    return -1;
}

int sans_from_general_names(const GENERAL_NAMES *names, unsigned allowed_mask, const char *label,
                            struct pki_sans *sans, struct tw_err *err)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        char v[PKI_SAN_VALUE_MAX];
        enum pki_san_type t;
        int rc;
        switch (gn->type) {
        case GEN_DNS:
            t = PKI_SAN_DNS, rc = ia5_text(gn->d.dNSName, v, sizeof(v));
            break;
        case GEN_EMAIL:
            t = PKI_SAN_EMAIL, rc = ia5_text(gn->d.rfc822Name, v, sizeof(v));
            break;
        case GEN_URI:
            t = PKI_SAN_URI, rc = ia5_text(gn->d.uniformResourceIdentifier, v, sizeof(v));
            break;
        case GEN_IPADD:
            t = PKI_SAN_IP, rc = ip_text(gn->d.iPAddress, v, sizeof(v));
            break;
        default:
            return tw_err_set(err, TW_ERR_PKI,
                              "%s: SAN of a kind twoway does not issue (only dns, ip, email, "
                              "uri)",
                              label);
        }
        TW_ENSURE(rc == 0, err, TW_ERR_PKI, "%s: malformed %s SAN", label, pki_san_type_name(t));
        TW_ENSURE((allowed_mask & (1u << t)) != 0, err, TW_ERR_PKI,
                  "%s: SAN %s:%s is not allowed in this profile", label, pki_san_type_name(t), v);
        if (pki_sans_add(sans, t, v, err) != 0) {
            char msg[TW_ERR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "");
            return tw_err_set(err, TW_ERR_PKI, "%s: %s", label, msg);
        }
    }
    return 0;
}

int sans_from_cert(const X509 *cert, struct pki_sans *sans, struct tw_err *err)
{
    sans->count = 0;
    int crit = 0;
    TW_AUTO(GENERAL_NAMES) *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (names == NULL) {
        ERR_clear_error();
        return 0;
    }
    return sans_from_general_names(names, ~0u, "certificate", sans, err);
}

static GENERAL_NAME *one_name(const struct pki_san *san)
{
    if (san->type == PKI_SAN_IP)
        return a2i_GENERAL_NAME(NULL, NULL, NULL, GEN_IPADD, san->value, 0);
    int type = san->type == PKI_SAN_DNS     ? GEN_DNS
               : san->type == PKI_SAN_EMAIL ? GEN_EMAIL
                                            : GEN_URI;
    return a2i_GENERAL_NAME(NULL, NULL, NULL, type, san->value, 0);
}

GENERAL_NAMES *sans_to_general_names(const struct pki_sans *sans, struct tw_err *err)
{
    TW_AUTO(GENERAL_NAMES) *names = sk_GENERAL_NAME_new_null();
    TW_ENSURE_PTR(names != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < sans->count; i++) {
        GENERAL_NAME *gn = one_name(&sans->items[i]);
        if (gn == NULL || sk_GENERAL_NAME_push(names, gn) <= 0) {
            GENERAL_NAME_free(gn);
            tw_err_ossl(err, TW_ERR_PKI, "cannot encode SAN %s:%s",
                        pki_san_type_name(sans->items[i].type), sans->items[i].value);
            return NULL;
        }
    }
    return TW_TAKE(names);
}

int pki_name_check(const char *name, struct tw_err *err)
{
    size_t len = strlen(name);
    TW_ENSURE(len > 0 && len <= PKI_NAME_MAX, err, TW_ERR_USAGE, "NAME must be 1 to %d characters",
              PKI_NAME_MAX);
    TW_ENSURE(name[0] != '.' && name[0] != '-', err, TW_ERR_USAGE,
              "NAME '%s' must not start with '.' or '-'", name);
    for (const char *p = name; *p != '\0'; p++)
        TW_ENSURE(*p != '/' && *p != '\\' && !iscntrl((unsigned char)*p), err, TW_ERR_USAGE,
                  "NAME '%s' must not contain '/', '\\' or control characters", name);
    return 0;
}
