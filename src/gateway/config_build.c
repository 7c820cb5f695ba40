/* Phase 2 of loading: apply raw entries to structs holding the defaults, then validate each
 * service and the services together (listeners, SNI names). */
#include "gateway/config_priv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where each key of a service got its value: the entry and its section (the service's own,
 * or [global] when inherited). NULL entry: the default. */
struct origin {
    const struct cfg_section *sec;
    const struct cfg_entry *e;
};

static void global_defaults(struct gw_global *g)
{
    memset(g, 0, sizeof(*g));
    g->workers = 0;
    g->access_log = strdup("-");
    g->log_level = LOG_LVL_INFO;
    g->max_connections = 10000;
    g->ticket_rotate = 3600;
    g->drain_timeout = 30;
}

static void service_defaults(struct gw_service *s)
{
    memset(s, 0, sizeof(*s));
    s->mode = GW_MODE_HTTP;
    s->crl_refresh = 300;
    s->crl_expired = TLSX_CRL_EXPIRED_REJECT;
    s->ocsp_fail = GW_OCSP_FAIL_CLOSED;
    s->tls_min = TLS1_2_VERSION;
    s->tls_max = TLS1_3_VERSION;
    s->timeouts = (struct gw_timeouts){.handshake = 10,
                                       .idle = 300,
                                       .backend_connect = 5,
                                       .backend = 60,
                                       .max_lifetime = 0,
                                       .backend_idle = 60};
    s->limits = (struct gw_limits){.max_header_bytes = 16384,
                                   .max_headers = 100,
                                   .buffer_size = 65536,
                                   .backend_keepalive = 256};
    s->h2 = (struct gw_h2_limits){
        .max_concurrent_streams = 100, .initial_window = 65536, .max_streams = 10000,
        .max_resets = 100};
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void cfg_service_clear(struct gw_service *s)
{
    free(s->name);
    free(s->listen);
    free(s->backend.host), free(s->backend.path), free(s->backend.text);
    free(s->cert), free(s->key), free(s->client_ca);
    strv_free(s->crl, s->n_crl);
    free(s->crl_is_url);
    free(s->crl_ca);
    free(s->revocation_feed);
    strv_free(s->allow, s->n_allow);
    strv_free(s->server_name, s->n_server_name);
    free(s->backend_cert), free(s->backend_key), free(s->backend_ca);
    free(s->backend_server_name);
    free(s->ciphers), free(s->ciphersuites), free(s->groups);
    memset(s, 0, sizeof(*s));
}

void cfg_global_clear(struct gw_global *g)
{
    free(g->access_log);
    free(g->ticket_key_file);
    free(g->user);
    free(g->pin_file);
    free(g->pkcs11_module);
    memset(g, 0, sizeof(*g));
}

void gw_config_free(struct gw_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_services; i++)
        cfg_service_clear(&cfg->services[i]);
    free(cfg->services);
    for (size_t i = 0; i < cfg->n_listeners; i++)
        free(cfg->listeners[i].services);
    free(cfg->listeners);
    cfg_global_clear(&cfg->global);
    free(cfg->path);
    free(cfg);
}

static int apply(const struct cfg_raw *raw, const struct cfg_section *sec,
                 const struct cfg_entry *e, void *obj, bool global_meaning, struct tw_err *err)
{
    char why[200];
    const struct cfg_key *k = &cfg_keys[e->key];
    cfg_parse_fn fn = global_meaning && k->parse_global != NULL ? k->parse_global : k->parse;
    if (fn(k, obj, e->value, why, sizeof(why)) != 0)
        return cfg_err_entry(raw, sec, e, why, err);
    return 0;
}

/* [global]: its own keys, plus service defaults checked once against a scratch service so a
 * bad default is reported at its own line even before any service uses it. */
static int build_global(const struct cfg_raw *raw, struct gw_global *g, struct tw_err *err)
{
    struct gw_service scratch;
    service_defaults(&scratch);
    int rc = 0;
    for (size_t i = 0; i < raw->global.n && rc == 0; i++) {
        const struct cfg_entry *e = &raw->global.entries[i];
        enum cfg_scope scope = cfg_keys[e->key].scope;
        if (scope == CFG_GLOBAL || scope == CFG_EACH)
            rc = apply(raw, &raw->global, e, g, true, err);
        else
            rc = apply(raw, &raw->global, e, &scratch, false, err);
    }
    cfg_service_clear(&scratch);
    return rc;
}

static bool section_has(const struct cfg_section *sec, int key)
{
    for (size_t i = 0; i < sec->n; i++)
        if (sec->entries[i].key == key)
            return true;
    return false;
}

