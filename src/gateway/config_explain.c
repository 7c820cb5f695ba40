/* The human summary printed by `twoway gateway --check`, value names, and what a reload
 * cannot change. */
#include "gateway/config_priv.h"

#include <stdio.h>
#include <string.h>

const char *gw_mode_name(enum gw_mode m)
{
    return m == GW_MODE_TCP ? "tcp" : "http";
}

const char *gw_forward_name(enum gw_forward f)
{
    switch (f) {
    case GW_FORWARD_RFC9440:
        return "rfc9440";
    case GW_FORWARD_XFCC:
        return "xfcc";
    case GW_FORWARD_PROXY_V2:
        return "proxy-v2";
    case GW_FORWARD_NONE:
        break;
    }
    return "none";
}

const char *gw_backend_kind_name(enum gw_backend_kind k)
{
    switch (k) {
    case GW_BACKEND_UNIX:
        return "unix";
    case GW_BACKEND_TLS:
        return "tls";
    case GW_BACKEND_TCP:
        break;
    }
    return "tcp";
}

static const char *tls_name(int v)
{
    return v == TLS1_3_VERSION ? "1.3" : "1.2";
}

static void print_list(FILE *out, const char *label, char *const *v, size_t n, const char *none)
{
    fprintf(out, "  %-16s", label);
    if (n == 0)
        fprintf(out, "%s", none);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s", i > 0 ? ", " : "", v[i]);
    fputc('\n', out);
}

static void explain_forward(FILE *out, const struct gw_service *s)
{
    fprintf(out, "  %-16s", "forward");
    switch (s->forward) {
    case GW_FORWARD_RFC9440:
        fprintf(out, "rfc9440: Client-Cert%s headers (client copies removed)\n",
                s->forward_chain ? " and Client-Cert-Chain" : "");
        break;
    case GW_FORWARD_XFCC:
        fprintf(out, "xfcc: X-Forwarded-Client-Cert header (client copies removed)\n");
        break;
    case GW_FORWARD_PROXY_V2:
        fprintf(out, "proxy-v2: PROXY v2 header with TLS details%s\n",
                s->proxy_v2_cert ? " and the client certificate" : "");
        break;
    case GW_FORWARD_NONE:
        fprintf(out, "none: the backend is not told who the client is\n");
        break;
    }
}

static void explain_service(FILE *out, const struct gw_service *s)
{
    fprintf(out, "\n[service %s]\n", s->name);
    for (size_t i = 0; i < s->n_listen; i++)
        fprintf(out, "  %s -> %s (%s mode, %s backend)\n", s->listen[i].text, s->backend.text,
                gw_mode_name(s->mode), gw_backend_kind_name(s->backend.kind));
    fprintf(out, "  %-16s%s (key %s)\n", "certificate", s->cert, s->key);
    if (s->n_server_name > 0)
        print_list(out, s->server_name_from_cert ? "names (cert)" : "server-name", s->server_name,
                   s->n_server_name, "");
    else
        fprintf(out, "  %-16s%s\n", "names", "any SNI name");
    fprintf(out, "  %-16s%s (a client certificate is required)\n", "client-ca", s->client_ca);
    fprintf(out, "  %-16s%s to %s\n", "tls", tls_name(s->tls_min), tls_name(s->tls_max));
    if (s->n_crl > 0) {
        print_list(out, "crl", s->crl, s->n_crl, "");
        fprintf(out, "  %-16srefresh every %llds; an expired CRL is %s\n", "",
                (long long)s->crl_refresh,
                s->crl_expired == TLSX_CRL_EXPIRED_WARN ? "used with a warning" : "fatal");
    } else {
        fprintf(out, "  %-16snone: revoked certificates are NOT refused\n", "crl");
    }
    if (s->ocsp)
        fprintf(out, "  %-16son, fail %s\n", "ocsp",
                s->ocsp_fail == GW_OCSP_FAIL_OPEN ? "open (no answer: allowed)"
                                                  : "closed (no answer: refused)");
    print_list(out, "allow", s->allow, s->n_allow, "any certificate from client-ca");
    explain_forward(out, s);
    fprintf(out, "  %-16s", "alpn");
    for (size_t i = 0; i < s->n_alpn; i++)
        fprintf(out, "%s%s", i > 0 ? ", " : "", s->alpn[i] == GW_ALPN_H2 ? "h2" : "http/1.1");
    fprintf(out, "%s\n", s->n_alpn == 0 ? "none (no ALPN offered)" : "");
    if (s->backend.kind == GW_BACKEND_TLS) {
        if (s->insecure_skip_backend_verify)
            fprintf(out, "  %-16sINSECURE: backend certificate NOT verified\n", "backend tls");
        else
            fprintf(out, "  %-16sverified against %s as %s\n", "backend tls",
                    s->backend_ca != NULL ? s->backend_ca : "the system trust store",
                    s->backend_server_name != NULL ? s->backend_server_name : s->backend.host);
        if (s->backend_cert != NULL)
            fprintf(out, "  %-16s%s\n", "backend client", s->backend_cert);
    }
    fprintf(out, "  %-16shandshake %llds, idle %llds, backend connect %llds, backend %llds",
            "timeouts", (long long)s->timeouts.handshake, (long long)s->timeouts.idle,
            (long long)s->timeouts.backend_connect, (long long)s->timeouts.backend);
    if (s->timeouts.max_lifetime > 0)
        fprintf(out, ", lifetime %llds", (long long)s->timeouts.max_lifetime);
    fputc('\n', out);
    if (s->max_connections > 0)
        fprintf(out, "  %-16s%u\n", "max-connections", s->max_connections);
}

