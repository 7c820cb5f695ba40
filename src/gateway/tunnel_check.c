/* `twoway tunnel --check` and its summary, and the key list for --help. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "gateway/tunnel.h"
#include "tlsx/tlsx.h"
#include "util/cleanup.h"

int gw_tunnel_config_check(const struct gw_config *cfg, struct tw_err *err)
{
    TW_GUARD(gw_config_apply_keystore(cfg, err));
    for (size_t i = 0; i < cfg->n_services; i++) {
        const struct gw_service *s = &cfg->services[i];
        struct tlsx_client_opts o;
        tlsx_client_opts_init(&o);
        o.ca_file = s->backend_ca;
        o.cert_file = s->backend_cert;
        o.key_file = s->backend_key;
        o.min_version = s->tls_min;
        o.max_version = s->tls_max;
        o.ciphers = s->ciphers;
        o.ciphersuites = s->ciphersuites;
        o.groups = s->groups;
        struct tw_err e;
        tw_err_clear(&e);
        SSL_CTX *ctx = tlsx_client_ctx_new(&o, &e);
        if (ctx == NULL)
            return tw_err_set(err, e.code, "[tunnel %s]: %s", s->name, e.msg);
        SSL_CTX_free(ctx);
    }
    return 0;
}

void gw_tunnel_config_explain(const struct gw_config *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->n_services; i++) {
        const struct gw_service *s = &cfg->services[i];
        fprintf(out, "tunnel %s: %s (plaintext) -> %s (mTLS)\n", s->name, s->listen[0].text,
                s->backend.text);
        fprintf(out, "  client certificate %s, key %s\n", s->backend_cert, s->backend_key);
        fprintf(out, "  server checked against %s, name %s (SANs only)\n", s->backend_ca,
                s->backend_server_name != NULL ? s->backend_server_name : s->backend.host);
        fprintf(out, "  timeouts: connect+handshake %llds, idle %llds%s; max-connections %u\n",
                (long long)s->timeouts.backend_connect, (long long)s->timeouts.idle,
                s->timeouts.max_lifetime > 0 ? ", with max-lifetime" : "",
                (unsigned)s->max_connections);
    }
}

void gw_tunnel_usage(FILE *out)
{
    fprintf(out, "  --listen ADDR:PORT   local plaintext address (e.g. 127.0.0.1:8080)\n"
                 "  --target HOST:PORT   the mTLS server to reach\n"
                 "  --cert FILE          client certificate (PEM, certificate then chain)\n"
                 "  --key FILE           its private key (0600)\n"
                 "  --ca FILE            CAs trusted for the target's certificate\n"
                 "  --server-name NAME   name the target's certificate must hold (default: HOST)\n"
                 "  --idle-timeout D, --backend-connect-timeout D, --max-lifetime D,\n"
                 "  --max-connections N, --buffer-size N, --tls-min V, --tls-max V,\n"
                 "  --ciphers L, --ciphersuites L, --groups L   as for twoway gateway\n"
                 "  --workers N, --metrics ADDR:PORT, --access-log FILE|-|off, --log-level L,\n"
                 "  --drain-timeout D, --user NAME   as in the gateway's [global]\n");
}
