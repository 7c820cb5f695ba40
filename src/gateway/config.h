/* The gateway's configuration: an INI file (`[global]` + `[service NAME]` sections, DESIGN.md
 * §5) or, for the one-service case, command-line flags named exactly like the keys. Both are
 * read through ONE key table (config_keys.c) into the same immutable structs below.
 *
 * Internal to the gateway module (src/gateway/ and src/cli/gateway.c use it). The config holds
 * paths and values only: the gateway core builds SSL_CTXs, CRL sets and policies from it with
 * tlsx. After gw_config_load_file / gw_config_from_args return, a struct gw_config is never
 * modified, so worker threads may read it without locks; the core refcounts generations.
 *
 * Every error is one line naming where the value came from and why:
 *   twoway.conf:12: [service web] listen = "0.0.0.0:99999": port must be 1-65535
 *   --listen "0.0.0.0:99999": port must be 1-65535
 * File errors carry TW_ERR_CONFIG (TW_ERR_IO when the file cannot be read at all); flag errors
 * carry TW_ERR_USAGE (exit code 2). */
#ifndef TW_GATEWAY_CONFIG_H
#define TW_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <openssl/prov_ssl.h> /* TLS1_2_VERSION, TLS1_3_VERSION */

#include "tlsx/tlsx.h"
#include "util/err.h"
#include "util/log.h"

/* ------------------------------------------------------------------------------------------ */
/* Limits (named so error messages can quote them)                                            */
/* ------------------------------------------------------------------------------------------ */

#define GW_CONFIG_FILE_MAX (1024u * 1024) /* bytes in a config file */
#define GW_CONFIG_LINE_MAX                                                                         \
    4096u                              /* bytes per line (libinih may impose less; the             \
                                        * error message states the effective limit) */
#define GW_CONFIG_SERVICES_MAX 64u     /* [service] sections */
#define GW_CONFIG_NAME_MAX 40u         /* bytes in a service name: [A-Za-z0-9_.-] */
#define GW_CONFIG_LISTEN_MAX 16u       /* listen addresses per service */
#define GW_CONFIG_CRL_MAX 32u          /* crl entries per service */
#define GW_CONFIG_ALLOW_MAX 1024u      /* allow rules per service */
#define GW_CONFIG_SERVER_NAMES_MAX 64u /* server-name entries per service */
#define GW_CONFIG_WORKERS_MAX 256
#define GW_CONFIG_ADDR_TEXT_MAX 64u /* "[ffff:...:ffff]:65535" fits */

/* ------------------------------------------------------------------------------------------ */
/* Value types                                                                                */
/* ------------------------------------------------------------------------------------------ */

enum gw_mode {
    GW_MODE_HTTP = 0, /* default: HTTP/1.1 reverse proxy, identity in headers */
    GW_MODE_TCP,      /* byte stream; identity only via PROXY v2 */
};

/* Always resolved after loading: never "default". */
enum gw_forward {
    GW_FORWARD_NONE = 0,
    GW_FORWARD_RFC9440,  /* Client-Cert (+ Client-Cert-Chain with forward_chain); HTTP only */
    GW_FORWARD_XFCC,     /* X-Forwarded-Client-Cert; HTTP only */
    GW_FORWARD_PROXY_V2, /* PROXY protocol v2 header with PP2_TYPE_SSL; TCP only */
};

enum gw_backend_kind {
    GW_BACKEND_TCP = 0, /* host:port */
    GW_BACKEND_UNIX,    /* unix:/path */
    GW_BACKEND_TLS,     /* tls://host:port: verified TLS (mTLS with backend-cert) */
};

/* Application protocols a service offers by ALPN (RFC 7301), in preference order. */
enum gw_alpn {
    GW_ALPN_H2 = 0, /* "h2": HTTP/2 over TLS (RFC 9113 §3.2) */
    GW_ALPN_HTTP11, /* "http/1.1" */
};
#define GW_ALPN_MAX 2

/* What the gateway speaks to an HTTP-mode backend for HTTP/2 clients. */
enum gw_backend_proto {
    GW_BACKEND_PROTO_HTTP1 = 0, /* each stream one HTTP/1.1 exchange */
    GW_BACKEND_PROTO_H2,        /* HTTP/2: h2c prior knowledge, or ALPN h2 on tls:// */
    GW_BACKEND_PROTO_AUTO,      /* h2 where a tls:// backend picks it by ALPN, else http1 */
};

