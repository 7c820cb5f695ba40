/* Loading `twoway tunnel` configuration: `[tunnel NAME]` sections (and `[global]`) of the
 * gateway's INI file, or flags for one tunnel, into the gateway's own config structs. Values
 * go through the gateway's parsers (config_priv.h) so both commands read them alike.
 *
 * Two phases, as for the gateway: entries are collected per section first (so [global]
 * defaults apply whatever their place in the file), then applied and validated. */
#include "gateway/tunnel.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config_priv.h"
#include "util/fs.h"

#define MAX_ENTRIES 64 /* keys per section; each may appear once */

struct entry {
    const char *key; /* points into the line buffer of the raw config */
    const char *value;
    int line;
};

struct section {
    char name[GW_CONFIG_NAME_MAX + 1];
    int line;
    struct entry e[MAX_ENTRIES];
    size_t n;
};

struct raw {
    const char *source; /* file name; NULL for flags */
    char *text;         /* owned copy the entries point into (files) */
    struct section global;
    struct section tun[GW_TUNNELS_MAX];
    size_t ntun;
};

/* ---- the keys ------------------------------------------------------------------------------ */

typedef int (*apply_fn)(struct gw_service *s, const char *v, char *why, size_t cap);

static int set_path(char **dst, const char *v, char *why, size_t cap)
{
    if (cfg_check_path(v, why, cap) != 0)
        return -1;
    *dst = strdup(v);
    return *dst != NULL ? 0 : (snprintf(why, cap, "out of memory"), -1);
}

static int a_listen(struct gw_service *s, const char *v, char *why, size_t cap)
{
    s->listen = calloc(1, sizeof(*s->listen));
    if (s->listen == NULL)
        return snprintf(why, cap, "out of memory"), -1;
    s->n_listen = 1;
    return cfg_parse_addr(v, &s->listen[0], why, cap);
}

static int a_target(struct gw_service *s, const char *v, char *why, size_t cap)
{
    if (strncmp(v, "unix:", 5) == 0 || (strstr(v, "://") != NULL && strncmp(v, "tls://", 6)))
        return snprintf(why, cap, "the target is HOST:PORT (it is always reached over TLS)"), -1;
    char buf[GW_CONFIG_LINE_MAX + 8];
    snprintf(buf, sizeof(buf), "%s%s", strncmp(v, "tls://", 6) == 0 ? "" : "tls://", v);
    return cfg_parse_backend(buf, &s->backend, why, cap);
}

static int a_cert(struct gw_service *s, const char *v, char *why, size_t cap)
{
    return set_path(&s->backend_cert, v, why, cap);
}

static int a_key(struct gw_service *s, const char *v, char *why, size_t cap)
{
    return set_path(&s->backend_key, v, why, cap);
}

static int a_ca(struct gw_service *s, const char *v, char *why, size_t cap)
{
    return set_path(&s->backend_ca, v, why, cap);
}

static int a_server_name(struct gw_service *s, const char *v, char *why, size_t cap)
{
    if (strchr(v, '*') != NULL)
        return snprintf(why, cap, "the name to check is one host name, not a wildcard"), -1;
    if (cfg_check_server_name(v, why, cap) != 0)
        return -1;
    s->backend_server_name = strdup(v);
    return s->backend_server_name != NULL ? 0 : (snprintf(why, cap, "out of memory"), -1);
}

static const struct {
    const char *name;
    apply_fn apply;
} own_keys[] = {
    {"listen", a_listen}, {"target", a_target}, {"cert", a_cert},
    {"key", a_key},       {"ca", a_ca},         {"server-name", a_server_name},
};

#define N_OWN (sizeof(own_keys) / sizeof(own_keys[0]))

/* Gateway keys that mean the same for a tunnel (parsed by the gateway's key table). */
static const char *const shared_keys[] = {
    "idle-timeout", "backend-connect-timeout",
    "max-lifetime", "max-connections",
    "buffer-size",  "tls-min",
    "tls-max",      "ciphers",
    "ciphersuites", "groups",
};

/* [global] keys the tunnel uses itself. */
static const char *const global_keys[] = {"workers",       "metrics",  "access-log",
                                          "log-level",     "drain-timeout", "user",
                                          "pin-file",      "pkcs11-module"};

static bool in_list(const char *const *list, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], key) == 0)
            return true;
    return false;
}

#define IN(list, key) in_list(list, sizeof(list) / sizeof(list[0]), key)

