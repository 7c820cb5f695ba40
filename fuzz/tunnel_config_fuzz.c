/* Fuzz `twoway tunnel` configuration: arbitrary bytes as an INI file, and the same bytes split
 * at newlines as command-line flags. Neither may crash or leak; an accepted config must also
 * survive explain. */
#include "config_fuzz_common.h"
#include "gateway/gateway.h"
#include "gateway/tunnel.h"

static struct gw_config *tunnel_from_args(int argc, char **argv, struct tw_err *err)
{
    struct gw_source src = {.argc = argc, .argv = argv};
    return gw_tunnel_config_load(&src, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct config_fuzz_reader tunnel = {"tunnel", gw_tunnel_config_load_buffer,
                                                     tunnel_from_args, gw_tunnel_config_explain};
    return config_fuzz_run(&tunnel, data, size);
}
