/* twoway tunnel: the client side of two-way TLS, on the gateway engine. A tunnel accepts
 * plaintext on a local address and connects out to its target with mTLS: it verifies the
 * server (chain against `ca`, name against the SANs, never the CN) and presents its client
 * certificate. Workers, relay, timeouts, limits, access log, metrics and reload are the
 * gateway's (gateway.h): a changed cert/key/CA file is picked up without a restart, so
 * `twoway renew --daemon` and the tunnel work together.
 *
 * Configuration: `[tunnel NAME]` sections of the same INI file as the gateway's services (the
 * gateway skips them; the tunnel skips `[service NAME]`), plus `[global]`, or flags for one
 * tunnel:
 *
 *   [tunnel api]
 *   listen      = 127.0.0.1:8080     ; plaintext, local
 *   target      = api.example.com:8443
 *   cert        = alice.chain.pem    ; client certificate (+ chain)
 *   key         = alice.key
 *   ca          = chain.pem          ; CAs trusted for the target's certificate
 *   server-name = api.example.com    ; default: the target's host
 *
 * Also per tunnel (same meaning and syntax as the gateway's keys): idle-timeout,
 * backend-connect-timeout (covers TCP connect and the TLS handshake), max-lifetime,
 * max-connections, buffer-size, tls-min, tls-max, ciphers, ciphersuites, groups. [global]:
 * workers, metrics, access-log, log-level, max-connections, drain-timeout, user, defaults for
 * the per-tunnel keys above. */
#ifndef TW_GATEWAY_TUNNEL_H
#define TW_GATEWAY_TUNNEL_H

#include <stddef.h>
#include <stdio.h>

#include "gateway/config.h"
#include "gateway/gateway.h"
#include "util/err.h"

#define GW_TUNNELS_MAX 64u /* [tunnel] sections in one file */

/* Load the tunnels of src (config_path: the INI file; else argc/argv flags, argv[0] skipped)
 * into a gateway config: one TCP-mode service per tunnel with a plaintext listener and a
 * tls:// backend carrying the client certificate. Suitable as gw_source.load. Errors name the
 * file and line (TW_ERR_CONFIG, TW_ERR_IO when unreadable) or the flag (TW_ERR_USAGE). */
struct gw_config *gw_tunnel_config_load(const struct gw_source *src, struct tw_err *err);

/* The same from memory, for tests and the fuzzer; name stands for the file in messages. */
struct gw_config *gw_tunnel_config_load_buffer(const char *name, const void *data, size_t len,
                                               struct tw_err *err);

/* --check: every tunnel's certificate, key (permissions, match) and CA file load. */
int gw_tunnel_config_check(const struct gw_config *cfg, struct tw_err *err) TW_MUST_CHECK;

/* One line per tunnel: "tunnel api: 127.0.0.1:8080 -> tls://api:8443 as CN=...". */
void gw_tunnel_config_explain(const struct gw_config *cfg, FILE *out);

/* The keys, for --help. */
void gw_tunnel_usage(FILE *out);

/* Every key as a flag ("--target"), one per line, for --list-flags. */
void gw_tunnel_list_flags(FILE *out);

#endif
