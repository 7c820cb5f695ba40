/* Fuzz the gateway configuration: arbitrary bytes as an INI file (the same reader path as
 * gw_config_load_file), and the same bytes split at newlines as command-line flags. Neither
 * may crash or leak; an accepted config must also survive explain. */
#include "config_fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct config_fuzz_reader gateway = {"gateway", gw_config_load_buffer,
                                                      gw_config_from_args, gw_config_explain};
    return config_fuzz_run(&gateway, data, size);
}
