/* OpenSSL failures in plain language: verify results, TLS alerts and the SSL error queue
 * become one reason code plus a sentence, for the gateway log, doctor and the CLI alike. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "keystore/keystore.h"
#include "tlsx/internal.h"

static const struct {
    const char *code;
    const char *text;
} reasons[] = {
    [TLSX_R_OK] = {"ok", "the certificate was accepted"},
    [TLSX_R_NO_CERT] = {"no-certificate", "the peer sent no certificate"},
    [TLSX_R_EXPIRED] = {"expired", "the certificate has expired"},
    [TLSX_R_NOT_YET_VALID] = {"not-yet-valid", "the certificate is not valid yet (check clocks)"},
    [TLSX_R_UNKNOWN_CA] = {"unknown-ca",
                           "the certificate was not issued by a trusted CA (or an intermediate "
                           "certificate was not sent)"},
    [TLSX_R_MISSING_INTERMEDIATE] = {"missing-intermediate",
                                     "an intermediate CA certificate is missing from the chain"},
    [TLSX_R_REVOKED] = {"revoked", "the certificate has been revoked"},
    [TLSX_R_WRONG_EKU] = {"wrong-eku",
                          "the certificate is not allowed for this use (extended key usage "
                          "lacks clientAuth/serverAuth)"},
    [TLSX_R_POLICY] = {"policy", "the certificate is valid but denied by the allow-policy"},
    [TLSX_R_PROTOCOL] = {"protocol", "no TLS version in common (twoway requires TLS 1.2+)"},
    [TLSX_R_CIPHER] = {"cipher", "no cipher, group or signature algorithm in common"},
    [TLSX_R_KEY_MISMATCH] = {"key-mismatch", "the private key does not match the certificate"},
    [TLSX_R_NAME_MISMATCH] = {"name-mismatch",
                              "the certificate does not name this server (SAN mismatch)"},
    [TLSX_R_BAD_SIGNATURE] = {"bad-signature", "a signature in the chain or handshake is invalid"},
    [TLSX_R_CRL_MISSING] = {"crl-missing", "revocation is checked but no CRL covers the issuer"},
    [TLSX_R_CRL_EXPIRED] = {"crl-expired", "the CRL is past its nextUpdate (refresh it)"},
    [TLSX_R_NOT_TLS] = {"not-tls", "the peer does not speak TLS"},
    [TLSX_R_CLOSED] = {"closed", "the connection closed during the handshake"},
    [TLSX_R_OTHER] = {"tls-error", "the TLS handshake failed"},
};

#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

const char *tlsx_reason_code(enum tlsx_reason r)
{
    return (size_t)r < NREASONS ? reasons[r].code : "tls-error";
}

const char *tlsx_reason_text(enum tlsx_reason r)
{
    return (size_t)r < NREASONS ? reasons[r].text : "the TLS handshake failed";
}

/* X509_V_ERR_* -> reason. A table, not an if chain; unknown codes are TLSX_R_OTHER. */
static const struct {
    long verify;
    enum tlsx_reason reason;
} verify_map[] = {
    {X509_V_OK, TLSX_R_OK},
    {X509_V_ERR_CERT_HAS_EXPIRED, TLSX_R_EXPIRED},
    {X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD, TLSX_R_EXPIRED},
    {X509_V_ERR_CERT_NOT_YET_VALID, TLSX_R_NOT_YET_VALID},
    {X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD, TLSX_R_NOT_YET_VALID},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, TLSX_R_UNKNOWN_CA},
    {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, TLSX_R_UNKNOWN_CA},
    {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, TLSX_R_UNKNOWN_CA},
    {X509_V_ERR_CERT_UNTRUSTED, TLSX_R_UNKNOWN_CA},
    {X509_V_ERR_CERT_REJECTED, TLSX_R_UNKNOWN_CA},
    {X509_V_ERR_CERT_CHAIN_TOO_LONG, TLSX_R_UNKNOWN_CA},
    {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, TLSX_R_MISSING_INTERMEDIATE},
    {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, TLSX_R_MISSING_INTERMEDIATE},
    {X509_V_ERR_CERT_REVOKED, TLSX_R_REVOKED},
    {X509_V_ERR_INVALID_PURPOSE, TLSX_R_WRONG_EKU},
    {X509_V_ERR_APPLICATION_VERIFICATION, TLSX_R_POLICY},
    {X509_V_ERR_UNABLE_TO_GET_CRL, TLSX_R_CRL_MISSING},
    {X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER, TLSX_R_CRL_MISSING},
    {X509_V_ERR_DIFFERENT_CRL_SCOPE, TLSX_R_CRL_MISSING},
    {X509_V_ERR_CRL_HAS_EXPIRED, TLSX_R_CRL_EXPIRED},
    {X509_V_ERR_CRL_NOT_YET_VALID, TLSX_R_CRL_EXPIRED},
    {X509_V_ERR_CERT_SIGNATURE_FAILURE, TLSX_R_BAD_SIGNATURE},
    {X509_V_ERR_CRL_SIGNATURE_FAILURE, TLSX_R_BAD_SIGNATURE},
    {X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE, TLSX_R_BAD_SIGNATURE},
    {X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE, TLSX_R_BAD_SIGNATURE},
    {X509_V_ERR_HOSTNAME_MISMATCH, TLSX_R_NAME_MISMATCH},
    {X509_V_ERR_IP_ADDRESS_MISMATCH, TLSX_R_NAME_MISMATCH},
    {X509_V_ERR_EMAIL_MISMATCH, TLSX_R_NAME_MISMATCH},
};