/* HTTP/2 limits on the client side (RFC 9113 §6.5.2 settings and the gateway's own budgets). */
struct gw_h2_limits {
    uint32_t max_concurrent_streams; /* h2-max-concurrent-streams (default 100) */
    uint32_t initial_window;         /* h2-initial-window: bytes per stream (default 65535) */
    uint32_t max_streams;            /* h2-max-streams: per connection, then GOAWAY (10000) */
    uint32_t max_resets;             /* h2-max-resets: client resets per second, burst (100) */
};

enum gw_ocsp_fail {
    GW_OCSP_FAIL_CLOSED = 0, /* default: no OCSP answer -> handshake refused */
    GW_OCSP_FAIL_OPEN,       /* no OCSP answer -> allowed (logged) */
};

/* A numeric listen address, parsed and ready for bind(). */
struct gw_addr {
    struct sockaddr_storage ss;         /* AF_INET or AF_INET6, port set */
    socklen_t len;                      /* sizeof(sockaddr_in) or sizeof(sockaddr_in6) */
    char text[GW_CONFIG_ADDR_TEXT_MAX]; /* canonical: "0.0.0.0:8443", "[::1]:8443" */
};

/* Where a service forwards to. The host is resolved by the core at connect time. */
struct gw_backend {
    enum gw_backend_kind kind;
    char *host;    /* TCP/TLS: DNS name or IP literal (no brackets); NULL for UNIX */
    uint16_t port; /* TCP/TLS: 1-65535; 0 for UNIX */
    char *path;    /* UNIX: socket path (< sizeof(sun_path)); NULL otherwise */
    char *text;    /* as written, for logs and explain: "tls://api.internal:443" */
};

/* Seconds. 0 means "no limit" only where the key's documentation says so (max_lifetime). */
struct gw_timeouts {
    int64_t handshake;       /* handshake-timeout: accept to verified client (default 10) */
    int64_t idle;            /* idle-timeout: no bytes either way (default 300) */
    int64_t backend_connect; /* backend-connect-timeout (default 5) */
    int64_t backend;         /* backend-timeout: waiting for a backend response (default 60) */
    int64_t max_lifetime;    /* max-lifetime: whole connection; 0 = unlimited (default 0) */
    int64_t backend_idle;    /* backend-idle-timeout: a pooled backend connection (default 60) */
};

/* Byte/count limits applied per connection. */
struct gw_limits {
    size_t max_header_bytes; /* max-header-bytes: request head, 431 beyond (default 16384) */
    uint32_t max_headers;    /* max-headers: header fields per request, 431 beyond (100) */
    uint32_t backend_keepalive; /* backend-keepalive: idle backend connections kept per worker
                                 * (default 256; 0 = none) */
    size_t buffer_size;      /* buffer-size: bytes buffered per direction before
                              * backpressure (default 65536) */
};

/* One [service NAME] section, fully resolved: every [global] default already applied. */
struct gw_service {
    char *name;
    int line; /* line of the [service NAME] header, 0 when built from flags */
    enum gw_mode mode;

    struct gw_addr *listen; /* n_listen >= 1 */
    size_t n_listen;
    struct gw_backend backend;

    /* Server side (paths as written; relative paths are relative to the process cwd). */
    char *cert;      /* PEM: leaf then chain */
    char *key;       /* PEM private key, must be 0600-ish (fs_check_key_perms) */
    char *client_ca; /* PEM bundle of trusted client CAs */

    /* Revocation. crl[i] is a file path, or an http:// / https:// URL (crl_is_url[i]). */
    char **crl;
    bool *crl_is_url;
    size_t n_crl;
    int64_t crl_refresh; /* crl-refresh seconds: URL fetch / file re-check (default 300) */
    char *crl_ca;        /* crl-ca: CA bundle to verify an https CRL server; NULL: client_ca */
    enum tlsx_crl_expired crl_expired; /* crl-expired (default reject) */
    char *revocation_feed; /* revocation-feed: an https:// URL, "off"; NULL: auto */
    bool ocsp;                         /* ocsp (default off) */
    enum gw_ocsp_fail ocsp_fail;       /* ocsp-fail (default closed) */

