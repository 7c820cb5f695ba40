/* twoway gateway: run the mTLS gateway from a config file or flags, or check a config. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_args.h"
#include "gateway/config.h"
#include "gateway/gateway.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: twoway gateway --config FILE\n"
            "       twoway gateway --listen ADDR --backend TARGET --cert F --key F "
            "--client-ca F [options]\n"
            "       twoway gateway --check CONFIG | --check [flags]\n\n"
            "Terminates two-way TLS in front of a TCP or HTTP service: requires a client\n"
            "certificate from client-ca, checks validity, EKU, CRLs and the allow-policy, then\n"
            "relays to the backend. SIGHUP (or a changed cert/key/CA/CRL file) reloads;\n"
            "SIGTERM drains open connections and exits 0.\n\n"
            "examples:\n"
            "  twoway gateway --config /etc/twoway/twoway.conf\n"
            "  twoway gateway --listen 0.0.0.0:8443 --backend 127.0.0.1:8080 --cert srv.crt \\\n"
            "      --key srv.key --client-ca clients.pem --allow cn:alice\n"
            "  twoway gateway --check /etc/twoway/twoway.conf\n\n"
            "options (every config key is also a flag of the same name):\n"
            "  --config FILE        INI configuration ([global] + [service NAME] sections)\n"
            "  --check [CONFIG]     validate every value and file, explain, exit\n"
            "  --allow-root         serve as root although no user = NAME / --user NAME is set\n");
    gw_config_usage(out);
}

static int check(const char *path, int argc, char **argv)
{
    struct tw_err err;
    tw_err_clear(&err);
    struct gw_config *cfg =
        path != NULL ? gw_config_load_file(path, &err) : gw_config_from_args(argc, argv, &err);
    if (cfg == NULL)
        return cli_fail(&err);
    if (gw_config_check(cfg, &err) != 0) {
        gw_config_free(cfg);
        return cli_fail(&err);
    }
    gw_config_explain(cfg, stdout);
    printf("configuration OK\n");
    gw_config_free(cfg);
    return 0;
}

int cli_gateway(int argc, char **argv)
{
    struct engine_args o = {.list = gw_config_list_flags};
    o.rest = calloc((size_t)argc + 1, sizeof(char *));
    if (o.rest == NULL)
        return 1;
    int rc = engine_args_parse("gateway", "--listen/--backend/...", usage, argc, argv, &o);
    if (rc >= 0) {
        free(o.rest);
        return rc;
    }
    if (o.check) {
        rc = check(o.check_path != NULL ? o.check_path : o.config, o.nrest, o.rest);
        free(o.rest);
        return rc;
    }
    struct gw_source src = {
        .config_path = o.config, .argc = o.nrest, .argv = o.rest, .allow_root = o.allow_root};
    struct tw_err err;
    tw_err_clear(&err);
    rc = gateway_run(&src, &err) == 0 ? 0 : cli_fail(&err);
    free(o.rest);
    return rc;
}
