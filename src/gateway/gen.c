/* Configuration generations: everything a reload replaces, built in one go from the config
 * source (files re-read), refcounted, and freed by whichever thread drops the last reference.
 * Nothing here is half-applied: a build either returns a complete generation or NULL. */
#include "gateway/internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/forward.h"
#include "gateway/revocation.h"
#include "util/log.h"

static int64_t secs_to_ms(int64_t s)
{
    return s > INT64_MAX / 1000 ? INT64_MAX : s * 1000;
}

static int resolve(const struct gw_backend *b, struct sockaddr_storage *out, socklen_t *len,
                   struct tw_err *err)
{
    if (b->kind == GW_BACKEND_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)out;
        size_t n = strlen(b->path);
        TW_ENSURE(n < sizeof(un->sun_path), err, TW_ERR_CONFIG, "backend %s: path too long",
                  b->text);
        memset(out, 0, sizeof(*out));
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, b->path, n + 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)b->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(b->host, port, &hints, &res);
    TW_ENSURE(rc == 0 && res != NULL, err, TW_ERR_CONFIG, "backend %s: cannot resolve '%s': %s",
              b->text, b->host, rc != 0 ? gai_strerror(rc) : "no address");
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A crl URL contributes the last good CRL fetched from it (revocation.h). */
static int build_crls(struct gw_server *srv, struct gw_svc *s, struct tw_err *err)
{
    const struct gw_service *c = s->cfg;
    s->crls = tlsx_crl_set_new(err);
    if (s->crls == NULL)
        return -1;
    for (size_t i = 0; i < c->n_crl; i++) {
        if (c->crl_is_url[i])
            TW_GUARD(gw_revoc_crl_add(srv, c, i, s->crls, err));
        else
            TW_GUARD(tlsx_crl_set_add_file(s->crls, c->crl[i], err));
    }
    return 0;
}

static int build_policy(struct gw_svc *s, struct tw_err *err)
{
    s->policy = tlsx_policy_new(err);
    if (s->policy == NULL)
        return -1;
    for (size_t i = 0; i < s->cfg->n_allow; i++)
        TW_GUARD(tlsx_policy_add(s->policy, s->cfg->allow[i], err));
    return 0;
}

/* prev (may be NULL): the same service in the generation this one derives from; its
 * certificate, chain and key objects are used instead of reading the files again. */
static int build_server_ctx(struct gw_svc *s, const struct gw_svc *prev,
                            struct tlsx_ticket_keys *tickets, struct tw_err *err)
{
    const struct gw_service *c = s->cfg;
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.name = c->name;
    if (prev != NULL) {
        o.cert = SSL_CTX_get0_certificate(prev->ctx);
        o.key = SSL_CTX_get0_privatekey(prev->ctx);
        TW_ENSURE(o.cert != NULL && o.key != NULL &&
                      SSL_CTX_get0_chain_certs(prev->ctx, &o.chain) == 1,
                  err, TW_ERR_INTERNAL, "[service %s] no certificate to carry over", c->name);
    } else {
        o.cert_file = c->cert;
        o.key_file = c->key;
    }
    o.client_ca_file = c->client_ca;
    o.crls = s->crls;
    o.crl_expired = c->crl_expired;
    o.policy = s->policy;
    o.min_version = c->tls_min;
    o.max_version = c->tls_max;
    o.ciphers = c->ciphers;
    o.ciphersuites = c->ciphersuites;
    o.groups = c->groups;
    o.ticket_keys = tickets;
    s->ctx = tlsx_server_ctx_new(&o, err);
    if (s->ctx == NULL)
        return -1;
    s->server_cert = SSL_CTX_get0_certificate(s->ctx);
    gw_alpn_install(s);
    return tlsx_certs_load(c->client_ca, &s->cas, err);
}

static int build_backend(struct gw_svc *s, struct tw_err *err)
{
    const struct gw_service *c = s->cfg;
    TW_GUARD(resolve(&c->backend, &s->backend_addr, &s->backend_len, err));
    if (c->backend.kind != GW_BACKEND_TLS)
        return 0;
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    o.ca_file = c->backend_ca;
    o.cert_file = c->backend_cert;
    o.key_file = c->backend_key;
    o.min_version = c->tls_min;
    o.max_version = c->tls_max;
    o.ciphers = c->ciphers;
    o.ciphersuites = c->ciphersuites;
    o.groups = c->groups;
    o.insecure_skip_verify = c->insecure_skip_backend_verify;
    s->backend_ctx = tlsx_client_ctx_new(&o, err);
    if (s->backend_ctx == NULL)
        return -1;
    s->backend_host = c->backend_server_name != NULL ? c->backend_server_name : c->backend.host;
    if (c->insecure_skip_backend_verify)
        s->backend_host = NULL;
    return 0;
}