static int own_key(const char *key)
{
    for (size_t i = 0; i < N_OWN; i++)
        if (strcmp(own_keys[i].name, key) == 0)
            return (int)i;
    return -1;
}

/* ---- messages ------------------------------------------------------------------------------ */

static int entry_err(const struct raw *raw, const struct section *sec, const struct entry *e,
                     const char *why, struct tw_err *err)
{
    char q[80];
    cfg_quote(e->value, q, sizeof(q));
    if (raw->source == NULL)
        return tw_err_set(err, TW_ERR_USAGE, "--%s \"%s\": %s", e->key, q, why);
    if (sec == &raw->global)
        return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: [global] %s = \"%s\": %s", raw->source,
                          e->line, e->key, q, why);
    return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: [tunnel %s] %s = \"%s\": %s", raw->source,
                      e->line, sec->name, e->key, q, why);
}

static int section_err(const struct raw *raw, const struct section *sec, struct tw_err *err,
                       const char *fmt, ...) TW_PRINTF(4, 5);

static int section_err(const struct raw *raw, const struct section *sec, struct tw_err *err,
                       const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (raw->source == NULL)
        return tw_err_set(err, TW_ERR_USAGE, "%s", msg);
    return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: [tunnel %s]: %s", raw->source, sec->line,
                      sec->name, msg);
}

/* ---- phase 1: collect entries -------------------------------------------------------------- */

static int add_entry(struct raw *raw, struct section *sec, const char *key, const char *value,
                     int line, struct tw_err *err)
{
    struct entry e = {key, value, line};
    bool is_global = sec == &raw->global;
    bool known = own_key(key) >= 0 || IN(shared_keys, key) ||
                 (is_global && (IN(global_keys, key) || cfg_key_find(key) >= 0));
    if (is_global && own_key(key) >= 0 && raw->source != NULL)
        known = false; /* listen/target/... belong in a [tunnel] */
    if (!known) {
        char why[300];
        snprintf(why, sizeof(why),
                 "unknown %s; tunnel keys are listen, target, cert, key, "
                 "ca, server-name and the gateway's idle-timeout, "
                 "backend-connect-timeout, max-lifetime, max-connections, "
                 "buffer-size, tls-min, tls-max, ciphers, ciphersuites, groups",
                 raw->source == NULL ? "flag" : "key");
        return entry_err(raw, sec, &e, why, err);
    }
    for (size_t i = 0; i < sec->n; i++)
        if (strcmp(sec->e[i].key, key) == 0)
            return entry_err(raw, sec, &e, "set twice", err);
    /* As in the gateway: no key means "empty", and the value checks may assume a first byte. */
    if (value[0] == '\0')
        return entry_err(raw, sec, &e, "empty value", err);
    if (sec->n >= MAX_ENTRIES)
        return entry_err(raw, sec, &e, "too many keys in one section", err);
    sec->e[sec->n++] = e;
    return 0;
}