    /* Allow-policy: rule texts exactly as accepted by tlsx_policy_add ("cn:alice"). The type
     * prefix is validated here; none means any certificate that verified against client_ca. */
    char **allow;
    size_t n_allow;

    enum gw_forward forward; /* resolved: rfc9440 in http mode, none in tcp mode by default */
    bool forward_chain;      /* forward-chain: also Client-Cert-Chain (rfc9440) */
    bool proxy_v2_cert;      /* proxy-v2-cert: also TLV 0x28 with the DER client cert */

    /* SNI names this service answers (exact or "*.example.com"), lower-case. When the
     * server-name key is not set these are the DNS SANs of `cert`, read at load time
     * (server_name_from_cert). n_server_name is 0 only for a service alone on its listeners
     * whose certificate has no DNS SAN or could not be read: it then answers any name. */
    char **server_name;
    size_t n_server_name;
    bool server_name_from_cert;

    /* `twoway tunnel` (issue 5): the listener speaks plaintext (no server TLS; cert, key and
     * client_ca unused) and the backend is the mTLS target. Never set by the gateway loader. */
    bool plaintext_listen;

    /* Backend TLS (only with tls:// backends; setting them otherwise is an error). */
    char *backend_cert; /* gateway's client certificate for the backend */
    char *backend_key;
    char *backend_ca;                  /* NULL: the system trust store */
    char *backend_server_name;         /* NULL: backend.host (name check + SNI) */
    bool insecure_skip_backend_verify; /* skip chain + name check of the backend: weakens */

    /* TLS parameters (server side and backend client side alike). */
    int tls_min;        /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    int tls_max;        /* TLS1_3_VERSION (default) or TLS1_2_VERSION; >= tls_min */
    char *ciphers;      /* NULL: tlsx secure default */
    char *ciphersuites; /* NULL: tlsx default */
    char *groups;       /* NULL: tlsx default */

    uint32_t max_connections; /* per-service cap; 0 = only the global cap (default 0) */
    struct gw_timeouts timeouts;
    struct gw_limits limits;

    /* alpn: offered protocols in preference order; n_alpn == 0: no ALPN. Resolved: "h2,
     * http/1.1" in http mode, none in tcp mode when the key is not set. */
    enum gw_alpn alpn[GW_ALPN_MAX];
    size_t n_alpn;
    enum gw_backend_proto backend_protocol; /* backend-protocol (default http1) */
    struct gw_h2_limits h2;
};

/* One listening socket shared by every service that names the same address. The services
 * are distinguished by SNI (server_name); services[0] (first in file order) also answers
 * clients that send no or an unknown SNI name. TCP-mode listeners have exactly one service;
 * all services on one listener have the same mode. */
struct gw_listener {
    struct gw_addr addr;
    enum gw_mode mode;
    size_t *services; /* indices into gw_config.services */
    size_t n_services;
};

struct gw_global {
    int workers;              /* 0 = auto: one per online core (default) */
    bool has_metrics;         /* metrics set */
    struct gw_addr metrics;   /* plain-HTTP /metrics + /healthz listener */
    char *access_log;         /* "-" stdout (default), a file path; NULL = off ("off") */
    enum log_level log_level; /* log-level (default info) */
    uint32_t max_connections; /* process-wide cap (default 10000) */
    char *ticket_key_file;    /* ticket-key-file: shared keys; NULL = random in memory */
    int64_t ticket_rotate;    /* ticket-rotate seconds (default 3600) */
    int64_t drain_timeout;    /* drain-timeout seconds on SIGTERM (default 30) */
    char *user;               /* user: switch to it once listening; NULL = stay as started */
    char *pin_file;           /* pin-file: PIN of pkcs11: keys without pin-source= */
    char *pkcs11_module;      /* pkcs11-module: module of pkcs11: keys without module-path= */
};

