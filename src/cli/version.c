/* twoway version / --version: this build and the libraries it runs with, so a bug report
 * names the OpenSSL that did the handshake, not only the one twoway was compiled against. */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include "cli/cli.h"
#include "store/store.h"

int cli_version(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0)
        return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    if (argc > 1) {
        printf("usage: twoway version    (also: twoway --version)\n\n"
               "Print twoway's version and the versions of the libraries it runs with.\n");
        return 0;
    }
    char pq[32];
    store_libpq_version(pq, sizeof(pq));
    printf("twoway %s\n", TWOWAY_VERSION);
    printf("OpenSSL  %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
    printf("libevent %s\n", event_get_version());
    printf("SQLite   %s\n", store_sqlite_version());
    printf("libpq    %s\n", pq);
    return 0;
}