static int add_tunnel(struct raw *raw, const char *name, int line, struct tw_err *err)
{
    size_t len = strlen(name);
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    TW_ENSURE(len > 0 && len <= GW_CONFIG_NAME_MAX && strspn(name, ok) == len, err, TW_ERR_CONFIG,
              "%s:%d: [tunnel %.60s]: a tunnel name is 1-%u characters of A-Z a-z 0-9 _ . -",
              raw->source, line, name, GW_CONFIG_NAME_MAX);
    for (size_t i = 0; i < raw->ntun; i++)
        TW_ENSURE(strcmp(raw->tun[i].name, name) != 0, err, TW_ERR_CONFIG,
                  "%s:%d: [tunnel %s] is already defined at line %d", raw->source, line, name,
                  raw->tun[i].line);
    TW_ENSURE(raw->ntun < GW_TUNNELS_MAX, err, TW_ERR_CONFIG, "%s:%d: more than %u tunnels",
              raw->source, line, GW_TUNNELS_MAX);
    struct section *s = &raw->tun[raw->ntun++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->line = line;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Cut a comment: a line starting with ; or #, or " ;" / " #" after a value. */
static void cut_comment(char *s)
{
    if (s[0] == '\0' || s[0] == ';' || s[0] == '#') {
        s[0] = '\0';
        return;
    }
    for (char *p = s + 1; *p != '\0'; p++)
        if ((*p == ';' || *p == '#') && isspace((unsigned char)p[-1])) {
            *p = '\0';
            return;
        }
}

enum cur { CUR_NONE, CUR_GLOBAL, CUR_SKIP, CUR_TUNNEL };

static int on_header(struct raw *raw, char *inner, int line, enum cur *cur, struct tw_err *err)
{
    inner = trim(inner);
    size_t word = strcspn(inner, " \t");
    char *rest = trim(inner + word);
    if (strcmp(inner, "global") == 0) {
        *cur = CUR_GLOBAL;
    } else if (word == 6 && strncmp(inner, "tunnel", 6) == 0) {
        *cur = CUR_TUNNEL;
        return add_tunnel(raw, rest, line, err);
    } else if (word == 7 && strncmp(inner, "service", 7) == 0) {
        *cur = CUR_SKIP; /* the gateway's */
    } else {
        return tw_err_set(err, TW_ERR_CONFIG,
                          "%s:%d: unknown section [%.60s]: use [global], [service NAME] or "
                          "[tunnel NAME]",
                          raw->source, line, inner);
    }
    return 0;
}

static int parse_line(struct raw *raw, char *s, int line, enum cur *cur, struct tw_err *err)
{
    cut_comment(s);
    s = trim(s);
    if (s[0] == '\0')
        return 0;
    if (s[0] == '[') {
        size_t len = strlen(s);
        TW_ENSURE(s[len - 1] == ']', err, TW_ERR_CONFIG,
                  "%s:%d: a section header is [NAME] alone on its line", raw->source, line);
        s[len - 1] = '\0';
        return on_header(raw, s + 1, line, cur, err);
    }
    char *eq = strchr(s, '=');
    TW_ENSURE(eq != NULL, err, TW_ERR_CONFIG, "%s:%d: expected 'key = value'", raw->source, line);
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    TW_ENSURE(key[0] != '\0', err, TW_ERR_CONFIG, "%s:%d: a key name is missing before '='",
              raw->source, line);
    switch (*cur) {
    case CUR_NONE:
        return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: '%.40s' is outside any section", raw->source,
                          line, key);
    case CUR_SKIP:
        return 0;
    case CUR_GLOBAL:
        return add_entry(raw, &raw->global, key, value, line, err);
    case CUR_TUNNEL:
        return add_entry(raw, &raw->tun[raw->ntun - 1], key, value, line, err);
    }
    return 0;
}

static int collect_text(struct raw *raw, struct tw_err *err)
{
    enum cur cur = CUR_NONE;
    char *p = raw->text;
    for (int line = 1; *p != '\0'; line++) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        TW_ENSURE(strlen(p) <= GW_CONFIG_LINE_MAX, err, TW_ERR_CONFIG,
                  "%s:%d: line longer than %u bytes", raw->source, line, GW_CONFIG_LINE_MAX);
        if (line == 1 && strncmp(p, "\xEF\xBB\xBF", 3) == 0)
            p += 3;
        TW_GUARD(parse_line(raw, p, line, &cur, err));
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    TW_ENSURE(raw->ntun > 0, err, TW_ERR_CONFIG,
              "%s: no [tunnel NAME] section (twoway tunnel needs at least one)", raw->source);
    return 0;
}

/* Flags: `--key value` or `--key=value`; they make one tunnel named "default". */
static int collect_flags(struct raw *raw, int argc, char **argv, struct tw_err *err)
{
    struct section *t = &raw->tun[raw->ntun++];
    snprintf(t->name, sizeof(t->name), "default");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        TW_ENSURE(strncmp(a, "--", 2) == 0 && a[2] != '\0', err, TW_ERR_USAGE,
                  "unexpected argument '%s'", a);
        const char *key = a + 2, *value = NULL;
        char *eq = strchr(key, '=');
        if (eq != NULL) {
            *eq = '\0'; /* argv strings are ours to edit */
            value = eq + 1;
        } else {
            TW_ENSURE(i + 1 < argc, err, TW_ERR_USAGE, "--%s needs a value", key);
            value = argv[++i];
        }
        bool global = IN(global_keys, key);
        TW_GUARD(add_entry(raw, global ? &raw->global : t, key, value, 0, err));
    }
    return 0;
}

/* ---- phase 2: apply and validate ----------------------------------------------------------- */

