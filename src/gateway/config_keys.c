/* The one table of configuration keys. INI keys, command-line flags, `--help` text and the
 * documentation's list all come from here. */
#include "gateway/config_priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(obj, k, type) ((type *)((char *)(obj) + (k)->off))

static int why_set(char *why, size_t cap, const char *msg)
{
    snprintf(why, cap, "%s", msg);
    return -1;
}

static int p_string(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    char **field = FIELD(obj, k, char *);
    if (cfg_check_path(v, why, cap) != 0)
        return -1;
    char *copy = strdup(v);
    if (copy == NULL)
        return why_set(why, cap, "out of memory");
    free(*field);
    *field = copy;
    return 0;
}

/* OpenSSL cipher, ciphersuite and group lists: names joined by ':' with OpenSSL's operators.
 * Whether OpenSSL knows the names is checked by gw_config_check / the core. */
static int p_tls_list(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    for (const char *p = v; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr(":_-+!@=.,", *p) == NULL)
            return why_set(why, cap,
                           "expected OpenSSL names joined by ':' (e.g. "
                           "ECDHE+AESGCM:ECDHE+CHACHA20)");
    return p_string(k, obj, v, why, cap);
}

static int p_bool(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    return cfg_parse_bool(v, FIELD(obj, k, bool), why, cap);
}

static int p_u32(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    long long n;
    if (cfg_parse_int(v, k->min, k->max, &n, why, cap) != 0)
        return -1;
    *FIELD(obj, k, uint32_t) = (uint32_t)n;
    return 0;
}

static int p_global_max_conn(const struct cfg_key *k, void *obj, const char *v, char *why,
                             size_t cap)
{
    long long n;
    if (cfg_parse_int(v, 1, k->max, &n, why, cap) != 0)
        return -1;
    ((struct gw_global *)obj)->max_connections = (uint32_t)n;
    return 0;
}

static int p_size(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    long long n;
    if (cfg_parse_size(v, k->min, k->max, &n, why, cap) != 0)
        return -1;
    *FIELD(obj, k, size_t) = (size_t)n;
    return 0;
}

static int p_size32(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    long long n;
    if (cfg_parse_size(v, k->min, k->max, &n, why, cap) != 0)
        return -1;
    *FIELD(obj, k, uint32_t) = (uint32_t)n;
    return 0;
}

static int p_duration(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    return cfg_parse_duration(v, k->min, k->max, FIELD(obj, k, int64_t), why, cap);
}

static int p_workers(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    long long n = 0;
    if (strcmp(v, "auto") != 0 && cfg_parse_int(v, k->min, k->max, &n, why, cap) != 0) {
        snprintf(why, cap, "expected auto or a number from %lld to %lld", k->min, k->max);
        return -1;
    }
    ((struct gw_global *)obj)->workers = (int)n;
    return 0;
}

static int p_metrics(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    struct gw_global *g = obj;
    if (strcmp(v, "off") == 0) {
        g->has_metrics = false;
        return 0;
    }
    if (cfg_parse_addr(v, &g->metrics, why, cap) != 0)
        return -1;
    g->has_metrics = true;
    return 0;
}

static int p_access_log(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    struct gw_global *g = obj;
    if (strcmp(v, "off") == 0) {
        free(g->access_log);
        g->access_log = NULL;
        return 0;
    }
    return p_string(k, obj, v, why, cap);
}

static int p_log_level(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    if (log_level_parse(v, &((struct gw_global *)obj)->log_level) != 0)
        return why_set(why, cap, "expected debug, info, warn or error");
    return 0;
}

/* A login name as useradd(8) accepts it by default; whether it exists is checked at start. */
static int p_user(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    size_t n = strlen(v);
    if (n == 0 || n > 32 || v[0] == '-' || isdigit((unsigned char)v[0]))
        return why_set(why, cap,
                       "expected a user name (1-32 characters, not starting with - "
                       "or a digit)");
    for (const char *p = v; *p != '\0'; p++)
        if (!isalnum((unsigned char)*p) && strchr("_-.", *p) == NULL &&
            !(p[1] == '\0' && *p == '$'))
            return why_set(why, cap, "expected a user name (letters, digits, _ - .)");
    return p_string(k, obj, v, why, cap);
}

