/* twoway gateway: the mTLS-terminating reverse proxy. This header is the module's interface
 * for the CLI; configuration structs and loading live in gateway/config.h.
 *
 * The gateway runs worker threads (one per core by default), each with its own libevent
 * event_base and SO_REUSEPORT listeners. Configuration is immutable once built: a reload
 * (SIGHUP, or a watched cert/key/CA/CRL/config file changing) builds a new generation and
 * swaps it in; connections keep the generation they started with. SIGTERM/SIGINT stop
 * accepting and drain open connections until drain-timeout, then the process exits 0. */
#ifndef TW_GATEWAY_H
#define TW_GATEWAY_H

#include <stdbool.h>
#include <stdio.h>

#include "util/err.h"

/* Where the configuration comes from, at start and at every reload. */
struct gw_source {
    const char *config_path; /* INI file; NULL: built from the flags below */
    int argc;                /* flags for the one-service case (argv[0] is skipped) */
    char **argv;
    /* `twoway tunnel` (issue 5): its own loader for the same sources (NULL: the gateway's),
     * and the name in the readiness line (NULL: "gateway"). */
    struct gw_config *(*load)(const struct gw_source *src, struct tw_err *err);
    const char *name;
    /* Serve as root even with no `user` to switch to (--allow-root); see util/priv.h. */
    bool allow_root;
};

/* Run the gateway until SIGTERM or SIGINT. Prints a readiness line
 * ("twoway gateway: ready, listening on 127.0.0.1:8443") to stderr once every listener is up.
 * Returns 0 after a clean drain; -1 with err when start-up failed (bad config, a file that
 * does not load, an address in use). Once listeners are up, errors close one connection and
 * never stop the process. */
int gateway_run(const struct gw_source *src, struct tw_err *err) TW_MUST_CHECK;

#endif
