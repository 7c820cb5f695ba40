/* The CRL as /crl serves it. The file ca/crl.der is the source of truth: `twoway ca revoke`
 * (any process) rewrites it atomically, so a changed mtime, size or inode means "read it
 * again". When a third of its validity is left (or it is missing) the server makes a new one,
 * so relying parties never hold an expired CRL while the server runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "est/internal.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define CRL_FILE_MAX (16u * 1024 * 1024)

char *est_http_date(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        snprintf(out, cap, "Thu, 01 Jan 1970 00:00:00 GMT");
    return out;
}

int64_t est_http_date_parse(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = text != NULL ? strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm) : NULL;
    if (end == NULL || *end != '\0')
        return -1;
    return (int64_t)timegm(&tm);
}

static int load(struct est_crl_cache *c, const struct stat *st, struct tw_err *err)
{
    char *data = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(c->path, CRL_FILE_MAX, &data, &len, err));
    const unsigned char *p = (const unsigned char *)data;
    TW_AUTO(X509_CRL) *crl = d2i_X509_CRL(NULL, &p, (long)len);
    if (crl == NULL) {
        free(data);
        return tw_err_ossl(err, TW_ERR_PKI, "%s is not a DER CRL", c->path);
    }
    int64_t this_update = 0, next_update = 0;
    const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
    if (pki_time_to_unix(X509_CRL_get0_lastUpdate(crl), &this_update, err) != 0 ||
        (nu != NULL && pki_time_to_unix(nu, &next_update, err) != 0)) {
        free(data);
        return -1;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        free(data);
        return tw_err_ossl(err, TW_ERR_INTERNAL, "SHA-256 unavailable");
    }
    char hex[33];
    tw_hex_encode(md, 16, hex);
    snprintf(c->etag, sizeof(c->etag), "\"%.32s\"", hex);
    free(c->der);
    c->der = (unsigned char *)data;
    c->len = len;
    c->this_update = this_update;
    c->next_update = next_update;
    c->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    c->size = (int64_t)st->st_size;
    c->ino = (uint64_t)st->st_ino;
    ASN1_INTEGER *number = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    int64_t n = 0;
    c->number = number != NULL && ASN1_INTEGER_get_int64(&n, number) == 1 ? n : 0;
    ASN1_INTEGER_free(number);
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    c->entries = revoked != NULL ? sk_X509_REVOKED_num(revoked) : 0;
    return 0;
}

/* Several CA servers on one shared inventory (issue 7), each with its own CA directory: a
 * revocation made through another host is in the inventory but not in this host's CRL file.
 * At most once a second, compare the inventory's count of revoked certificates with the CRL's
 * entries; more in the inventory means a newer CRL is needed. An unreachable inventory means
 * "keep serving what we have". */
static int behind_inventory(struct est_crl_cache *c, struct pki_ca *ca, time_t now)
{
    if (c->der == NULL || now == c->checked_at)
        return 0;
    c->checked_at = now;
    char issuer[STORE_SUBJECT_MAX];
    int64_t count = 0;
    if (pki_name_to_text(X509_get_subject_name(pki_ca_intermediate_cert(ca)), issuer,
                         sizeof(issuer), NULL) != 0 ||
        store_revoked_count(pki_ca_store(ca), issuer, &count, NULL) != 0)
        return 0;
    return count > c->entries;
}

static int changed(const struct est_crl_cache *c, const struct stat *st)
{
    int64_t mtime = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    return c->der == NULL || mtime != c->mtime_ns || (int64_t)st->st_size != c->size ||
           (uint64_t)st->st_ino != c->ino;
}

static int stale(const struct est_crl_cache *c, time_t now)
{
    if (c->next_update == 0)
        return 0;
    int64_t period = c->next_update - c->this_update;
    return (int64_t)now >= c->next_update - (period > 0 ? period / 3 : 0);
}

int est_crl_refresh(struct est_crl_cache *c, struct pki_ca *ca, time_t now, struct tw_err *err)
{
    if (c->path[0] == '\0')
        TW_GUARD(fs_path_join(c->path, sizeof(c->path), pki_ca_dir(ca), "ca/crl.der", err));
    struct stat st;
    int present = stat(c->path, &st) == 0;
    if (present && changed(c, &st))
        TW_GUARD(load(c, &st, err));
    if (present && !stale(c, now) && !behind_inventory(c, ca, now))
        return 0;
    /* Missing or near its nextUpdate: publish a fresh one, then serve what was written. */
    TW_GUARD(pki_ca_crl_write(ca, 0, NULL, NULL, NULL, NULL, err));
    if (stat(c->path, &st) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot stat %s", c->path);
    return load(c, &st, err);
}

void est_crl_cache_free(struct est_crl_cache *c)
{
    free(c->der);
    c->der = NULL;
    c->len = 0;
}
