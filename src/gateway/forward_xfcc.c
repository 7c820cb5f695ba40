/* Envoy-style X-Forwarded-Client-Cert: Hash=...;Subject="...";URI=...;DNS=...;Cert="...".
 * Elements are Key=Value pairs separated by ';'. A value holding ',', ';', '=', a space or a
 * quote is double-quoted, and inside quotes '"' and '\' are backslash-escaped (a quoted-pair,
 * RFC 9110 §5.6.4), so a parser can always find where a value ends. */
#include "gateway/forward.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "util/cleanup.h"

static int append_quoted(struct tw_buf *out, const char *s, size_t n, struct tw_err *err)
{
    TW_GUARD(tw_buf_append(out, "\"", 1, err));
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            TW_GUARD(tw_buf_append(out, "\\", 1, err));
        TW_GUARD(tw_buf_append(out, s + i, 1, err));
    }
    return tw_buf_append(out, "\"", 1, err);
}

/* A value as is when it holds none of the separators, quoted otherwise. */
static int append_value(struct tw_buf *out, const char *s, size_t n, struct tw_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (strchr(",;=\" \\", s[i]) != NULL)
            return append_quoted(out, s, n, err);
    return tw_buf_append(out, s, n, err);
}

static int append_hash(struct tw_buf *out, X509 *cert, struct tw_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    TW_GUARD_OSSL(X509_digest(cert, EVP_sha256(), md, &md_len), err, TW_ERR_INTERNAL,
                  "cannot hash the client certificate");
    return tw_buf_appendf(out, err, "Hash=%s", tw_hex_encode(md, md_len, hex));
}

/* RFC 2253 form: OpenSSL escapes control and non-ASCII bytes (\XX), so the text is ASCII. */
static int append_subject(struct tw_buf *out, X509 *cert, struct tw_err *err)
{
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_mem());
    TW_ENSURE_OSSL(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
        return tw_err_ossl(err, TW_ERR_INTERNAL, "cannot print the client certificate subject");
    char *text = NULL;
    long n = BIO_get_mem_data(bio, &text);
    TW_GUARD(tw_buf_append(out, ";Subject=", 9, err));
    return append_quoted(out, n > 0 ? text : "", n > 0 ? (size_t)n : 0, err);
}

/* IA5String SANs may hold any byte; only printable ASCII is forwarded. */
static bool printable(const unsigned char *s, int n)
{
    if (n <= 0)
        return false;
    for (int i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    return true;
}

static int append_sans(struct tw_buf *out, X509 *cert, int type, const char *key,
                       struct tw_err *err)
{
    TW_AUTO(GENERAL_NAMES) *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != type)
            continue;
        const ASN1_IA5STRING *s = type == GEN_URI ? gn->d.uniformResourceIdentifier : gn->d.dNSName;
        const unsigned char *data = ASN1_STRING_get0_data(s);
        int len = ASN1_STRING_length(s);
        if (!printable(data, len))
            continue;
        TW_GUARD(tw_buf_appendf(out, err, ";%s=", key));
        TW_GUARD(append_value(out, (const char *)data, (size_t)len, err));
    }
    return 0;
}

/* The PEM, URL-encoded (RFC 3986 §2.3: unreserved characters kept, everything else %XX). */
static int append_cert(struct tw_buf *out, X509 *cert, struct tw_err *err)
{
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_mem());
    TW_ENSURE_OSSL(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD_OSSL(PEM_write_bio_X509(bio, cert), err, TW_ERR_INTERNAL,
                  "cannot encode the client certificate as PEM");
    char *pem = NULL;
    long n = BIO_get_mem_data(bio, &pem);
    TW_GUARD(tw_buf_append(out, ";Cert=\"", 7, err));
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pem[i];
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if (keep)
            TW_GUARD(tw_buf_append(out, &pem[i], 1, err));
        else
            TW_GUARD(tw_buf_appendf(out, err, "%%%02X", c));
    }
    return tw_buf_append(out, "\"", 1, err);
}

int gw_forward_xfcc(struct tw_buf *out, X509 *cert, struct tw_err *err)
{
    TW_ENSURE(cert != NULL, err, TW_ERR_INTERNAL, "no client certificate to forward");
    TW_GUARD(append_hash(out, cert, err));
    TW_GUARD(append_subject(out, cert, err));
    TW_GUARD(append_sans(out, cert, GEN_URI, "URI", err));
    TW_GUARD(append_sans(out, cert, GEN_DNS, "DNS", err));
    return append_cert(out, cert, err);
}