void gw_config_explain(const struct gw_config *cfg, FILE *out)
{
    const struct gw_global *g = &cfg->global;
    fprintf(out, "%s: %zu service%s on %zu listener%s\n",
            cfg->path != NULL ? cfg->path : "command line", cfg->n_services,
            cfg->n_services == 1 ? "" : "s", cfg->n_listeners, cfg->n_listeners == 1 ? "" : "s");
    if (g->workers == 0)
        fprintf(out, "  %-16sauto (one per core)\n", "workers");
    else
        fprintf(out, "  %-16s%d\n", "workers", g->workers);
    fprintf(out, "  %-16s%s\n", "metrics", g->has_metrics ? g->metrics.text : "off");
    fprintf(out, "  %-16s%s\n", "access-log",
            g->access_log == NULL             ? "off"
            : strcmp(g->access_log, "-") == 0 ? "stdout"
                                              : g->access_log);
    fprintf(out, "  %-16s%u connections, drain %llds\n", "limits", g->max_connections,
            (long long)g->drain_timeout);
    if (g->user != NULL)
        fprintf(out, "  %-16s%s (once listening)\n", "user", g->user);
    if (g->ticket_key_file != NULL)
        fprintf(out, "  %-16sshared keys from %s\n", "tickets", g->ticket_key_file);
    else
        fprintf(out, "  %-16srandom keys, rotated every %llds\n", "tickets",
                (long long)g->ticket_rotate);
    for (size_t i = 0; i < cfg->n_services; i++)
        explain_service(out, &cfg->services[i]);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct gw_listener *l = &cfg->listeners[i];
        if (l->n_services < 2)
            continue;
        fprintf(out, "\n%s is shared by SNI:", l->addr.text);
        for (size_t j = 0; j < l->n_services; j++)
            fprintf(out, " %s%s", cfg->services[l->services[j]].name, j == 0 ? " (default)" : "");
        fputc('\n', out);
    }
}

int gw_config_needs_restart(const struct gw_config *old_cfg, const struct gw_config *new_cfg,
                            char *what, size_t cap)
{
    const struct gw_global *a = &old_cfg->global, *b = &new_cfg->global;
    const char *key = NULL;
    if (a->workers != b->workers)
        key = "workers";
    else if (a->has_metrics != b->has_metrics ||
             (a->has_metrics && strcmp(a->metrics.text, b->metrics.text) != 0))
        key = "metrics";
    else if ((a->access_log == NULL) != (b->access_log == NULL) ||
             (a->access_log != NULL && strcmp(a->access_log, b->access_log) != 0))
        key = "access-log";
    else if (a->log_level != b->log_level)
        key = "log-level";
    else if (a->ticket_rotate != b->ticket_rotate)
        key = "ticket-rotate";
    else if ((a->user == NULL) != (b->user == NULL) ||
             (a->user != NULL && strcmp(a->user, b->user) != 0))
        key = "user";
    if (key == NULL)
        return 0;
    snprintf(what, cap, "%s", key);
    return 1;
}
