/* Helpers shared by the `twoway ca` subcommands. */
#include "cli/ca_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "cli/cli.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"

int ca_passphrase(const char *flag, struct pki_secret *out, int *have, struct tw_err *err)
{
    const char *path = flag != NULL ? flag : getenv("TWOWAY_PASSPHRASE_FILE");
    *have = 0;
    if (path == NULL || path[0] == '\0')
        return 0;
    TW_GUARD(pki_secret_read_file(path, out, err));
    *have = 1;
    return 0;
}

int ca_open(const char *dir, const char *passfile, const char *action, int unlock,
            struct pki_ca **out, struct tw_err *err)
{
    struct pki_ca *ca = NULL;
    TW_GUARD(pki_ca_open(dir, &ca, err));
    if (unlock) {
        struct pki_secret pass;
        int have = 0;
        int rc = ca_passphrase(passfile, &pass, &have, err);
        if (rc == 0)
            rc = pki_ca_unlock(ca, have ? &pass : NULL, err);
        pki_secret_wipe(&pass);
        if (rc != 0) {
            struct tw_err ignored;
            if (pki_ca_audit(ca, action, NULL, NULL, err, &ignored) != 0)
                tw_err_clear(&ignored);
            pki_ca_free(ca);
            return -1;
        }
    }
    *out = ca;
    return 0;
}

int ca_p12_password(const char *flag, struct pki_secret *out, struct tw_err *err)
{
    const char *path = flag != NULL ? flag : getenv("TWOWAY_P12_PASS_FILE");
    if (path == NULL || path[0] == '\0')
        return 1;
    return pki_secret_read_file(path, out, err);
}

int ca_write_output(const char *path, const void *data, size_t len, mode_t mode, int force,
                    struct tw_err *err)
{
    if (force)
        return fs_write_atomic(path, data, len, mode, err);
    if (fs_write_new(path, data, len, mode, err) == 0)
        return 0;
    if (err != NULL && err->code == TW_ERR_EXISTS)
        tw_err_set(err, TW_ERR_EXISTS, "%s already exists (use --force to overwrite it)", path);
    return -1;
}

int ca_parse_int(const char *flag, const char *text, long min, long max, long *out,
                 struct tw_err *err)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    TW_ENSURE(text[0] != '\0' && end != NULL && *end == '\0' && v >= min && v <= max, err,
              TW_ERR_USAGE, "%s '%s': expected a whole number from %ld to %ld", flag, text, min,
              max);
    *out = v;
    return 0;
}

int ca_parse_validity(const char *text, int64_t *seconds, struct tw_err *err)
{
    long days = 0; /* set when ca_parse_int returns 0 (gcc -O3 cannot see across files) */
    /* Bare numbers are days. Anything past 100 years is clipped there; the issuer's notAfter
     * caps it further, so "--days 100000" means "as long as the CA allows". */
    if (ca_parse_int("--days", text, 1, 10000000, &days, NULL) == 0) {
        *seconds = (int64_t)(days > 36500 ? 36500 : days) * 86400;
        return 0;
    }
    int64_t secs = 0;
    if (clock_duration_parse(text, &secs, NULL) != 0 || secs < 1)
        return tw_err_set(err, TW_ERR_USAGE,
                          "--days '%s': expected days (30) or a duration (12h, 2w)", text);
    *seconds = secs > (int64_t)36500 * 86400 ? (int64_t)36500 * 86400 : secs;
    return 0;
}

const char *ca_status_name(enum store_status s)
{
    return s == STORE_REVOKED ? "revoked" : s == STORE_EXPIRED ? "expired" : "valid";
}

static json_t *time_json(int64_t t)
{
    char buf[32];
    return json_string(clock_iso8601((time_t)t, buf, sizeof(buf)));
}

static json_t *sans_json(const char *sans)
{
    json_t *arr = json_array();
    char buf[STORE_SANS_MAX];
    snprintf(buf, sizeof(buf), "%s", sans);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(item));
    return arr;
}

json_t *ca_row_json(const struct store_cert *c)
{
    int revoked = c->status == STORE_REVOKED;
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o}", "serial",
                     c->serial, "name", c->name, "subject", c->subject, "sans", sans_json(c->sans),
                     "profile", c->profile, "issuer", c->issuer, "sha256", c->sha256, "not_before",
                     time_json(c->not_before), "not_after", time_json(c->not_after), "issued_at",
                     time_json(c->issued_at), "status", ca_status_name(c->status), "revoked_at",
                     revoked ? time_json(c->revoked_at) : json_null(), "reason",
                     revoked ? json_string(pki_reason_name(c->revoke_reason)) : json_null());
}

void ca_row_print(const struct store_cert *c)
{
    char t[32];
    printf("serial: %s\n", c->serial);
    printf("name: %s\n", c->name);
    printf("subject: %s\n", c->subject);
    printf("issuer: %s\n", c->issuer);
    printf("profile: %s\n", c->profile);
    printf("sans: %s\n", c->sans);
    printf("status: %s\n", ca_status_name(c->status));
    printf("not_before: %s\n", clock_iso8601((time_t)c->not_before, t, sizeof(t)));
    printf("not_after: %s\n", clock_iso8601((time_t)c->not_after, t, sizeof(t)));
    printf("issued_at: %s\n", clock_iso8601((time_t)c->issued_at, t, sizeof(t)));
    printf("sha256: %s\n", c->sha256);
    if (c->status == STORE_REVOKED) {
        printf("revoked_at: %s\n", clock_iso8601((time_t)c->revoked_at, t, sizeof(t)));
        printf("reason: %s\n", pki_reason_name(c->revoke_reason));
    }
}

const char ca_one_cert_error[] = "expected one SERIAL or NAME";

int ca_flag_key(void *key_flag, const char *value, struct tw_err *err)
{
    struct ca_key_flag *k = key_flag;
    TW_GUARD(pki_key_type_parse(value, &k->type, err));
    k->given = true;
    return 0;
}

/* --san is repeatable: each occurrence adds to the list. */
int ca_flag_sans(void *sans, const char *value, struct tw_err *err)
{
    return pki_sans_parse(sans, value, err);
}

int ca_flag_validity(void *seconds, const char *value, struct tw_err *err)
{
    return ca_parse_validity(value, seconds, err);
}

EVP_PKEY *ca_key_make(const char *store, const char *name, enum pki_key_type t, char **file,
                      size_t *len, struct tw_err *err)
{
    *file = NULL;
    *len = 0;
    if (store != NULL && store[0] != '\0') {
        /* A random tail: a renewal in the same second as the enrollment (or two devices of
         * one name on one token) must not collide with the key already there. */
        char label[PKI_NAME_MAX + 48], when[32], tail[9];
        uint8_t rnd[4];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            (void)tw_err_ossl(err, TW_ERR_INTERNAL, "no random bytes for a key label");
            return NULL;
        }
        snprintf(label, sizeof(label), "%s %s %s", name,
                 clock_iso8601(time(NULL), when, sizeof(when)),
                 tw_hex_encode(rnd, sizeof(rnd), tail));
        return pki_key_generate_in(store, label, t, file, len, err);
    }
    EVP_PKEY *key = pki_key_generate(t, err);
    if (key != NULL && pki_key_to_pem(key, NULL, file, len, err) != 0) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}
