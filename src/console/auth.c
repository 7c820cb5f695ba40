/* Who may use the console, and how a write proves it was meant.
 *
 * The TLS client certificate is the session: there are no cookies to steal or to ride. A
 * certificate is let in when it verified against the CA, is the very certificate the
 * inventory holds for its serial (same SHA-256), is neither revoked nor expired there (so a
 * revocation locks an admin out at the next request, without waiting for a CRL), and matches
 * a role's rules. Browsers still send the client certificate with requests that another site
 * triggers, so every write also needs the CSRF token (HMAC of the certificate's fingerprint
 * under a per-process key, handed out on pages and by GET /api/v1/session) and, when the
 * browser says where the request came from (Origin, Sec-Fetch-Site), the same origin. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "console/internal.h"
#include "util/buf.h"

static int rules_match(const struct tlsx_policy *p, const struct tlsx_identity *id)
{
    return p != NULL && tlsx_policy_count(p) > 0 && tlsx_policy_check(p, id, NULL);
}

static int csrf_token(const struct console *c, const struct tlsx_identity *id,
                      char out[CONSOLE_CSRF_HEX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), c->csrf_key, sizeof(c->csrf_key), (const unsigned char *)id->sha256_hex,
             strlen(id->sha256_hex), mac, &len) == NULL || len != 32)
        return -1;
    tw_hex_encode(mac, len, out);
    return 0;
}

int console_auth(struct console_req *q)
{
    long verr = 0;
    X509 *cert = est_req_client_cert(q->r, &verr);
    if (cert == NULL) {
        console_fail(q, 401, "the console needs a client certificate issued by this CA");
        return -1;
    }
    struct tw_err err;
    q->id = tlsx_identity_new(cert, &err);
    if (q->id == NULL) {
        console_fail(q, 403, "the client certificate cannot be read");
        return -1;
    }
    snprintf(q->who, sizeof(q->who), "%s", q->id->subject);
    /* The identity prints whole bytes ("04AB..."); the inventory, its API and the audit log
     * drop leading zeros. */
    const char *serial = q->id->serial_hex;
    while (serial[0] == '0' && serial[1] != '\0')
        serial++;
    snprintf(q->who_serial, sizeof(q->who_serial), "%s", serial);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    int rc = store_cert_get(pki_ca_store(q->c->o.ca), q->id->serial_hex, &row, &err);
    if (rc != 0 && err.code != TW_ERR_NOTFOUND) {
        console_fail(q, 503, "the inventory cannot be read; try again shortly");
        return -1;
    }
    int known = rc == 0 && strcmp(row.sha256, q->id->sha256_hex) == 0;
    int usable = known && row.status == STORE_VALID;
    int admin_profile = known && strcmp(row.profile, "admin") == 0;
    store_cert_clear(&row);
    if (!usable) {
        console_fail(q, 403,
                     known ? "this client certificate is revoked or expired"
                           : "this client certificate is not in the CA's inventory");
        return -1;
    }
    if (admin_profile && rules_match(q->c->o.admins, q->id))
        q->role = CONSOLE_ADMIN;
    else if (rules_match(q->c->o.readers, q->id))
        q->role = CONSOLE_READ;
    if (q->role == CONSOLE_NOBODY) {
        console_fail(q, 403, "this certificate matches no console-allow rule");
        return -1;
    }
    if (csrf_token(q->c, q->id, q->csrf) != 0) {
        console_fail(q, 500, "internal error");
        return -1;
    }
    return 0;
}

/* RFC 6454 origin of the request as the browser would spell it. */
static int same_origin(struct console_req *q)
{
    const char *origin = est_req_header(q->r, "Origin");
    const char *host = est_req_header(q->r, "Host");
    if (origin != NULL) {
        char want[300];
        snprintf(want, sizeof(want), "https://%s", host != NULL ? host : "");
        if (strcmp(origin, want) != 0)
            return 0;
    }
    const char *site = est_req_header(q->r, "Sec-Fetch-Site");
    return site == NULL || strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
}

int console_auth_write(struct console_req *q)
{
    if (q->role != CONSOLE_ADMIN) {
        console_fail(q, 403, "read-only access: changes need a console-admin-allow certificate");
        return -1;
    }
    if (!same_origin(q)) {
        console_fail(q, 403, "refused: the request came from another site");
        return -1;
    }
    const char *ctype = est_req_header(q->r, "Content-Type");
    size_t len = 0;
    unsigned char *body = est_req_body(q->r, &len);
    if (body == NULL) {
        console_fail(q, 500, "out of memory");
        return -1;
    }
    int form_ok = len == 0 || (ctype != NULL && strncmp(ctype, "application/x-www-form-urlencoded",
                                                        33) == 0);
    int parsed = form_ok && (len == 0 || evhttp_parse_query_str((char *)body, &q->form) == 0);
    free(body);
    if (!parsed) {
        console_fail(q, 400, "writes take an application/x-www-form-urlencoded body");
        return -1;
    }
    const char *sent = est_req_header(q->r, "X-CSRF-Token");
    if (sent == NULL)
        sent = console_form(q, "csrf");
    if (sent == NULL || strlen(sent) != strlen(q->csrf) ||
        CRYPTO_memcmp(sent, q->csrf, strlen(q->csrf)) != 0) {
        console_fail(q, 403,
                     "missing or wrong CSRF token (X-CSRF-Token header or csrf field; GET "
                     "/api/v1/session gives it)");
        return -1;
    }
    return 0;
}

void console_audit(struct console_req *q, const char *action, const char *what,
                   const struct tw_err *failure)
{
    char result[256];
    if (failure == NULL || failure->code == TW_OK)
        snprintf(result, sizeof(result), "ok: %s (console)", what);
    else
        snprintf(result, sizeof(result), "%s: %.160s (console)", what, failure->msg);
    struct tw_err err;
    if (store_audit_add(pki_ca_store(q->c->o.ca), action, q->who, q->who_serial, result, &err) !=
        0)
        fprintf(stderr, "twoway ca serve: console audit failed: %s\n", err.msg);
}