/* The backend of a derived generation: resolved address and client ctx as before. */
static int carry_backend(struct gw_svc *s, const struct gw_svc *prev, struct tw_err *err)
{
    s->backend_addr = prev->backend_addr;
    s->backend_len = prev->backend_len;
    s->backend_host = prev->backend_host;
    if (prev->backend_ctx != NULL) {
        TW_ENSURE(SSL_CTX_up_ref(prev->backend_ctx) == 1, err, TW_ERR_INTERNAL,
                  "backend ctx: reference failed");
        s->backend_ctx = prev->backend_ctx;
    }
    return 0;
}

/* prev (may be NULL): derive from that service of the previous generation (gw_gen_derive). */
static int build_svc(struct gw_server *srv, struct gw_gen *gen, size_t i,
                     const struct gw_svc *prev, struct tw_err *err)
{
    struct gw_svc *s = &gen->svcs[i];
    const struct gw_service *c = &gen->cfg->services[i];
    s->cfg = c;
    s->index = i;
    s->handshake_ms = secs_to_ms(c->timeouts.handshake);
    s->idle_ms = secs_to_ms(c->timeouts.idle);
    s->connect_ms = secs_to_ms(c->timeouts.backend_connect);
    s->backend_ms = secs_to_ms(c->timeouts.backend);
    s->lifetime_ms = secs_to_ms(c->timeouts.max_lifetime);
    s->buffer_high = c->limits.buffer_size > 0 ? c->limits.buffer_size : GW_RELAY_HIGH;
    s->buffer_low = s->buffer_high / 4;
    if (c->forward == GW_FORWARD_RFC9440)
        s->fwd_flags = GW_FWD_CLIENT_CERT | (c->forward_chain ? GW_FWD_CLIENT_CERT_CHAIN : 0);
    else if (c->forward == GW_FORWARD_XFCC)
        s->fwd_flags = GW_FWD_XFCC;
    s->slot = gw_server_slot(srv, c->name);
    TW_ENSURE(s->slot != NULL, err, TW_ERR_CONFIG, "too many services (limit %d)", GW_MAX_SERVICES);
    TW_GUARD(build_crls(srv, s, err));
    if (prev != NULL) {
        TW_ENSURE(tlsx_policy_up_ref(prev->policy) == 1, err, TW_ERR_INTERNAL,
                  "policy: reference failed");
        s->policy = prev->policy;
    } else {
        TW_GUARD(build_policy(s, err));
    }
    if (!c->plaintext_listen)
        TW_GUARD(build_server_ctx(s, prev, gen->tickets, err));
    return prev != NULL ? carry_backend(s, prev, err) : build_backend(s, err);
}

static int build_listen(struct gw_gen *gen, size_t i, struct tw_err *err)
{
    struct gw_listen *l = &gen->listens[i];
    l->cfg = &gen->cfg->listeners[i];
    TW_ENSURE(l->cfg->n_services >= 1 && l->cfg->n_services <= GW_MAX_SERVICES, err, TW_ERR_CONFIG,
              "listen %s: no service", l->cfg->addr.text);
    for (size_t k = 0; k < l->cfg->n_services; k++)
        l->svcs[l->nsvcs++] = &gen->svcs[l->cfg->services[k]];
    l->ctx = l->svcs[0]->ctx;
    if (l->nsvcs == 1)
        return 0;
    l->sni = tlsx_sni_table_new(err);
    if (l->sni == NULL)
        return -1;
    for (size_t k = 0; k < l->nsvcs; k++) {
        const struct gw_service *c = l->svcs[k]->cfg;
        for (size_t n = 0; n < c->n_server_name; n++)
            TW_GUARD(tlsx_sni_table_add(l->sni, c->server_name[n], l->svcs[k]->ctx, err));
    }
    TW_GUARD(tlsx_sni_table_set_default(l->sni, l->ctx, false, err));
    return tlsx_sni_table_install(l->sni, l->ctx, err);
}