enum tlsx_reason tlsx_reason_from_verify(long x509_err)
{
    for (size_t i = 0; i < sizeof(verify_map) / sizeof(verify_map[0]); i++)
        if (verify_map[i].verify == x509_err)
            return verify_map[i].reason;
    return TLSX_R_OTHER;
}

/* TLS alert description -> reason, as a client (doctor, tunnel) sees the server's verdict.
 * handshake_failure (40) is ambiguous: TLS 1.2 servers send it for a missing certificate and
 * OpenSSL sends it for an application (policy) refusal; callers that know whether they sent
 * a certificate refine it. */
static const struct {
    int alert;
    enum tlsx_reason reason;
} alert_map[] = {
    {SSL_AD_CERTIFICATE_REQUIRED, TLSX_R_NO_CERT},
    {SSL_AD_CERTIFICATE_EXPIRED, TLSX_R_EXPIRED},
    {SSL_AD_CERTIFICATE_REVOKED, TLSX_R_REVOKED},
    {SSL_AD_UNKNOWN_CA, TLSX_R_UNKNOWN_CA},
    {SSL_AD_UNSUPPORTED_CERTIFICATE, TLSX_R_WRONG_EKU},
    {SSL_AD_ACCESS_DENIED, TLSX_R_POLICY},
    {SSL_AD_PROTOCOL_VERSION, TLSX_R_PROTOCOL},
    {SSL_AD_INSUFFICIENT_SECURITY, TLSX_R_CIPHER},
    {SSL_AD_DECRYPT_ERROR, TLSX_R_BAD_SIGNATURE},
    {SSL_AD_UNRECOGNIZED_NAME, TLSX_R_NAME_MISMATCH},
};

enum tlsx_reason tlsx_reason_from_alert(int alert)
{
    for (size_t i = 0; i < sizeof(alert_map) / sizeof(alert_map[0]); i++)
        if (alert_map[i].alert == alert)
            return alert_map[i].reason;
    return TLSX_R_OTHER;
}

/* SSL library reason codes that say more than "handshake failed". */
static const struct {
    int lib_reason;
    enum tlsx_reason reason;
} ssl_map[] = {
    {SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE, TLSX_R_NO_CERT},
    {SSL_R_UNSUPPORTED_PROTOCOL, TLSX_R_PROTOCOL},
    {SSL_R_TLSV1_ALERT_PROTOCOL_VERSION, TLSX_R_PROTOCOL},
    {SSL_R_VERSION_TOO_LOW, TLSX_R_PROTOCOL},
    {SSL_R_VERSION_TOO_HIGH, TLSX_R_PROTOCOL},
    {SSL_R_WRONG_VERSION_NUMBER, TLSX_R_NOT_TLS},
    {SSL_R_HTTP_REQUEST, TLSX_R_NOT_TLS},
    {SSL_R_HTTPS_PROXY_REQUEST, TLSX_R_NOT_TLS},
    {SSL_R_PACKET_LENGTH_TOO_LONG, TLSX_R_NOT_TLS},
    {SSL_R_NO_SHARED_CIPHER, TLSX_R_CIPHER},
    {SSL_R_NO_SHARED_GROUPS, TLSX_R_CIPHER},
    {SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM, TLSX_R_CIPHER},
    {SSL_R_NO_CIPHERS_AVAILABLE, TLSX_R_CIPHER},
    {SSL_R_BAD_SIGNATURE, TLSX_R_KEY_MISMATCH},
    {SSL_R_UNEXPECTED_EOF_WHILE_READING, TLSX_R_CLOSED},
};

