/* twoway bench --est, before the measured window: the tokens file, and per enrollment a fresh
 * P-256 key, a CSR for it (CN = the token's name, RFC 2986) and the whole HTTP request with
 * the token as an HTTP Basic credential (RFC 7030 §3.2.3), so the window only moves bytes. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "bench/est_internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* A character allowed in a token: what `ca token` makes (hex) and more, never ':' or space. */
static bool token_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@';
}

/* One "NAME TOKEN" line (already without its newline): the token is the last field, the name
 * all before it (a certificate NAME may hold spaces), both trimmed. */
static int parse_line(const char *what, size_t lineno, const char *p, size_t len,
                      struct bench_token *t, struct tw_err *err)
{
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    size_t ts = len;
    while (ts > 0 && !isspace((unsigned char)p[ts - 1]))
        ts--;
    size_t ne = ts;
    while (ne > 0 && isspace((unsigned char)p[ne - 1]))
        ne--;
    TW_ENSURE(ne > 0 && ts < len, err, TW_ERR_CONFIG,
              "%s line %zu: expected NAME TOKEN (what `twoway ca token --count N --out FILE` "
              "writes)", what, lineno);
    TW_ENSURE(len - ts <= BENCH_EST_TOKEN_MAX, err, TW_ERR_CONFIG,
              "%s line %zu: token longer than %d characters", what, lineno, BENCH_EST_TOKEN_MAX);
    TW_ENSURE(ne <= BENCH_EST_NAME_MAX, err, TW_ERR_CONFIG,
              "%s line %zu: name longer than %d characters", what, lineno, BENCH_EST_NAME_MAX);
    for (size_t i = ts; i < len; i++)
        TW_ENSURE(token_char((unsigned char)p[i]), err, TW_ERR_CONFIG,
                  "%s line %zu: the token holds '%c' (expected letters, digits, . _ - @)", what,
                  lineno, isprint((unsigned char)p[i]) ? p[i] : '?');
    for (size_t i = 0; i < ne; i++)
        TW_ENSURE(isprint((unsigned char)p[i]) && p[i] != ':', err, TW_ERR_CONFIG,
                  "%s line %zu: the name holds %s (an HTTP Basic user name cannot)", what,
                  lineno, p[i] == ':' ? "':'" : "a control character");
    memcpy(t->name, p, ne);
    t->name[ne] = '\0';
    memcpy(t->token, p + ts, len - ts);
    t->token[len - ts] = '\0';
    return 0;
}

int bench_tokens_parse(const char *what, const char *text, size_t len, struct bench_token **out,
                       size_t *n, struct tw_err *err)
{
    *out = NULL;
    *n = 0;
    struct bench_token *v = NULL;
    size_t cap = 0, count = 0, lineno = 0;
    const char *p = text, *end = text + len;
    int rc = -1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl != NULL ? nl : end;
        lineno++;
        const char *s = p;
        while (s < le && (*s == ' ' || *s == '\t'))
            s++;
        p = nl != NULL ? nl + 1 : end;
        if (s == le || *s == '#' || (le - s == 1 && *s == '\r'))
            continue;
        if (count == BENCH_EST_MAX_ENROLLMENTS) {
            tw_err_set(err, TW_ERR_CONFIG, "%s: more than %d tokens", what,
                       BENCH_EST_MAX_ENROLLMENTS);
            goto out;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct bench_token *nv = realloc(v, ncap * sizeof(*nv));
            if (nv == NULL) {
                tw_err_set(err, TW_ERR_INTERNAL, "out of memory for %zu tokens", ncap);
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        if (parse_line(what, lineno, s, (size_t)(le - s), &v[count], err) != 0)
            goto out;
        count++;
    }
    if (count == 0) {
        tw_err_set(err, TW_ERR_CONFIG, "%s: no tokens (expected lines NAME TOKEN)", what);
        goto out;
    }
    *out = v;
    *n = count;
    v = NULL;
    rc = 0;
out:
    bench_tokens_free(v, cap);
    return rc;
}

int bench_tokens_load(const char *path, struct bench_token **out, size_t *n, struct tw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(path, BENCH_EST_TOKENS_FILE_MAX, &text, &len, err));
    int rc = bench_tokens_parse(path, text, len, out, n, err);
    OPENSSL_clear_free(text, len);
    return rc;
}

void bench_tokens_free(struct bench_token *t, size_t n)
{
    if (t == NULL)
        return;
    OPENSSL_cleanse(t, n * sizeof(*t));
    free(t);
}