static int add_watch(struct gw_gen *gen, const char *path)
{
    if (path == NULL || gen->nwatch >= GW_MAX_WATCH)
        return 0;
    for (size_t i = 0; i < gen->nwatch; i++)
        if (strcmp(gen->watch[i].path, path) == 0)
            return 0;
    struct gw_watch *wt = &gen->watch[gen->nwatch];
    wt->path = strdup(path);
    if (wt->path == NULL)
        return -1;
    wt->exists = stat(path, &wt->st) == 0;
    gen->nwatch++;
    return 0;
}

static int build_watch(struct gw_gen *gen, struct tw_err *err)
{
    const struct gw_config *cfg = gen->cfg;
    gen->watch = calloc(GW_MAX_WATCH, sizeof(*gen->watch));
    TW_ENSURE(gen->watch != NULL, err, TW_ERR_INTERNAL, "out of memory");
    int rc = add_watch(gen, cfg->path) | add_watch(gen, cfg->global.ticket_key_file);
    for (size_t i = 0; i < cfg->n_services; i++) {
        const struct gw_service *c = &cfg->services[i];
        rc |= add_watch(gen, c->cert) | add_watch(gen, c->key) | add_watch(gen, c->client_ca);
        rc |= add_watch(gen, c->backend_cert) | add_watch(gen, c->backend_key) |
              add_watch(gen, c->backend_ca);
        for (size_t k = 0; k < c->n_crl; k++)
            if (!c->crl_is_url[k])
                rc |= add_watch(gen, c->crl[k]);
    }
    TW_ENSURE(rc == 0, err, TW_ERR_INTERNAL, "out of memory");
    return 0;
}

static struct gw_config *load_config(const struct gw_source *src, struct tw_err *err)
{
    if (src->load != NULL)
        return src->load(src, err);
    if (src->config_path != NULL)
        return gw_config_load_file(src->config_path, err);
    return gw_config_from_args(src->argc, src->argv, err);
}

static int build_tickets(struct gw_server *srv, struct gw_gen *gen, struct tw_err *err)
{
    const struct gw_global *g = &gen->cfg->global;
    if (g->ticket_key_file != NULL) {
        gen->tickets = tlsx_ticket_keys_new_file(g->ticket_key_file, err);
        return gen->tickets != NULL ? 0 : -1;
    }
    if (srv->tickets == NULL) {
        srv->tickets = tlsx_ticket_keys_new(g->ticket_rotate, err);
        if (srv->tickets == NULL)
            return -1;
    }
    TW_ENSURE(tlsx_ticket_keys_up_ref(srv->tickets) == 1, err, TW_ERR_INTERNAL,
              "ticket keys: reference failed");
    gen->tickets = srv->tickets;
    return 0;
}

