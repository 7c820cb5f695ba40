/* What the two configuration fuzzers share (config_fuzz.c: the gateway, tunnel_config_fuzz.c:
 * `twoway tunnel`): arbitrary bytes as an INI file, and the same bytes split at newlines as
 * command-line flags. Neither may crash or leak; an accepted config must also survive explain.
 * Included by both (each fuzzer is one program), hence the static functions. */
#ifndef TW_FUZZ_CONFIG_FUZZ_COMMON_H
#define TW_FUZZ_CONFIG_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

#define CONFIG_FUZZ_MAX_ARGS 64

/* One configuration reader: its program name (argv[0]) and its three entry points. */
struct config_fuzz_reader {
    const char *prog;
    struct gw_config *(*load_buffer)(const char *name, const void *data, size_t len,
                                     struct tw_err *err);
    struct gw_config *(*load_args)(int argc, char **argv, struct tw_err *err);
    void (*explain)(const struct gw_config *cfg, FILE *out);
};

static void config_fuzz_use(const struct config_fuzz_reader *r, struct gw_config *cfg)
{
    static FILE *sink;
    if (cfg == NULL)
        return;
    if (sink == NULL)
        sink = fopen("/dev/null", "w");
    if (sink != NULL)
        r->explain(cfg, sink);
    gw_config_free(cfg);
}

static int config_fuzz_run(const struct config_fuzz_reader *r, const uint8_t *data, size_t size)
{
    struct tw_err err;
    config_fuzz_use(r, r->load_buffer("fuzz.conf", data, size, &err));

    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[CONFIG_FUZZ_MAX_ARGS + 1] = {(char *)r->prog};
    int argc = 1;
    for (char *p = copy; p != NULL && argc < CONFIG_FUZZ_MAX_ARGS;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        argv[argc++] = p;
        p = nl != NULL ? nl + 1 : NULL;
    }
    config_fuzz_use(r, r->load_args(argc, argv, &err));
    free(copy);
    return 0;
}

#endif