static enum tlsx_reason from_lib_reason(int r)
{
    /* Alerts received are reported as SSL_AD_REASON_OFFSET + the alert number. */
    if (r > SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
        return tlsx_reason_from_alert(r - SSL_AD_REASON_OFFSET);
    for (size_t i = 0; i < sizeof(ssl_map) / sizeof(ssl_map[0]); i++)
        if (ssl_map[i].lib_reason == r)
            return ssl_map[i].reason;
    return TLSX_R_OTHER;
}

static void put_detail(char *detail, size_t cap, const char *text)
{
    if (detail != NULL && cap > 0)
        snprintf(detail, cap, "%s", text != NULL ? text : "");
}

enum tlsx_reason tlsx_handshake_reason(SSL *ssl, char *detail, size_t detail_cap)
{
    put_detail(detail, detail_cap, "");
    const struct tlsx_ssl_note *note = ssl != NULL ? tlsx_ssl_note_get(ssl, false) : NULL;
    if (note != NULL && note->verdict != TLSX_R_OK) {
        put_detail(detail, detail_cap, note->detail);
        return note->verdict;
    }
    if (ssl != NULL) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
            put_detail(detail, detail_cap, X509_verify_cert_error_string(v));
            return tlsx_reason_from_verify(v);
        }
        if (note != NULL && note->alert_received >= 0) {
            /* The peer refused us: say so, since e.g. "unknown CA" then means the peer does
             * not trust our certificate. */
            if (detail != NULL && detail_cap > 0)
                snprintf(detail, detail_cap, "peer sent alert: %s",
                         tlsx_alert_name(note->alert_received));
            return tlsx_reason_from_alert(note->alert_received);
        }
    }
    /* Peek, do not drain: the caller may still log the queue. */
    unsigned long e = ERR_peek_error();
    if (e == 0) {
        put_detail(detail, detail_cap, "connection closed");
        return TLSX_R_CLOSED;
    }
    /* A signature that failed in a token or TPM reaches libssl as a bare "EVP lib": the
     * token's own reason is kept by the key store. */
    if ((ERR_GET_REASON(e) == ERR_R_EVP_LIB || ERR_GET_LIB(e) == ERR_LIB_PROV) &&
        keystore_take_failure(detail, detail != NULL ? detail_cap : 0))
        return TLSX_R_OTHER;
    const char *r = ERR_reason_error_string(e);
    put_detail(detail, detail_cap, r != NULL ? r : "unknown error");
    return ERR_GET_LIB(e) == ERR_LIB_SSL ? from_lib_reason(ERR_GET_REASON(e)) : TLSX_R_OTHER;
}

char *tlsx_ossl_describe(char *out, size_t cap)
{
    if (cap == 0)
        return out;
    out[0] = '\0';
    size_t used = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        char unknown[32];
        if (r == NULL) {
            snprintf(unknown, sizeof(unknown), "error %lu", e);
            r = unknown;
        }
        if (used + 1 < cap) {
            int n = snprintf(out + used, cap - used, "%s%s", used ? "; " : "", r);
            used += n > 0 ? (size_t)n : 0;
            if (used >= cap)
                used = cap - 1;
        }
    }
    return out;
}

/* Alerts: an info callback records the last alert in each direction on the connection's
 * note. OpenSSL reports alerts to the info callback as (SSL_CB_ALERT | SSL_CB_READ/WRITE). */
static void info_cb(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_ALERT) == 0)
        return;
    struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, false);
    if (note == NULL)
        return;
    int desc = ret & 0xff;
    if (desc == SSL_AD_CLOSE_NOTIFY)
        return;
    if (where & SSL_CB_READ)
        note->alert_received = desc;
    else
        note->alert_sent = desc;
}

int tlsx_ssl_watch_alerts(SSL *ssl, struct tw_err *err)
{
    TW_ENSURE(tlsx_ssl_note_get(ssl, true) != NULL, err, TW_ERR_INTERNAL, "out of memory");
    SSL_set_info_callback(ssl, info_cb);
    return 0;
}

int tlsx_ssl_alert_received(const SSL *ssl)
{
    const struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, false);
    return note != NULL ? note->alert_received : -1;
}

int tlsx_ssl_alert_sent(const SSL *ssl)
{
    const struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, false);
    return note != NULL ? note->alert_sent : -1;
}
