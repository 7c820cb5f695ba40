/* Certificate profiles: the extensions each kind of certificate carries, as one table. */
#include <string.h>

#include "pki/internal.h"

#define SAN_ALL                                                                                    \
    ((1u << PKI_SAN_DNS) | (1u << PKI_SAN_IP) | (1u << PKI_SAN_EMAIL) | (1u << PKI_SAN_URI))
#define SAN_HOST ((1u << PKI_SAN_DNS) | (1u << PKI_SAN_IP))

/* RFC 5280 §4.2.1.3/§4.2.1.9: CA certificates sign certificates and CRLs, basicConstraints
 * critical; end-entity keys only sign handshakes (RSA server keys may also decrypt, for
 * RSA key transport in old TLS). */
static const struct profile_def profiles[] = {
    [PKI_PROFILE_ROOT] = {"root", 3650, "critical,CA:TRUE", "critical,keyCertSign,cRLSign", NULL,
                          NULL, 0, 0, 0, 0},
    [PKI_PROFILE_INTERMEDIATE] = {"intermediate", 1825, "critical,CA:TRUE,pathlen:0",
                                  "critical,keyCertSign,cRLSign", NULL, NULL, 0, 0, 0, 0},
    [PKI_PROFILE_OCSP] = {"ocsp", 1825, "critical,CA:FALSE", "critical,digitalSignature", NULL,
                          "OCSPSigning", 1, 0, 0, 0},
    [PKI_PROFILE_CLIENT] = {"client", 30, "critical,CA:FALSE", "critical,digitalSignature", NULL,
                            "clientAuth", 0, 1, SAN_ALL, 0},
    [PKI_PROFILE_SERVER] = {"server", 90, "critical,CA:FALSE", "critical,digitalSignature",
                            "critical,digitalSignature,keyEncipherment", "serverAuth", 0, 1,
                            SAN_HOST, 1},
    [PKI_PROFILE_ADMIN] = {"admin", 30, "critical,CA:FALSE", "critical,digitalSignature", NULL,
                           "clientAuth", 0, 1, SAN_ALL, 0},
};
#define PROFILE_COUNT (sizeof(profiles) / sizeof(profiles[0]))

const struct profile_def *profile_get(enum pki_profile p)
{
    return (size_t)p < PROFILE_COUNT ? &profiles[p] : NULL;
}

int pki_profile_parse(const char *name, enum pki_profile *out, struct tw_err *err)
{
    for (size_t i = 0; i < PROFILE_COUNT; i++) {
        if (strcmp(name, profiles[i].name) == 0) {
            *out = (enum pki_profile)i;
            return 0;
        }
    }
    return tw_err_set(err, TW_ERR_USAGE,
                      "unknown profile '%s' (use root, intermediate, ocsp, client, server or admin)",
                      name);
}

const char *pki_profile_name(enum pki_profile p)
{
    return (size_t)p < PROFILE_COUNT ? profiles[p].name : "unknown";
}

int pki_profile_default_days(enum pki_profile p)
{
    return (size_t)p < PROFILE_COUNT ? profiles[p].default_days : 0;
}

int pki_profile_allows_san(enum pki_profile p, enum pki_san_type t)
{
    return (size_t)p < PROFILE_COUNT && (profiles[p].san_mask & (1u << t)) != 0;
}
