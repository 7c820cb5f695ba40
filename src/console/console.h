/* console: the CA's web console and JSON API, served by `ca serve --console` on its HTTPS
 * listener behind the CA's own client certificates.
 *
 * /api/v1/ answers JSON, /console/ server-rendered HTML (plus one small script and one style
 * sheet, both served from here: no CDN, a strict Content-Security-Policy, no inline script).
 * A request is let in only with a client certificate that verified against the CA, is in the
 * inventory with the same SHA-256 and is not revoked or expired, and matches a role:
 * console-allow rules (read) or console-admin-allow rules (read and write; the certificate
 * must also have the admin profile, which only `ca issue admin` makes). No rules: nobody.
 * Writes are POSTs that carry the session's CSRF token; each is audited with the admin's
 * subject and serial. Everything is read and written through pki and store. */
#ifndef TW_CONSOLE_H
#define TW_CONSOLE_H

#include "est/est.h"
#include "pki/pki.h"
#include "tlsx/tlsx.h"
#include "util/err.h"

struct console;

struct console_opts {
    struct pki_ca *ca;              /* unlocked (revocation writes the CRL); borrowed */
    struct pki_signer *ocsp_signer; /* answers "revocation as OCSP would say"; borrowed */
    struct tlsx_policy *readers;    /* console-allow; referenced; NULL or empty: nobody */
    struct tlsx_policy *admins;     /* console-admin-allow; referenced; NULL or empty: nobody */
};

/* A console for ca. TW_ERR_INTERNAL when out of memory or randomness. */
struct console *console_new(const struct console_opts *opts, struct tw_err *err);
void console_free(struct console *c);

/* The extensions to hand est_server_opts.exts: /api/v1/ and /console/, NULL-terminated;
 * valid while c lives. */
const struct est_ext *console_exts(struct console *c);

/* One line for `ca serve` to print at start: who may use the console. */
void console_describe(const struct console *c, char *out, size_t cap);

#endif
