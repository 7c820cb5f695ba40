/* Helpers shared by the `twoway ca` subcommands (private to src/cli). */
#ifndef TW_CLI_CA_COMMON_H
#define TW_CLI_CA_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "pki/pki.h"
#include "store/store.h"
#include "util/err.h"

/* The CA passphrase from --passphrase-file, else $TWOWAY_PASSPHRASE_FILE. *have is 0 when
 * neither is set (out untouched). */
int ca_passphrase(const char *flag, struct pki_secret *out, int *have,
                  struct tw_err *err) TW_MUST_CHECK;

/* Open the CA in dir; when unlock is set, also load the signing key with the passphrase from
 * passfile / $TWOWAY_PASSPHRASE_FILE. On an unlock failure the failure is audited as action. */
int ca_open(const char *dir, const char *passfile, const char *action, int unlock,
            struct pki_ca **out, struct tw_err *err) TW_MUST_CHECK;

/* The PKCS#12 password from --p12-pass-file, else $TWOWAY_P12_PASS_FILE. Returns 1 when
 * neither is set (a usage error for the caller), 0 when read, -1 on a read failure. */
int ca_p12_password(const char *flag, struct pki_secret *out, struct tw_err *err) TW_MUST_CHECK;

/* Make a key of type t for name: in store (a pkcs11: URI or "tpm2:", labelled "NAME TIME" in
 * a token so successive keys never clash) when store is non-empty, else in memory. *file is
 * the key file to write (PEM, a reference line or a TSS2 blob); free with pki_pem_free. */
EVP_PKEY *ca_key_make(const char *store, const char *name, enum pki_key_type t, char **file,
                      size_t *len, struct tw_err *err);

/* Write a user-facing output file: fs_write_new, or fs_write_atomic with force. */
int ca_write_output(const char *path, const void *data, size_t len, mode_t mode, int force,
                    struct tw_err *err) TW_MUST_CHECK;

/* "30" (days) or a duration with a unit ("12h", "2w") into seconds, 1 s .. 100 years. */
int ca_parse_validity(const char *text, int64_t *seconds, struct tw_err *err) TW_MUST_CHECK;

/* A whole number in [min, max] for flag; TW_ERR_USAGE otherwise. */
int ca_parse_int(const char *flag, const char *text, long min, long max, long *out,
                 struct tw_err *err) TW_MUST_CHECK;

/* "valid", "revoked", "expired". */
const char *ca_status_name(enum store_status s);

/* One inventory row as the JSON object `ca list --json` and `ca show --json` print. */
json_t *ca_row_json(const struct store_cert *c);

/* Print a row as "key: value" lines (ca show). */
void ca_row_print(const struct store_cert *c);

/* --key TYPE / --key-type TYPE: the key type, and whether the flag was given. */
struct ca_key_flag {
    enum pki_key_type type;
    bool given;
};

/* The usage error of the commands that take one certificate: "expected one SERIAL or NAME". */
extern const char ca_one_cert_error[];

/* FLAG_CALL parsers (flags.h) for values several commands take. */
int ca_flag_key(void *key_flag, const char *value, struct tw_err *err) TW_MUST_CHECK;
int ca_flag_sans(void *sans, const char *value, struct tw_err *err) TW_MUST_CHECK;
int ca_flag_validity(void *seconds, const char *value, struct tw_err *err) TW_MUST_CHECK;

#endif
