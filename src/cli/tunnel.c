/* twoway tunnel: local plaintext in, two-way TLS out, for applications that cannot present a
 * client certificate themselves. Runs on the gateway engine (gateway/tunnel.h). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_args.h"
#include "gateway/tunnel.h"
#include "tlsx/tlsx.h"
#include "util/clock.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: twoway tunnel --listen ADDR:PORT --target HOST:PORT --cert F --key F "
            "--ca F\n"
            "                     [--server-name NAME] [options]\n"
            "       twoway tunnel --config FILE          ([tunnel NAME] sections)\n"
            "       twoway tunnel --check [CONFIG | flags]\n\n"
            "Accepts plaintext connections on a local address and relays each to the target\n"
            "over two-way TLS: the target's certificate must chain to --ca and hold the server\n"
            "name in its SANs (never the CN), and the tunnel presents --cert. A changed cert,\n"
            "key or CA file is reloaded without a restart (twoway renew --daemon can rotate\n"
            "it); SIGHUP reloads too; SIGTERM drains open connections and exits 0.\n\n"
            "examples:\n"
            "  twoway tunnel --listen 127.0.0.1:8080 --target api.example.com:8443 \\\n"
            "      --cert alice.chain.pem --key alice.key --ca chain.pem\n"
            "  twoway tunnel --config /etc/twoway/twoway.conf\n\n"
            "options:\n"
            "  --config FILE        INI configuration ([global] + [tunnel NAME] sections)\n"
            "  --check [CONFIG]     validate every value and file, explain, exit\n"
            "  --allow-root         serve as root although no user = NAME / --user NAME is set\n");
    gw_tunnel_usage(out);
}

static int check(const struct gw_source *src)
{
    struct tw_err err;
    tw_err_clear(&err);
    struct gw_config *cfg = gw_tunnel_config_load(src, &err);
    if (cfg == NULL)
        return cli_fail(&err);
    if (gw_tunnel_config_check(cfg, &err) != 0) {
        gw_config_free(cfg);
        return cli_fail(&err);
    }
    gw_tunnel_config_explain(cfg, stdout);
    printf("configuration OK\n");
    gw_config_free(cfg);
    return 0;
}

/* Say up front who the tunnel will be to each target. Problems are left to gateway_run,
 * which reports them with the file and line. */
static void announce(const struct gw_source *src)
{
    struct tw_err err;
    struct gw_config *cfg = gw_tunnel_config_load(src, &err);
    for (size_t i = 0; cfg != NULL && i < cfg->n_services; i++) {
        const struct gw_service *s = &cfg->services[i];
        X509 *leaf = NULL;
        if (tlsx_cert_chain_load(s->backend_cert, &leaf, NULL, &err) != 0)
            continue;
        struct tlsx_cert_info info;
        tlsx_cert_info_fill(leaf, &info);
        X509_free(leaf);
        char until[32];
        fprintf(stderr, "twoway tunnel: %s: %s -> %s as %s (certificate valid until %s)\n", s->name,
                s->listen[0].text, s->backend.text, info.subject,
                clock_iso8601((time_t)info.not_after, until, sizeof(until)));
    }
    gw_config_free(cfg);
}

int cli_tunnel(int argc, char **argv)
{
    struct engine_args o = {.list = gw_tunnel_list_flags};
    o.rest = calloc((size_t)argc + 1, sizeof(char *));
    if (o.rest == NULL)
        return 1;
    int rc = engine_args_parse("tunnel", "--listen/--target/...", usage, argc, argv, &o);
    if (rc < 0) {
        struct gw_source src = {.config_path = o.check_path != NULL ? o.check_path : o.config,
                                .argc = o.nrest,
                                .argv = o.rest,
                                .load = gw_tunnel_config_load,
                                .name = "tunnel",
                                .allow_root = o.allow_root};
        if (o.check) {
            rc = check(&src);
        } else {
            struct tw_err err;
            tw_err_clear(&err);
            announce(&src);
            rc = gateway_run(&src, &err) == 0 ? 0 : cli_fail(&err);
        }
    }
    free(o.rest);
    return rc;
}
