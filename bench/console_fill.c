/* Fill an inventory with N synthetic certificate rows through the store API (for
 * bench/console_inventory): names bulk-000000.., random serials, expiries spread over a
 * year, every 20th revoked. One transaction per 1000 rows.
 * usage: console_fill STORE-URI N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "store/store.h"
#include "util/buf.h"

#define BATCH 1000

struct batch {
    long first, n;
};

static int put_batch(struct store *s, void *ctx, struct tw_err *err)
{
    const struct batch *b = ctx;
    int64_t now = (int64_t)time(NULL);
    for (long i = b->first; i < b->first + b->n; i++) {
        struct store_cert c;
        memset(&c, 0, sizeof(c));
        unsigned char raw[16];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return tw_err_set(err, TW_ERR_INTERNAL, "no randomness");
        raw[0] = (unsigned char)((raw[0] & 0x7f) | 0x10); /* positive, no leading zero */
        char hex[33];
        tw_hex_encode(raw, sizeof(raw), hex);
        for (char *p = hex; *p; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 'a' + 'A');
        snprintf(c.serial, sizeof(c.serial), "%s", hex);
        snprintf(c.name, sizeof(c.name), "bulk-%06ld", i);
        snprintf(c.subject, sizeof(c.subject), "CN=bulk-%06ld", i);
        snprintf(c.sans, sizeof(c.sans), "dns:bulk-%06ld.example.com", i);
        snprintf(c.profile, sizeof(c.profile), "%s", i % 10 == 0 ? "server" : "client");
        snprintf(c.issuer, sizeof(c.issuer), "CN=bench intermediate");
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return tw_err_set(err, TW_ERR_INTERNAL, "no randomness");
        char sha[65];
        tw_hex_encode(raw, sizeof(raw), sha);
        memcpy(c.sha256, sha, 32);
        memcpy(c.sha256 + 32, sha, 33);
        c.not_before = now - 86400;
        c.not_after = now + (i % 365) * 86400 + 3600;
        c.pem = (char *)"-----BEGIN CERTIFICATE-----\nbench\n-----END CERTIFICATE-----\n";
        TW_GUARD(store_cert_put(s, &c, err));
        if (i % 20 == 0)
            TW_GUARD(store_cert_revoke(s, c.serial, 1, now - (i % 80) * 86400, err));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: console_fill STORE-URI N\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    struct store *s = NULL;
    struct tw_err err;
    if (store_open(argv[1], &s, &err) != 0) {
        fprintf(stderr, "console_fill: %s\n", err.msg);
        return 1;
    }
    for (long first = 0; first < n; first += BATCH) {
        struct batch b = {first, n - first < BATCH ? n - first : BATCH};
        if (store_transaction(s, put_batch, &b, &err) != 0) {
            fprintf(stderr, "console_fill: %s\n", err.msg);
            store_free(s);
            return 1;
        }
    }
    store_free(s);
    printf("console_fill: %ld rows\n", n);
    return 0;
}
