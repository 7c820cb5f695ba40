/* Fuzz `twoway tunnel` configuration: arbitrary bytes as an INI file, and the same bytes split
 * at newlines as command-line flags. Neither may crash or leak; an accepted config must also
 * survive explain. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/tunnel.h"

#define MAX_ARGS 64

static void use(struct gw_config *cfg)
{
    static FILE *sink;
    if (cfg == NULL)
        return;
    if (sink == NULL)
        sink = fopen("/dev/null", "w");
    if (sink != NULL)
        gw_tunnel_config_explain(cfg, sink);
    gw_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tw_err err;
    use(gw_tunnel_config_load_buffer("fuzz.conf", data, size, &err));

    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAX_ARGS + 1] = {"tunnel"};
    int argc = 1;
    for (char *p = copy; argc < MAX_ARGS && p != NULL;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        argv[argc++] = p;
        p = nl != NULL ? nl + 1 : NULL;
    }
    struct gw_source src = {.argc = argc, .argv = argv};
    use(gw_tunnel_config_load(&src, &err));
    free(copy);
    return 0;
}