/* base64 of len bytes, one line, NUL-terminated (free()). */
static char *b64(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static int make_csr(const char *name, EVP_PKEY *key, unsigned char **der, int *dlen,
                    struct tw_err *err)
{
    TW_AUTO(X509_REQ) *req = X509_REQ_new();
    TW_ENSURE_OSSL(req != NULL, err, TW_ERR_INTERNAL, "cannot make a CSR");
    X509_NAME *subj = X509_REQ_get_subject_name(req);
    TW_GUARD_OSSL(X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
                                             (const unsigned char *)name, -1, -1, 0),
                  err, TW_ERR_INTERNAL, "CSR subject CN=%s", name);
    TW_GUARD_OSSL(X509_REQ_set_pubkey(req, key), err, TW_ERR_INTERNAL, "CSR key");
    TW_ENSURE_OSSL(X509_REQ_sign(req, key, EVP_sha256()) > 0, err, TW_ERR_INTERNAL,
                   "cannot sign the CSR");
    *der = NULL;
    *dlen = i2d_X509_REQ(req, der);
    TW_ENSURE_OSSL(*dlen > 0, err, TW_ERR_INTERNAL, "cannot encode the CSR");
    return 0;
}

/* RFC 7030 §4.2.1: a base64 PKCS#10 body; §3.2.3: the token as the HTTP Basic password. */
#define REQUEST_FMT                                                                                \
    "POST %s/simpleenroll HTTP/1.1\r\nHost: %s%s%s:%s\r\nAuthorization: Basic %s\r\n"            \
    "Content-Type: application/pkcs10\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s"

static int make_request(const struct bench_est_opts *o, const struct bench_token *t,
                        const char *csr_b64, struct est_item *it, struct tw_err *err)
{
    char cred[BENCH_EST_NAME_MAX + BENCH_EST_TOKEN_MAX + 2];
    snprintf(cred, sizeof(cred), "%s:%s", t->name, t->token);
    char *auth = b64((const unsigned char *)cred, strlen(cred));
    OPENSSL_cleanse(cred, sizeof(cred));
    TW_ENSURE(auth != NULL, err, TW_ERR_INTERNAL, "out of memory");
    size_t blen = strlen(csr_b64);
    const char *host = o->server_name != NULL ? o->server_name : o->host;
    bool v6 = strchr(host, ':') != NULL;
    const char *base = o->base != NULL ? o->base : "/.well-known/est";
    int n = snprintf(NULL, 0, REQUEST_FMT, base, v6 ? "[" : "", host, v6 ? "]" : "", o->port, auth, blen,
                     csr_b64);
    it->req = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (it->req != NULL)
        snprintf(it->req, (size_t)n + 1, REQUEST_FMT, base, v6 ? "[" : "", host, v6 ? "]" : "", o->port,
                 auth, blen, csr_b64);
    OPENSSL_clear_free(auth, strlen(auth));
    TW_ENSURE(it->req != NULL, err, TW_ERR_INTERNAL, "out of memory for the requests");
    it->req_len = (size_t)n;
    return 0;
}

int est_items_prepare(const struct bench_est_opts *o, const struct bench_token *tokens,
                      size_t n, struct est_item *items, struct tw_err *err)
{
    for (size_t i = 0; i < n; i++) {
        struct est_item *it = &items[i];
        TW_AUTO(EVP_PKEY) *key = EVP_EC_gen("P-256");
        TW_ENSURE_OSSL(key != NULL, err, TW_ERR_INTERNAL, "cannot make a P-256 key");
        unsigned char *der = NULL;
        int dlen = i2d_PUBKEY(key, &der);
        TW_ENSURE_OSSL(dlen > 0, err, TW_ERR_INTERNAL, "cannot encode a public key");
        it->spki = der;
        it->spki_len = (size_t)dlen;
        der = NULL;
        TW_GUARD(make_csr(tokens[i].name, key, &der, &dlen, err));
        char *csr_b64 = b64(der, (size_t)dlen);
        OPENSSL_free(der);
        TW_ENSURE(csr_b64 != NULL, err, TW_ERR_INTERNAL, "out of memory");
        int rc = make_request(o, &tokens[i], csr_b64, it, err);
        free(csr_b64);
        TW_GUARD(rc);
    }
    return 0;
}

void est_items_free(struct est_item *items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++) {
        OPENSSL_free(items[i].spki);
        if (items[i].req != NULL)
            OPENSSL_clear_free(items[i].req, items[i].req_len);
    }
    free(items);
}