static int apply(const struct raw *raw, const struct section *sec, const struct entry *e,
                 struct gw_service *s, struct gw_global *g, struct tw_err *err)
{
    char why[200] = "invalid value";
    int own = own_key(e->key);
    if (own >= 0) {
        if (own_keys[own].apply(s, e->value, why, sizeof(why)) != 0)
            return entry_err(raw, sec, e, why, err);
        return 0;
    }
    int k = cfg_key_find(e->key);
    if (k < 0)
        return entry_err(raw, sec, e, "unknown key", err);
    const struct cfg_key *key = &cfg_keys[k];
    bool global_meaning = g != NULL;
    void *obj = global_meaning ? (void *)g : (void *)s;
    cfg_parse_fn fn = global_meaning && key->parse_global != NULL ? key->parse_global : key->parse;
    if (fn(key, obj, e->value, why, sizeof(why)) != 0)
        return entry_err(raw, sec, e, why, err);
    return 0;
}

static void service_defaults(struct gw_service *s)
{
    memset(s, 0, sizeof(*s));
    s->mode = GW_MODE_TCP;
    s->forward = GW_FORWARD_NONE;
    s->plaintext_listen = true;
    s->tls_min = TLS1_2_VERSION;
    s->tls_max = TLS1_3_VERSION;
    s->crl_refresh = 300;
    s->timeouts = (struct gw_timeouts){
        .handshake = 10, .idle = 300, .backend_connect = 5, .backend = 60, .max_lifetime = 0};
    s->limits =
        (struct gw_limits){.max_header_bytes = 16384, .max_headers = 100, .buffer_size = 65536};
}

static int global_defaults(struct gw_global *g, struct tw_err *err)
{
    memset(g, 0, sizeof(*g));
    g->access_log = strdup("-");
    g->log_level = LOG_LVL_INFO;
    g->max_connections = 10000;
    g->ticket_rotate = 3600;
    g->drain_timeout = 30;
    TW_ENSURE(g->access_log != NULL, err, TW_ERR_INTERNAL, "out of memory");
    return 0;
}

static int build_tunnel(const struct raw *raw, size_t i, struct gw_config *cfg, struct tw_err *err)
{
    const struct section *sec = &raw->tun[i];
    struct gw_service *s = &cfg->services[i];
    service_defaults(s);
    s->name = strdup(sec->name);
    s->line = sec->line;
    TW_ENSURE(s->name != NULL, err, TW_ERR_INTERNAL, "out of memory");
    /* [global] defaults first (only the shared per-tunnel keys), then the tunnel's own. */
    for (size_t k = 0; k < raw->global.n; k++)
        if (IN(shared_keys, raw->global.e[k].key) &&
            strcmp(raw->global.e[k].key, "max-connections") != 0)
            TW_GUARD(apply(raw, &raw->global, &raw->global.e[k], s, NULL, err));
    for (size_t k = 0; k < sec->n; k++)
        TW_GUARD(apply(raw, sec, &sec->e[k], s, NULL, err));
    const char *missing = s->listen == NULL         ? "listen"
                          : s->backend.text == NULL ? "target"
                          : s->backend_cert == NULL ? "cert"
                          : s->backend_key == NULL  ? "key"
                          : s->backend_ca == NULL   ? "ca"
                                                    : NULL;
    if (missing != NULL)
        return section_err(raw, sec, err, "%s%s is required", raw->source ? "" : "--", missing);
    TW_ENSURE(s->tls_min <= s->tls_max, err, raw->source ? TW_ERR_CONFIG : TW_ERR_USAGE,
              "[tunnel %s]: tls-min is above tls-max", sec->name);
    return 0;
}

static int build_listeners(const struct raw *raw, struct gw_config *cfg, struct tw_err *err)
{
    cfg->listeners = calloc(cfg->n_services, sizeof(*cfg->listeners));
    TW_ENSURE(cfg->listeners != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < cfg->n_services; i++) {
        const struct gw_addr *a = &cfg->services[i].listen[0];
        for (size_t k = 0; k < i; k++)
            if (strcmp(cfg->listeners[k].addr.text, a->text) == 0)
                return section_err(raw, &raw->tun[i], err,
                                   "listen %s is already used by [tunnel %s]", a->text,
                                   cfg->services[k].name);
        struct gw_listener *l = &cfg->listeners[i];
        l->addr = *a;
        l->mode = GW_MODE_TCP;
        l->services = malloc(sizeof(*l->services));
        TW_ENSURE(l->services != NULL, err, TW_ERR_INTERNAL, "out of memory");
        l->services[0] = i;
        l->n_services = 1;
        cfg->n_listeners = i + 1;
    }
    return 0;
}