static int build(struct gw_server *srv, struct gw_gen *gen, struct tw_err *err)
{
    gen->cfg = load_config(&srv->src, err);
    if (gen->cfg == NULL)
        return -1;
    const struct gw_config *cfg = gen->cfg;
    TW_GUARD(gw_config_apply_keystore(cfg, err));
    TW_ENSURE(cfg->n_services <= GW_MAX_SERVICES && cfg->n_listeners <= GW_MAX_LISTENS, err,
              TW_ERR_CONFIG, "too many services or listen addresses (limit %d)", GW_MAX_SERVICES);
    TW_GUARD(build_watch(gen, err));
    TW_GUARD(build_tickets(srv, gen, err));
    gen->svcs = calloc(cfg->n_services, sizeof(*gen->svcs));
    gen->listens = calloc(cfg->n_listeners, sizeof(*gen->listens));
    TW_ENSURE(gen->svcs != NULL && gen->listens != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (; gen->nsvcs < cfg->n_services; gen->nsvcs++)
        TW_GUARD(build_svc(srv, gen, gen->nsvcs, NULL, err));
    for (; gen->nlistens < cfg->n_listeners; gen->nlistens++)
        TW_GUARD(build_listen(gen, gen->nlistens, err));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    gen->workers = cfg->global.workers > 0 ? cfg->global.workers : (int)(cores > 0 ? cores : 1);
    if (gen->workers > GW_MAX_WORKERS) {
        log_warnx("workers = %d: using %d, the most this build runs", gen->workers,
                  GW_MAX_WORKERS);
        gen->workers = GW_MAX_WORKERS;
    }
    return 0;
}

static void gen_free(struct gw_gen *gen)
{
    for (size_t i = 0; i < gen->nlistens; i++)
        tlsx_sni_table_free(gen->listens[i].sni);
    /* nsvcs counts fully built services; a failed build may leave parts of the next one. */
    for (size_t i = 0; gen->svcs != NULL && gen->cfg != NULL && i < gen->cfg->n_services; i++) {
        struct gw_svc *s = &gen->svcs[i];
        SSL_CTX_free(s->ctx);
        SSL_CTX_free(s->backend_ctx);
        tlsx_crl_set_free(s->crls);
        tlsx_policy_free(s->policy);
        sk_X509_pop_free(s->cas, X509_free);
    }
    for (size_t i = 0; i < gen->nwatch; i++)
        free(gen->watch[i].path);
    free(gen->watch);
    free(gen->svcs);
    free(gen->listens);
    tlsx_ticket_keys_free(gen->tickets);
    if (gen->cfg_refs == NULL || atomic_fetch_sub(gen->cfg_refs, 1) == 1) {
        gw_config_free(gen->cfg);
        free(gen->cfg_refs);
    }
    free(gen);
}

struct gw_gen *gw_gen_build(struct gw_server *srv, struct tw_err *err)
{
    struct gw_gen *gen = calloc(1, sizeof(*gen));
    TW_ENSURE_PTR(gen != NULL, err, TW_ERR_INTERNAL, "out of memory");
    atomic_init(&gen->refs, 1);
    gen->id = ++srv->next_gen_id;
    if (build(srv, gen, err) != 0) {
        gen_free(gen);
        return NULL;
    }
    return gen;
}

/* The configuration is shared with the generation derived from: one count for all. */
static int share_config(struct gw_gen *old, struct gw_gen *gen, struct tw_err *err)
{
    if (old->cfg_refs == NULL) {
        old->cfg_refs = malloc(sizeof(*old->cfg_refs));
        TW_ENSURE(old->cfg_refs != NULL, err, TW_ERR_INTERNAL, "out of memory");
        atomic_init(old->cfg_refs, 1);
    }
    atomic_fetch_add(old->cfg_refs, 1);
    gen->cfg_refs = old->cfg_refs;
    gen->cfg = old->cfg;
    return 0;
}

/* The watched files as old last saw them, so a change it has not acted on yet still
 * triggers a full reload. */
static int copy_watch(const struct gw_gen *old, struct gw_gen *gen, struct tw_err *err)
{
    gen->watch = calloc(GW_MAX_WATCH, sizeof(*gen->watch));
    TW_ENSURE(gen->watch != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (; gen->nwatch < old->nwatch; gen->nwatch++) {
        gen->watch[gen->nwatch] = old->watch[gen->nwatch];
        gen->watch[gen->nwatch].path = strdup(old->watch[gen->nwatch].path);
        TW_ENSURE(gen->watch[gen->nwatch].path != NULL, err, TW_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

static int derive(struct gw_server *srv, struct gw_gen *old, struct gw_gen *gen,
                  struct tw_err *err)
{
    TW_GUARD(share_config(old, gen, err));
    TW_GUARD(copy_watch(old, gen, err));
    TW_ENSURE(tlsx_ticket_keys_up_ref(old->tickets) == 1, err, TW_ERR_INTERNAL,
              "ticket keys: reference failed");
    gen->tickets = old->tickets;
    const struct gw_config *cfg = gen->cfg;
    gen->svcs = calloc(cfg->n_services, sizeof(*gen->svcs));
    gen->listens = calloc(cfg->n_listeners, sizeof(*gen->listens));
    TW_ENSURE(gen->svcs != NULL && gen->listens != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (; gen->nsvcs < cfg->n_services; gen->nsvcs++)
        TW_GUARD(build_svc(srv, gen, gen->nsvcs, &old->svcs[gen->nsvcs], err));
    for (; gen->nlistens < cfg->n_listeners; gen->nlistens++)
        TW_GUARD(build_listen(gen, gen->nlistens, err));
    gen->workers = old->workers;
    return 0;
}

struct gw_gen *gw_gen_derive(struct gw_server *srv, struct gw_gen *old, struct tw_err *err)
{
    struct gw_gen *gen = calloc(1, sizeof(*gen));
    TW_ENSURE_PTR(gen != NULL, err, TW_ERR_INTERNAL, "out of memory");
    atomic_init(&gen->refs, 1);
    gen->id = ++srv->next_gen_id;
    if (derive(srv, old, gen, err) != 0) {
        gen_free(gen);
        return NULL;
    }
    return gen;
}

struct gw_gen *gw_gen_ref(struct gw_gen *gen)
{
    atomic_fetch_add_explicit(&gen->refs, 1, memory_order_relaxed);
    return gen;
}

void gw_gen_unref(struct gw_gen *gen)
{
    if (gen == NULL)
        return;
    if (atomic_fetch_sub_explicit(&gen->refs, 1, memory_order_acq_rel) == 1)
        gen_free(gen);
}

static bool stat_differs(const struct gw_watch *wt, const struct stat *st, bool exists)
{
    if (exists != wt->exists)
        return true;
    if (!exists)
        return false;
    return st->st_ino != wt->st.st_ino || st->st_dev != wt->st.st_dev ||
           st->st_size != wt->st.st_size || st->st_mtim.tv_sec != wt->st.st_mtim.tv_sec ||
           st->st_mtim.tv_nsec != wt->st.st_mtim.tv_nsec ||
           st->st_ctim.tv_sec != wt->st.st_ctim.tv_sec ||
           st->st_ctim.tv_nsec != wt->st.st_ctim.tv_nsec;
}

const char *gw_gen_files_changed(struct gw_gen *gen, bool refresh)
{
    const char *changed = NULL;
    for (size_t i = 0; i < gen->nwatch; i++) {
        struct gw_watch *wt = &gen->watch[i];
        struct stat st;
        bool exists = stat(wt->path, &st) == 0;
        if (!stat_differs(wt, &st, exists))
            continue;
        if (changed == NULL)
            changed = wt->path;
        if (refresh) {
            wt->exists = exists;
            if (exists)
                wt->st = st;
        }
    }
    return changed;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t gw_gen_watch_signature(const struct gw_gen *gen)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < gen->nwatch; i++) {
        struct stat st;
        int64_t v[7] = {0};
        if (stat(gen->watch[i].path, &st) == 0) {
            v[0] = (int64_t)st.st_ino;
            v[1] = (int64_t)st.st_size;
            v[2] = st.st_mtim.tv_sec;
            v[3] = st.st_mtim.tv_nsec;
            v[4] = st.st_ctim.tv_sec;
            v[5] = st.st_ctim.tv_nsec;
            v[6] = 1;
        }
        h = fnv(h, v, sizeof(v));
    }
    return h;
}

struct gw_svc *gw_listen_svc_for_ctx(const struct gw_listen *l, const SSL_CTX *ctx)
{
    for (size_t i = 0; i < l->nsvcs; i++)
        if (l->svcs[i]->ctx == ctx)
            return l->svcs[i];
    return l->svcs[0];
}

int gw_gen_listen_index(const struct gw_gen *gen, const char *text)
{
    for (size_t i = 0; gen != NULL && i < gen->nlistens; i++)
        if (strcmp(gen->listens[i].cfg->addr.text, text) == 0)
            return (int)i;
    return -1;
}

/* Bind (and release) each address gen listens on that old does not (old NULL: all of them),
 * so an address already taken, by anyone, is refused up front: at start-up, and on a reload
 * before anything is half-applied in the workers. */
int gw_gen_probe_listens(const struct gw_gen *old, const struct gw_gen *gen, struct tw_err *err)
{
    for (size_t i = 0; i < gen->nlistens; i++) {
        const struct gw_addr *a = &gen->listens[i].cfg->addr;
        if (gw_gen_listen_index(old, a->text) >= 0)
            continue;
        int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return tw_err_sys(err, TW_ERR_IO, "cannot listen on %s", a->text);
        /* No SO_REUSEPORT here: the workers' listeners use it, so without this probe a
         * second gateway started on the same address would silently share its traffic. */
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->ss.ss_family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        int rc = bind(fd, (const struct sockaddr *)&a->ss, a->len);
        int saved = errno;
        close(fd);
        if (rc != 0) {
            errno = saved;
            return tw_err_sys(err, TW_ERR_IO, "cannot listen on %s", a->text);
        }
    }
    return 0;
}

struct gw_svc *gw_gen_find_svc(const struct gw_gen *gen, const char *name)
{
    for (size_t i = 0; i < gen->nsvcs; i++)
        if (strcmp(gen->svcs[i].cfg->name, name) == 0)
            return &gen->svcs[i];
    return NULL;
}