static int build_service(const struct cfg_raw *raw, const struct cfg_section *sec,
                         struct gw_service *s, struct origin *org, struct tw_err *err)
{
    service_defaults(s);
    s->line = sec->line;
    if ((s->name = strdup(sec->name)) == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    /* Inherited defaults first, then the service's own entries in file order. */
    for (size_t i = 0; i < raw->global.n; i++) {
        const struct cfg_entry *e = &raw->global.entries[i];
        if (cfg_keys[e->key].scope != CFG_BOTH || section_has(sec, e->key))
            continue;
        TW_GUARD(apply(raw, &raw->global, e, s, false, err));
        org[e->key] = (struct origin){&raw->global, e};
    }
    for (size_t i = 0; i < sec->n; i++) {
        const struct cfg_entry *e = &sec->entries[i];
        TW_GUARD(apply(raw, sec, e, s, false, err));
        org[e->key] = (struct origin){sec, e};
    }
    return 0;
}

static bool own(const struct origin *org, const struct cfg_section *sec, const char *key)
{
    int k = cfg_key_find(key);
    return k >= 0 && org[k].e != NULL && org[k].sec == sec;
}

static int entry_error(const struct cfg_raw *raw, const struct origin *org, const char *key,
                       const char *why, struct tw_err *err)
{
    const struct origin *o = &org[cfg_key_find(key)];
    return cfg_err_entry(raw, o->sec, o->e, why, err);
}

/* Backend TLS keys mean nothing for a plain backend: an error when the service set them,
 * silently dropped when inherited from [global]. */
static int check_backend_tls(const struct cfg_raw *raw, const struct cfg_section *sec,
                             struct gw_service *s, const struct origin *org, struct tw_err *err)
{
    static const char *const keys[] = {"backend-cert", "backend-key", "backend-ca",
                                       "backend-server-name", "insecure-skip-backend-verify"};
    if (s->backend.kind != GW_BACKEND_TLS) {
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
            if (own(org, sec, keys[i]))
                return entry_error(raw, org, keys[i], "only applies to a tls:// backend", err);
        free(s->backend_cert), free(s->backend_key), free(s->backend_ca);
        s->backend_cert = s->backend_key = s->backend_ca = NULL;
        return 0;
    }
    if ((s->backend_cert == NULL) != (s->backend_key == NULL))
        return cfg_err_section(raw, sec, err, "%s and %s must be set together",
                               cfg_keyref(raw, "backend-cert"), cfg_keyref(raw, "backend-key"));
    return 0;
}

/* The allow rules must also be accepted by tlsx_policy_add, which the core calls with them:
 * a config that loads can never fail there. */
static int check_policy(const struct cfg_raw *raw, const struct cfg_section *sec,
                        struct tw_err *err)
{
    int allow = cfg_key_find("allow");
    struct tw_err perr;
    struct tlsx_policy *policy = tlsx_policy_new(err);
    if (policy == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < sec->n && rc == 0; i++)
        if (sec->entries[i].key == allow &&
            tlsx_policy_add(policy, sec->entries[i].value, &perr) != 0)
            rc = cfg_err_entry(raw, sec, &sec->entries[i], perr.msg, err);
    tlsx_policy_free(policy);
    return rc;
}

static int check_service(const struct cfg_raw *raw, const struct cfg_section *sec,
                         struct gw_service *s, const struct origin *org, struct tw_err *err)
{
    static const char *const required[] = {"listen", "backend", "cert", "key", "client-ca"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (org[cfg_key_find(required[i])].e == NULL)
            return cfg_err_section(raw, sec, err, "%s is required", cfg_keyref(raw, required[i]));

    if (org[cfg_key_find("forward")].e == NULL) {
        s->forward = s->mode == GW_MODE_HTTP ? GW_FORWARD_RFC9440 : GW_FORWARD_NONE;
    } else if (s->mode == GW_MODE_TCP &&
               (s->forward == GW_FORWARD_RFC9440 || s->forward == GW_FORWARD_XFCC)) {
        return entry_error(raw, org, "forward",
                           "header forwarding needs mode = http; in tcp mode use proxy-v2 "
                           "or none",
                           err);
    } else if (s->mode == GW_MODE_HTTP && s->forward == GW_FORWARD_PROXY_V2) {
        return entry_error(raw, org, "forward",
                           "proxy-v2 needs mode = tcp; in http mode use rfc9440 or xfcc", err);
    }
    bool h2_backend = s->backend_protocol == GW_BACKEND_PROTO_H2;
    if (s->backend_protocol != GW_BACKEND_PROTO_HTTP1 && s->mode == GW_MODE_TCP &&
        own(org, sec, "backend-protocol"))
        return entry_error(raw, org, "backend-protocol", "only applies to mode = http", err);
    if (org[cfg_key_find("alpn")].e == NULL) {
        /* HTTP mode speaks both (only h2 to an h2 backend); a TCP service does not know what
         * its backend speaks. */
        s->n_alpn = 0;
        if (s->mode == GW_MODE_HTTP) {
            s->alpn[s->n_alpn++] = GW_ALPN_H2;
            if (!h2_backend)
                s->alpn[s->n_alpn++] = GW_ALPN_HTTP11;
        }
    } else if (h2_backend && s->mode == GW_MODE_HTTP) {
        for (size_t i = 0; i < s->n_alpn; i++)
            if (s->alpn[i] == GW_ALPN_HTTP11)
                return entry_error(raw, org, "alpn",
                                   "http/1.1 clients cannot reach a backend-protocol = h2 "
                                   "backend (HTTP/1.1 is relayed as is); use alpn = h2",
                                   err);
    }
    if (s->forward_chain && s->forward != GW_FORWARD_RFC9440 && own(org, sec, "forward-chain"))
        return entry_error(raw, org, "forward-chain", "only applies to forward = rfc9440", err);
    if (s->proxy_v2_cert && s->forward != GW_FORWARD_PROXY_V2 && own(org, sec, "proxy-v2-cert"))
        return entry_error(raw, org, "proxy-v2-cert", "only applies to forward = proxy-v2", err);
    TW_GUARD(check_backend_tls(raw, sec, s, org, err));
    TW_GUARD(check_policy(raw, sec, err));
    if (s->tls_max < s->tls_min) {
        const char *key = org[cfg_key_find("tls-max")].e != NULL ? "tls-max" : "tls-min";
        return entry_error(raw, org, key, "tls-max is below tls-min", err);
    }
    return 0;
}

static bool is_wildcard(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static uint16_t addr_port(const struct gw_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* Two different addresses that cannot both be bound: same family and port, one a wildcard. */
static bool overlaps(const struct gw_addr *a, const struct gw_addr *b)
{
    return a->ss.ss_family == b->ss.ss_family && addr_port(a) == addr_port(b) &&
           (is_wildcard(a) || is_wildcard(b));
}

/* The j-th listen entry of a section produced listen[j] (duplicates are rejected). */
static const struct cfg_entry *listen_entry(const struct cfg_section *sec, size_t j)
{
    int k = cfg_key_find("listen");
    for (size_t i = 0; i < sec->n; i++)
        if (sec->entries[i].key == k && j-- == 0)
            return &sec->entries[i];
    return NULL;
}

static int add_to_listener(struct gw_config *cfg, const struct cfg_raw *raw, size_t si, size_t j,
                           struct tw_err *err)
{
    const struct gw_service *s = &cfg->services[si];
    const struct cfg_section *sec = &raw->services[si];
    const struct gw_addr *a = &s->listen[j];
    char why[200];
    struct gw_listener *l = NULL;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct gw_listener *cand = &cfg->listeners[i];
        const char *other = cfg->services[cand->services[0]].name;
        if (strcmp(cand->addr.text, a->text) == 0) {
            l = cand;
        } else if (overlaps(&cand->addr, a)) {
            snprintf(why, sizeof(why), "overlaps %s of service %s", cand->addr.text, other);
            return cfg_err_entry(raw, sec, listen_entry(sec, j), why, err);
        }
    }
    if (cfg->global.has_metrics &&
        (strcmp(cfg->global.metrics.text, a->text) == 0 || overlaps(&cfg->global.metrics, a))) {
        snprintf(why, sizeof(why), "conflicts with metrics = %s", cfg->global.metrics.text);
        return cfg_err_entry(raw, sec, listen_entry(sec, j), why, err);
    }
    if (l == NULL) {
        l = &cfg->listeners[cfg->n_listeners];
        l->services = calloc(cfg->n_services, sizeof(*l->services));
        TW_ENSURE(l->services != NULL, err, TW_ERR_INTERNAL, "out of memory");
        cfg->n_listeners++;
        l->addr = *a;
        l->mode = s->mode;
    } else {
        const char *other = cfg->services[l->services[0]].name;
        if (l->mode != s->mode)
            snprintf(why, sizeof(why),
                     "service %s listens here in %s mode; one listener has "
                     "one mode",
                     other, gw_mode_name(l->mode));
        else if (s->mode == GW_MODE_TCP)
            snprintf(why, sizeof(why),
                     "service %s listens here too; in tcp mode a listener "
                     "serves one service",
                     other);
        else
            why[0] = '\0';
        if (why[0] != '\0')
            return cfg_err_entry(raw, sec, listen_entry(sec, j), why, err);
    }
    l->services[l->n_services++] = si;
    return 0;
}

static int build_listeners(struct gw_config *cfg, const struct cfg_raw *raw, struct tw_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < cfg->n_services; i++)
        total += cfg->services[i].n_listen;
    cfg->listeners = calloc(total, sizeof(*cfg->listeners));
    TW_ENSURE(cfg->listeners != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (size_t si = 0; si < cfg->n_services; si++)
        for (size_t j = 0; j < cfg->services[si].n_listen; j++)
            TW_GUARD(add_to_listener(cfg, raw, si, j, err));
    return 0;
}

static bool shares_listener(const struct gw_config *cfg, size_t si)
{
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct gw_listener *l = &cfg->listeners[i];
        for (size_t j = 0; j < l->n_services && l->n_services > 1; j++)
            if (l->services[j] == si)
                return true;
    }
    return false;
}

/* Services sharing a listener are told apart by SNI: each needs names, and no name may be
 * answered by two of them. Names default to the certificate's DNS SANs. */
static int resolve_names(struct gw_config *cfg, const struct cfg_raw *raw, struct tw_err *err)
{
    for (size_t si = 0; si < cfg->n_services; si++) {
        struct gw_service *s = &cfg->services[si];
        char why[160];
        if (s->n_server_name > 0)
            continue;
        if (cfg_cert_dns_names(s->cert, &s->server_name, &s->n_server_name, why, sizeof(why)) ==
            0) {
            s->server_name_from_cert = s->n_server_name > 0;
            if (s->n_server_name > 0 || !shares_listener(cfg, si))
                continue;
            snprintf(why, sizeof(why), "it has no DNS names");
        }
        if (shares_listener(cfg, si))
            return cfg_err_section(raw, &raw->services[si], err,
                                   "shares a listen address with another service, so it needs "
                                   "%s (names from cert %s: %s)",
                                   cfg_keyref(raw, "server-name"), s->cert, why);
    }
    for (size_t li = 0; li < cfg->n_listeners; li++) {
        const struct gw_listener *l = &cfg->listeners[li];
        for (size_t a = 0; a < l->n_services; a++)
            for (size_t b = a + 1; b < l->n_services; b++) {
                const struct gw_service *sa = &cfg->services[l->services[a]];
                const struct gw_service *sb = &cfg->services[l->services[b]];
                for (size_t i = 0; i < sa->n_server_name; i++)
                    for (size_t j = 0; j < sb->n_server_name; j++)
                        if (strcasecmp(sa->server_name[i], sb->server_name[j]) == 0)
                            return cfg_err_section(
                                raw, &raw->services[l->services[b]], err,
                                "server name %s is also answered by service %s on %s",
                                sb->server_name[j], sa->name, l->addr.text);
            }
    }
    return 0;
}

static int build_all(struct gw_config *cfg, const struct cfg_raw *raw, struct tw_err *err)
{
    global_defaults(&cfg->global);
    TW_ENSURE(cfg->global.access_log != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD(build_global(raw, &cfg->global, err));
    TW_ENSURE(raw->n_services > 0, err, TW_ERR_CONFIG,
              "%s: no [service NAME] section: nothing to serve", raw->source);
    cfg->services = calloc(raw->n_services, sizeof(*cfg->services));
    TW_ENSURE(cfg->services != NULL, err, TW_ERR_INTERNAL, "out of memory");
    struct origin *org = calloc(cfg_nkeys, sizeof(*org));
    TW_ENSURE(org != NULL, err, TW_ERR_INTERNAL, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < raw->n_services && rc == 0; i++) {
        memset(org, 0, cfg_nkeys * sizeof(*org));
        cfg->n_services++;
        rc = build_service(raw, &raw->services[i], &cfg->services[i], org, err);
        if (rc == 0)
            rc = check_service(raw, &raw->services[i], &cfg->services[i], org, err);
    }
    free(org);
    TW_GUARD(rc);
    TW_GUARD(build_listeners(cfg, raw, err));
    return resolve_names(cfg, raw, err);
}

struct gw_config *cfg_build(const struct cfg_raw *raw, struct tw_err *err)
{
    struct gw_config *cfg = calloc(1, sizeof(*cfg));
    TW_ENSURE_PTR(cfg != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (!raw->flags && (cfg->path = strdup(raw->path)) == NULL) {
        free(cfg);
        TW_ENSURE_PTR(false, err, TW_ERR_INTERNAL, "out of memory");
    }
    if (build_all(cfg, raw, err) != 0) {
        gw_config_free(cfg);
        return NULL;
    }
    return cfg;
}