static int build(const struct raw *raw, struct gw_config *cfg, struct tw_err *err)
{
    TW_GUARD(global_defaults(&cfg->global, err));
    for (size_t k = 0; k < raw->global.n; k++) {
        const struct entry *e = &raw->global.e[k];
        if (IN(global_keys, e->key) || (raw->source != NULL && !strcmp(e->key, "max-connections")))
            TW_GUARD(apply(raw, &raw->global, e, NULL, &cfg->global, err));
    }
    cfg->services = calloc(raw->ntun, sizeof(*cfg->services));
    TW_ENSURE(cfg->services != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < raw->ntun; i++) {
        cfg->n_services = i + 1;
        TW_GUARD(build_tunnel(raw, i, cfg, err));
    }
    return build_listeners(raw, cfg, err);
}

static struct gw_config *finish(struct raw *raw, int rc, struct tw_err *err)
{
    struct gw_config *cfg = NULL;
    if (rc == 0) {
        cfg = calloc(1, sizeof(*cfg));
        if (cfg == NULL) {
            tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        } else if (build(raw, cfg, err) != 0) {
            gw_config_free(cfg);
            cfg = NULL;
        }
    }
    free(raw->text);
    free(raw);
    return cfg;
}

struct gw_config *gw_tunnel_config_load_buffer(const char *name, const void *data, size_t len,
                                               struct tw_err *err)
{
    struct raw *raw = calloc(1, sizeof(*raw));
    TW_ENSURE_PTR(raw != NULL, err, TW_ERR_INTERNAL, "out of memory");
    raw->source = name;
    int rc = -1;
    if (memchr(data, '\0', len) != NULL) {
        tw_err_set(err, TW_ERR_CONFIG, "%s: a NUL byte in the file", name);
    } else if (len > GW_CONFIG_FILE_MAX) {
        tw_err_set(err, TW_ERR_IO, "%s: larger than %u bytes", name, GW_CONFIG_FILE_MAX);
    } else if ((raw->text = malloc(len + 1)) == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    } else {
        memcpy(raw->text, data, len);
        raw->text[len] = '\0';
        rc = collect_text(raw, err);
    }
    return finish(raw, rc, err);
}

struct gw_config *gw_tunnel_config_load(const struct gw_source *src, struct tw_err *err)
{
    if (src->config_path != NULL) {
        char *data = NULL;
        size_t len = 0;
        if (fs_read_file(src->config_path, GW_CONFIG_FILE_MAX, &data, &len, err) != 0)
            return NULL;
        struct gw_config *cfg = gw_tunnel_config_load_buffer(src->config_path, data, len, err);
        free(data);
        if (cfg != NULL && (cfg->path = strdup(src->config_path)) == NULL) {
            gw_config_free(cfg);
            TW_ENSURE_PTR(false, err, TW_ERR_INTERNAL, "out of memory");
        }
        return cfg;
    }
    struct raw *raw = calloc(1, sizeof(*raw));
    TW_ENSURE_PTR(raw != NULL, err, TW_ERR_INTERNAL, "out of memory");
    /* Flags are edited in place (--k=v): work on copies so a reload sees them intact. */
    char **argv = calloc((size_t)src->argc + 1, sizeof(char *));
    int rc = argv != NULL ? 0 : tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    size_t total = 0;
    for (int i = 0; rc == 0 && i < src->argc; i++)
        total += strlen(src->argv[i]) + 1;
    if (rc == 0 && (raw->text = malloc(total + 1)) == NULL)
        rc = tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    for (int i = 0, off = 0; rc == 0 && i < src->argc; i++) {
        size_t n = strlen(src->argv[i]) + 1;
        memcpy(raw->text + off, src->argv[i], n);
        argv[i] = raw->text + off;
        off += (int)n;
    }
    if (rc == 0)
        rc = collect_flags(raw, src->argc, argv, err);
    free(argv);
    return finish(raw, rc, err);
}

void gw_tunnel_list_flags(FILE *out)
{
    for (size_t i = 0; i < N_OWN; i++)
        fprintf(out, "--%s\n", own_keys[i].name);
    for (size_t i = 0; i < sizeof(shared_keys) / sizeof(shared_keys[0]); i++)
        fprintf(out, "--%s\n", shared_keys[i]);
    for (size_t i = 0; i < sizeof(global_keys) / sizeof(global_keys[0]); i++)
        fprintf(out, "--%s\n", global_keys[i]);
}