/* A small word -> value table for enum keys. */
struct word {
    const char *word;
    int value;
};

static int p_words(const struct word *w, size_t n, int *out, const char *v, char *why, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v, w[i].word) == 0) {
            *out = w[i].value;
            return 0;
        }
    }
    size_t used = (size_t)snprintf(why, cap, "expected ");
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(why + used, cap - used, "%s%s", w[i].word,
                                 i + 2 < n ? ", " : (i + 1 < n ? " or " : ""));
    return -1;
}

#define WORDS(name, ...)                                                                           \
    static int name(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)      \
    {                                                                                              \
        static const struct word w[] = {__VA_ARGS__};                                              \
        int value;                                                                                 \
        if (p_words(w, sizeof(w) / sizeof(w[0]), &value, v, why, cap) != 0)                        \
            return -1;                                                                             \
        *FIELD(obj, k, int) = value;                                                               \
        return 0;                                                                                  \
    }

WORDS(p_mode, {"http", GW_MODE_HTTP}, {"tcp", GW_MODE_TCP})
WORDS(p_forward, {"rfc9440", GW_FORWARD_RFC9440}, {"xfcc", GW_FORWARD_XFCC},
      {"proxy-v2", GW_FORWARD_PROXY_V2}, {"none", GW_FORWARD_NONE})
WORDS(p_crl_expired, {"reject", TLSX_CRL_EXPIRED_REJECT}, {"warn", TLSX_CRL_EXPIRED_WARN})
WORDS(p_ocsp_fail, {"closed", GW_OCSP_FAIL_CLOSED}, {"open", GW_OCSP_FAIL_OPEN})
WORDS(p_backend_proto, {"http1", GW_BACKEND_PROTO_HTTP1}, {"h2", GW_BACKEND_PROTO_H2},
      {"auto", GW_BACKEND_PROTO_AUTO})
WORDS(p_tls_version, {"1.2", TLS1_2_VERSION}, {"1.3", TLS1_3_VERSION})

_Static_assert(sizeof(enum gw_mode) == sizeof(int), "enum fields are written as int");