struct gw_config {
    char *path; /* config file path, NULL when built from flags (reload re-reads the same) */
    struct gw_global global;
    struct gw_service *services; /* file order, n_services >= 1 */
    size_t n_services;
    struct gw_listener *listeners; /* derived from services' listen addresses, file order */
    size_t n_listeners;
};

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Read and validate an INI config file. `[tunnel NAME]` sections are skipped (they belong to
 * `twoway tunnel`); any other unknown section or key is an error. Validation covers every
 * value, required keys (listen, backend, cert, key, client-ca), mode/forward compatibility,
 * duplicate service names, listen conflicts (same address without distinct SNI names, tcp
 * mode shared, mixed modes) and the limits above; allow rules are confirmed with
 * tlsx_policy_add, so building policies from a loaded config cannot fail on a rule. Reads the
 * service certificate only to fill
 * server_name from its SANs; file permissions and parse checks are gw_config_check's job.
 * Returns a new config (free with gw_config_free) or NULL with err (TW_ERR_CONFIG, or
 * TW_ERR_IO when the file is unreadable or larger than GW_CONFIG_FILE_MAX). */
struct gw_config *gw_config_load_file(const char *path, struct tw_err *err);

/* The same from memory (data need not be NUL-terminated); name is used in messages where the
 * path would be. For tests and the fuzzer. */
struct gw_config *gw_config_load_buffer(const char *name, const void *data, size_t len,
                                        struct tw_err *err);

/* Build a one-service config from flags. argv[0] is the command name and is skipped, as in a
 * CLI handler; every other argument must be a config key as a flag: `--listen ADDR`,
 * `--listen=ADDR`, repeatable ones repeated (`--allow cn:a --allow cn:b`). On/off keys may be
 * given bare (`--ocsp` = `--ocsp on`). Global keys (`--workers`, `--metrics`, ...) go to
 * [global], the rest to one service named "default". The caller strips its own options
 * (`--check`, `--config`, `--help`) first. Errors are TW_ERR_USAGE naming the flag. */
struct gw_config *gw_config_from_args(int argc, char **argv, struct tw_err *err);

/* 1 if `arg` (e.g. "--listen" or "--listen=x") names a config flag, else 0. Lets the CLI tell
 * its own options from config flags. */
int gw_config_is_flag(const char *arg);

/* Print every flag with its value syntax and one-line meaning, from the key table. */
void gw_config_usage(FILE *out);

/* Every key as a flag ("--listen"), one per line, for --list-flags. */
void gw_config_list_flags(FILE *out);

void gw_config_free(struct gw_config *cfg);

/* ------------------------------------------------------------------------------------------ */
/* --check and explain                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Deep checks for `twoway gateway --check`: every cert/key/CA/CRL file exists and parses,
 * certificates (server, backend client, every client CA) are valid now, keys are unencrypted,
 * not group/world-readable (fs_check_key_perms) and match their certificates, CRL files (PEM
 * or DER) are signed by a CA in client-ca, ticket-key-file is private and a multiple of 80
 * bytes, and OpenSSL accepts ciphers/ciphersuites/groups. CRL URLs are not fetched. Stops at
 * the first problem: TW_ERR_IO or TW_ERR_CONFIG, "FILE: [service web] key = "path": why" (or
 * "--key "path": why" for a config built from flags). */
int gw_config_check(const struct gw_config *cfg, struct tw_err *err) TW_MUST_CHECK;

/* Hand pin-file and pkcs11-module to the key store (keystore_set_pin_file/_module) before any
 * key is loaded; done by gw_config_check, the tunnel's check and every generation's build. */
int gw_config_apply_keystore(const struct gw_config *cfg, struct tw_err *err) TW_MUST_CHECK;

/* Human summary: global settings, then per service "listen -> backend", mode, certificate,
 * client CA, revocation, policy, forwarding, SNI names, backend TLS, timeouts. */
void gw_config_explain(const struct gw_config *cfg, FILE *out);

/* Text names for logs and explain ("http", "rfc9440", "tls"). Never NULL. */
const char *gw_mode_name(enum gw_mode m);
const char *gw_forward_name(enum gw_forward f);
const char *gw_backend_kind_name(enum gw_backend_kind k);

/* Reload: a running gateway keeps its worker threads, metrics listener, access-log file, log
 * level and in-memory ticket-key rotation, so a reloaded config that changes `workers`,
 * `metrics`, `access-log`, `log-level` or `ticket-rotate` cannot take full effect. Returns 1
 * and writes the first such key's name to what (cap bytes) when old and new differ there (the
 * core logs "KEY changed: restart to apply" and swaps the rest in), 0 otherwise. Listen
 * address changes are the core's to judge (gw_gen_same_listens). */
int gw_config_needs_restart(const struct gw_config *old_cfg, const struct gw_config *new_cfg,
                            char *what, size_t cap);

#endif