/* "h2,http/1.1" (preference order), "http/1.1", "h2" or "none". */
static int p_alpn(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    static const struct word w[] = {{"h2", GW_ALPN_H2}, {"http/1.1", GW_ALPN_HTTP11}};
    struct gw_service *s = obj;
    enum gw_alpn got[GW_ALPN_MAX];
    size_t n = 0;
    if (strcmp(v, "none") == 0) {
        s->n_alpn = 0;
        return 0;
    }
    for (const char *p = v; *p != '\0';) {
        char word[16];
        size_t len = strcspn(p, ",");
        while (len > 0 && *p == ' ')
            p++, len--;
        size_t end = len;
        while (end > 0 && p[end - 1] == ' ')
            end--;
        if (end == 0 || end >= sizeof(word))
            return why_set(why, cap, "expected none or a list of h2 and http/1.1 (h2,http/1.1)");
        memcpy(word, p, end);
        word[end] = '\0';
        int value;
        if (p_words(w, sizeof(w) / sizeof(w[0]), &value, word, why, cap) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (got[i] == (enum gw_alpn)value)
                return why_set(why, cap, "a protocol is listed twice");
        if (n == GW_ALPN_MAX)
            return why_set(why, cap, "too many protocols");
        got[n++] = (enum gw_alpn)value;
        p += len;
        if (*p == ',' && *++p == '\0')
            return why_set(why, cap, "empty protocol name after ','");
    }
    memcpy(s->alpn, got, sizeof(got));
    s->n_alpn = n;
    return 0;
}

/* Append a copy of v to a (char **, size_t) pair of fields. */
static int append(char ***arr, size_t *n, const char *v, char *why, size_t cap)
{
    char **grown = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (grown == NULL)
        return why_set(why, cap, "out of memory");
    *arr = grown;
    if ((grown[*n] = strdup(v)) == NULL)
        return why_set(why, cap, "out of memory");
    (*n)++;
    return 0;
}

static int p_listen(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    struct gw_service *s = obj;
    struct gw_addr a;
    if (cfg_parse_addr(v, &a, why, cap) != 0)
        return -1;
    for (size_t i = 0; i < s->n_listen; i++)
        if (strcmp(s->listen[i].text, a.text) == 0)
            return why_set(why, cap, "this address is already listed for the service");
    struct gw_addr *grown = realloc(s->listen, (s->n_listen + 1) * sizeof(*grown));
    if (grown == NULL)
        return why_set(why, cap, "out of memory");
    s->listen = grown;
    s->listen[s->n_listen++] = a;
    return 0;
}

static int p_backend(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    struct gw_service *s = obj;
    struct gw_backend b;
    if (cfg_parse_backend(v, &b, why, cap) != 0) {
        free(b.host), free(b.path), free(b.text);
        return -1;
    }
    free(s->backend.host), free(s->backend.path), free(s->backend.text);
    s->backend = b;
    return 0;
}

static int p_crl(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    struct gw_service *s = obj;
    bool url;
    if (cfg_check_crl(v, &url, why, cap) != 0)
        return -1;
    bool *grown = realloc(s->crl_is_url, (s->n_crl + 1) * sizeof(*grown));
    if (grown == NULL)
        return why_set(why, cap, "out of memory");
    s->crl_is_url = grown;
    grown[s->n_crl] = url;
    return append(&s->crl, &s->n_crl, v, why, cap);
}

/* auto (NULL: follow the feed a twoway CA advertises), off, or the feed's https:// URL. */
static int p_feed(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    char **field = FIELD(obj, k, char *);
    if (strcmp(v, "auto") == 0) {
        free(*field);
        *field = NULL;
        return 0;
    }
    if (strcmp(v, "off") != 0 && strncmp(v, "https://", 8) != 0)
        return why_set(why, cap,
                       "expected auto, off or the feed's https:// URL (e.g. "
                       "https://ca.example:8443/revocations)");
    return p_string(k, obj, v, why, cap);
}

static int p_allow(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    struct gw_service *s = obj;
    if (cfg_check_allow_rule(v, why, cap) != 0)
        return -1;
    return append(&s->allow, &s->n_allow, v, why, cap);
}

static int p_server_name(const struct cfg_key *k, void *obj, const char *v, char *why, size_t cap)
{
    (void)k;
    struct gw_service *s = obj;
    if (cfg_check_server_name(v, why, cap) != 0)
        return -1;
    for (size_t i = 0; i < s->n_server_name; i++)
        if (strcasecmp(s->server_name[i], v) == 0)
            return why_set(why, cap, "this name is already listed for the service");
    if (append(&s->server_name, &s->n_server_name, v, why, cap) != 0)
        return -1;
    for (char *p = s->server_name[s->n_server_name - 1]; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

static int p_server_name_single(const struct cfg_key *k, void *obj, const char *v, char *why,
                                size_t cap)
{
    if (strchr(v, '*') != NULL)
        return why_set(why, cap, "a backend name cannot be a wildcard");
    if (cfg_check_server_name(v, why, cap) != 0)
        return -1;
    (void)k;
    struct gw_service *s = obj;
    char *copy = strdup(v);
    if (copy == NULL)
        return why_set(why, cap, "out of memory");
    free(s->backend_server_name);
    s->backend_server_name = copy;
    return 0;
}

#define G(f) offsetof(struct gw_global, f)
#define S(f) offsetof(struct gw_service, f)
#define DAY (24LL * 3600)

/* name, scope, repeatable, is_bool, parse, parse_global, off, max_count, min, max, syntax,
 * default, help */
const struct cfg_key cfg_keys[] = {
    /* [global] */
    {"workers", CFG_GLOBAL, false, false, p_workers, NULL, 0, 0, 1, GW_CONFIG_WORKERS_MAX, "auto|N",
     "auto", "worker threads (auto: one per core)"},
    {"metrics", CFG_GLOBAL, false, false, p_metrics, NULL, 0, 0, 0, 0, "ADDR:PORT|off", "off",
     "plain-HTTP listener for /metrics and /healthz"},
    {"access-log", CFG_GLOBAL, false, false, p_access_log, NULL, G(access_log), 0, 0, 0,
     "-|PATH|off", "-", "JSON access log, one line per connection (- is stdout)"},
    {"log-level", CFG_GLOBAL, false, false, p_log_level, NULL, 0, 0, 0, 0, "debug|info|warn|error",
     "info", "least severe log level written"},
    {"max-connections", CFG_EACH, false, false, p_u32, p_global_max_conn, S(max_connections), 0, 0,
     1000000, "N", "10000 (service: 0, no own cap)",
     "connection cap: process-wide in [global], per service in [service]"},
    {"ticket-key-file", CFG_GLOBAL, false, false, p_string, NULL, G(ticket_key_file), 0, 0, 0,
     "PATH", "(random keys in memory)", "shared session-ticket keys (80-byte records, 0600)"},
    {"ticket-rotate", CFG_GLOBAL, false, false, p_duration, NULL, G(ticket_rotate), 0, 60, 7 * DAY,
     "DURATION", "1h", "rotation period of in-memory ticket keys"},
    {"user", CFG_GLOBAL, false, false, p_user, NULL, G(user), 0, 0, 0, "NAME",
     "(none: stay as started)", "started as root: bind and read keys, then run as this user"},
    {"pin-file", CFG_GLOBAL, false, false, p_string, NULL, G(pin_file), 0, 0, 0, "PATH",
     "(the key's pin-source=, else $TWOWAY_PKCS11_PIN_FILE)",
     "PIN of pkcs11: keys, first line of a 0600 file"},
    {"pkcs11-module", CFG_GLOBAL, false, false, p_string, NULL, G(pkcs11_module), 0, 0, 0,
     "PATH", "(the key's module-path=, else $TWOWAY_PKCS11_MODULE)",
     "PKCS#11 module (.so) for pkcs11: keys"},
    {"drain-timeout", CFG_GLOBAL, false, false, p_duration, NULL, G(drain_timeout), 0, 0, DAY,
     "DURATION", "30s", "on SIGTERM, how long open connections may finish"},

    /* [service NAME]: where and what */
    {"listen", CFG_SERVICE, true, false, p_listen, NULL, 0, GW_CONFIG_LISTEN_MAX, 0, 0, "ADDR:PORT",
     "(required)", "address to accept TLS on: 0.0.0.0:8443, [::]:8443"},
    {"backend", CFG_SERVICE, false, false, p_backend, NULL, 0, 0, 0, 0,
     "HOST:PORT|unix:PATH|tls://HOST:PORT", "(required)", "where verified clients are sent"},
    {"mode", CFG_SERVICE, false, false, p_mode, NULL, S(mode), 0, 0, 0, "http|tcp", "http",
     "HTTP reverse proxy or plain byte stream"},
    {"cert", CFG_SERVICE, false, false, p_string, NULL, S(cert), 0, 0, 0, "PATH", "(required)",
     "server certificate, PEM, leaf first then chain"},
    {"key", CFG_SERVICE, false, false, p_string, NULL, S(key), 0, 0, 0, "PATH", "(required)",
     "server private key, PEM, mode 0600"},
    {"server-name", CFG_SERVICE, true, false, p_server_name, NULL, 0, GW_CONFIG_SERVER_NAMES_MAX, 0,
     0, "NAME", "(the certificate's DNS names)",
     "SNI name this service answers; *.example.com allowed"},

    /* client verification */
    {"client-ca", CFG_BOTH, false, false, p_string, NULL, S(client_ca), 0, 0, 0, "PATH",
     "(required)", "CA bundle that client certificates must chain to"},
    {"crl", CFG_BOTH, true, false, p_crl, NULL, 0, GW_CONFIG_CRL_MAX, 0, 0, "PATH|URL", "(none)",
     "CRL file (PEM or DER) or http(s) URL; reloaded"},
    {"crl-refresh", CFG_BOTH, false, false, p_duration, NULL, S(crl_refresh), 0, 1, 7 * DAY,
     "DURATION", "5m", "how often CRL files are re-read and URLs re-fetched"},
    {"crl-ca", CFG_BOTH, false, false, p_string, NULL, S(crl_ca), 0, 0, 0, "PATH", "(client-ca)",
     "CA bundle to verify an https CRL server"},
    {"crl-expired", CFG_BOTH, false, false, p_crl_expired, NULL, S(crl_expired), 0, 0, 0,
     "reject|warn", "reject", "what to do when a CRL is past its nextUpdate"},
    {"revocation-feed", CFG_BOTH, false, false, p_feed, NULL, S(revocation_feed), 0, 0, 0,
     "auto|off|URL", "auto",
     "follow a twoway CA's revocation feed (long poll) instead of polling the CRL URL"},
    {"ocsp", CFG_BOTH, false, true, p_bool, NULL, S(ocsp), 0, 0, 0, "on|off", "off",
     "also check client certificates with OCSP"},
    {"ocsp-fail", CFG_BOTH, false, false, p_ocsp_fail, NULL, S(ocsp_fail), 0, 0, 0, "open|closed",
     "closed", "allow (open) or refuse (closed) when OCSP has no answer"},
    {"allow", CFG_SERVICE, true, false, p_allow, NULL, 0, GW_CONFIG_ALLOW_MAX, 0, 0, "TYPE:VALUE",
     "(any certificate from client-ca)",
     "allow rule: cn:, ou:, o:, dns:, email:, uri:, serial:, sha256:; * globs"},

    /* identity forwarding */
    {"forward", CFG_SERVICE, false, false, p_forward, NULL, S(forward), 0, 0, 0,
     "rfc9440|xfcc|proxy-v2|none", "rfc9440 (http), none (tcp)",
     "how the client identity reaches the backend"},
    {"forward-chain", CFG_BOTH, false, true, p_bool, NULL, S(forward_chain), 0, 0, 0, "on|off",
     "off", "rfc9440: also send Client-Cert-Chain"},
    {"proxy-v2-cert", CFG_BOTH, false, true, p_bool, NULL, S(proxy_v2_cert), 0, 0, 0, "on|off",
     "off", "proxy-v2: also send the client certificate (TLV 0x28)"},

    /* backend TLS */
    {"backend-cert", CFG_BOTH, false, false, p_string, NULL, S(backend_cert), 0, 0, 0, "PATH",
     "(none)", "tls:// backends: the gateway's client certificate"},
    {"backend-key", CFG_BOTH, false, false, p_string, NULL, S(backend_key), 0, 0, 0, "PATH",
     "(none)", "tls:// backends: its private key (0600)"},
    {"backend-ca", CFG_BOTH, false, false, p_string, NULL, S(backend_ca), 0, 0, 0, "PATH",
     "(system trust store)", "tls:// backends: CAs the backend certificate must chain to"},
    {"backend-server-name", CFG_SERVICE, false, false, p_server_name_single, NULL, 0, 0, 0, 0,
     "NAME", "(the backend host)", "tls:// backends: name to send and check"},
    {"insecure-skip-backend-verify", CFG_SERVICE, false, true, p_bool, NULL,
     S(insecure_skip_backend_verify), 0, 0, 0, "on|off", "off",
     "tls:// backends: do NOT verify the backend (weakens security)"},

    /* TLS parameters */
    {"tls-min", CFG_BOTH, false, false, p_tls_version, NULL, S(tls_min), 0, 0, 0, "1.2|1.3", "1.2",
     "lowest TLS version accepted"},
    {"tls-max", CFG_BOTH, false, false, p_tls_version, NULL, S(tls_max), 0, 0, 0, "1.2|1.3", "1.3",
     "highest TLS version accepted"},
    {"ciphers", CFG_BOTH, false, false, p_tls_list, NULL, S(ciphers), 0, 0, 0, "LIST",
     "(ECDHE with AEAD only)", "TLS 1.2 cipher list (OpenSSL syntax)"},
    {"ciphersuites", CFG_BOTH, false, false, p_tls_list, NULL, S(ciphersuites), 0, 0, 0, "LIST",
     "(OpenSSL default)", "TLS 1.3 cipher suites"},
    {"groups", CFG_BOTH, false, false, p_tls_list, NULL, S(groups), 0, 0, 0, "LIST",
     "X25519:P-256:P-384", "key exchange groups"},

    /* timeouts and limits */
    {"handshake-timeout", CFG_BOTH, false, false, p_duration, NULL, S(timeouts.handshake), 0, 1,
     3600, "DURATION", "10s", "from accept to a verified client"},
    {"idle-timeout", CFG_BOTH, false, false, p_duration, NULL, S(timeouts.idle), 0, 1, 7 * DAY,
     "DURATION", "5m", "close a connection with no traffic either way"},
    {"backend-connect-timeout", CFG_BOTH, false, false, p_duration, NULL,
     S(timeouts.backend_connect), 0, 1, 3600, "DURATION", "5s", "connecting to the backend"},
    {"backend-timeout", CFG_BOTH, false, false, p_duration, NULL, S(timeouts.backend), 0, 1, DAY,
     "DURATION", "60s", "waiting for a backend response (504 in http mode)"},
    {"backend-idle-timeout", CFG_BOTH, false, false, p_duration, NULL,
     S(timeouts.backend_idle), 0, 1, DAY, "DURATION", "60s",
     "how long an idle pooled backend connection is kept"},
    {"backend-keepalive", CFG_BOTH, false, false, p_u32, NULL, S(limits.backend_keepalive), 0, 0,
     10000, "N", "256", "idle HTTP/1.1 backend connections kept per worker and service"},
    {"max-lifetime", CFG_BOTH, false, false, p_duration, NULL, S(timeouts.max_lifetime), 0, 0,
     365 * DAY, "DURATION", "0 (unlimited)", "longest a connection may stay open"},
    {"max-header-bytes", CFG_BOTH, false, false, p_size, NULL, S(limits.max_header_bytes), 0, 1024,
     1024 * 1024, "BYTES", "16k", "largest request head (431 beyond)"},
    {"max-headers", CFG_BOTH, false, false, p_u32, NULL, S(limits.max_headers), 0, 1, 10000, "N",
     "100", "most header fields per request (431 beyond)"},
    {"alpn", CFG_BOTH, false, false, p_alpn, NULL, 0, 0, 0, 0, "h2,http/1.1|http/1.1|h2|none",
     "h2,http/1.1 (http), none (tcp)", "application protocols offered by ALPN, preferred first"},
    {"backend-protocol", CFG_BOTH, false, false, p_backend_proto, NULL, S(backend_protocol), 0, 0,
     0, "http1|h2|auto", "http1", "http mode: what HTTP/2 clients' requests reach the backend as"},
    {"h2-max-concurrent-streams", CFG_BOTH, false, false, p_u32, NULL,
     S(h2.max_concurrent_streams), 0, 1, 10000, "N", "100",
     "HTTP/2: open streams per connection (more are refused with RST_STREAM)"},
    {"h2-initial-window", CFG_BOTH, false, false, p_size32, NULL, S(h2.initial_window), 0, 1024,
     16 * 1024 * 1024, "BYTES", "64k", "HTTP/2: flow-control window per request stream"},
    {"h2-max-streams", CFG_BOTH, false, false, p_u32, NULL, S(h2.max_streams), 0, 1, 100000000,
     "N", "10000", "HTTP/2: requests per connection before GOAWAY asks for a new one"},
    {"h2-max-resets", CFG_BOTH, false, false, p_u32, NULL, S(h2.max_resets), 0, 1, 100000, "N",
     "100", "HTTP/2: client stream resets per second (burst) before the connection is closed"},
    {"buffer-size", CFG_BOTH, false, false, p_size, NULL, S(limits.buffer_size), 0, 4096,
     16 * 1024 * 1024, "BYTES", "64k", "bytes buffered per direction before backpressure"},
};

const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

int cfg_key_find(const char *name)
{
    for (size_t i = 0; i < cfg_nkeys; i++)
        if (strcmp(cfg_keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Levenshtein distance, capped: names are short and the table small. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *cfg_word_suggest(const char *name, const char *const *words, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(name, words[i]);
        if (d < best_d) {
            best_d = d;
            best = words[i];
        }
    }
    return best;
}

const char *cfg_key_suggest(const char *name)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < cfg_nkeys; i++) {
        size_t d = distance(name, cfg_keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = cfg_keys[i].name;
        }
    }
    return best;
}
