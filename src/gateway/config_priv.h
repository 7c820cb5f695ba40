/* Private to the config_*.c files: the key table and the two-phase loader.
 *
 * Phase 1 (config_ini.c for files, config_args.c for flags) records raw `key = value` entries
 * per section, checking only that sections and keys exist, sit in the right section and are
 * not repeated. Phase 2 (config_build.c) applies them through the key table's parsers to
 * fresh structs with the defaults, [global] entries first for keys a service may inherit,
 * then validates each service and the set of services. One code path serves files and flags,
 * so `--listen x` and `listen = x` can never drift apart. */
#ifndef TW_GATEWAY_CONFIG_PRIV_H
#define TW_GATEWAY_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/config.h"
#include "util/err.h"

/* Where a key may appear. */
enum cfg_scope {
    CFG_GLOBAL,  /* [global] only */
    CFG_SERVICE, /* [service NAME] only */
    CFG_BOTH,    /* a service key whose [global] value is every service's default */
    CFG_EACH,    /* both, with separate meanings (max-connections: process vs service) */
};

struct cfg_key;

/* Parse value into the struct at obj (struct gw_global * or struct gw_service *). On failure
 * write the reason (no location: the caller adds it) to why and return -1. */
typedef int (*cfg_parse_fn)(const struct cfg_key *k, void *obj, const char *value, char *why,
                            size_t cap);

struct cfg_key {
    const char *name;
    enum cfg_scope scope;
    bool repeatable;
    bool is_bool;              /* on|off: a bare flag means on */
    cfg_parse_fn parse;        /* for a service (or the only target) */
    cfg_parse_fn parse_global; /* CFG_EACH: the [global] meaning */
    size_t off;                /* offset of the field in the target struct */
    size_t max_count;          /* repeatable: most entries per section */
    long long min, max;        /* numeric range where it applies */
    const char *syntax;        /* "ADDR:PORT" */
    const char *deflt;         /* default, as documented */
    const char *help;          /* one line */
};

/* The table, in documentation order. */
extern const struct cfg_key cfg_keys[];
extern const size_t cfg_nkeys;

/* Index of key name in cfg_keys, or -1. */
int cfg_key_find(const char *name);

/* The key name nearest to name (edit distance <= 2), or NULL. */
const char *cfg_key_suggest(const char *name);

/* The word of words[n] nearest to name (edit distance <= 2), or NULL. */
const char *cfg_word_suggest(const char *name, const char *const *words, size_t n);

/* ---- phase 1: raw entries ---------------------------------------------------------------- */

enum cfg_section_kind { CFG_SEC_GLOBAL, CFG_SEC_SERVICE, CFG_SEC_TUNNEL };

struct cfg_entry {
    int key;     /* index into cfg_keys */
    char *value; /* owned */
    int line;    /* file line; 0 for a flag */
};

struct cfg_section {
    enum cfg_section_kind kind;
    char *name; /* service name; NULL for [global] */
    int line;   /* header line; 0 for flags */
    struct cfg_entry *entries;
    size_t n, cap;
};

struct cfg_raw {
    const char *path;   /* file name as given (NULL-safe "command line" for flags) */
    const char *source; /* the same, shortened to its tail for messages: "...conf/twoway.conf" */
    char source_buf[96];
    bool flags;
    struct cfg_section global; /* always present, possibly empty */
    struct cfg_section *services;
    size_t n_services;
};

/* Start an empty raw config (global section present). */
void cfg_raw_init(struct cfg_raw *raw, const char *source, bool flags);
void cfg_raw_free(struct cfg_raw *raw);

/* Add a [service NAME] section. name is validated (characters, length, duplicates, count). */
int cfg_raw_add_service(struct cfg_raw *raw, const char *name, int line,
                        struct tw_err *err) TW_MUST_CHECK;

/* Record `key = value` in sec after checking the key exists, belongs in this kind of
 * section, and is not set twice (or too often, if repeatable). */
int cfg_raw_add_entry(struct cfg_raw *raw, struct cfg_section *sec, const char *key,
                      const char *value, int line, struct tw_err *err) TW_MUST_CHECK;

/* ---- phase 2 ------------------------------------------------------------------------------ */

/* Turn a raw config into the validated, immutable one. */
struct gw_config *cfg_build(const struct cfg_raw *raw, struct tw_err *err);

/* ---- messages ----------------------------------------------------------------------------- */

/* Copy value into out for quoting in a message: printable ASCII only (others as '?'),
 * truncated with "..." beyond 60 bytes. Returns out. */
const char *cfg_quote(const char *value, char *out, size_t cap);

/* A cap for cfg_quote (<= 80) leaving room for `used` other bytes of a message. */
size_t cfg_quote_room(size_t used);

/* Fill err for a bad entry: "FILE:LINE: [service web] listen = "x": why" or
 * "--listen "x": why". TW_ERR_CONFIG for files, TW_ERR_USAGE for flags. Returns -1. */
int cfg_err_entry(const struct cfg_raw *raw, const struct cfg_section *sec,
                  const struct cfg_entry *e, const char *why, struct tw_err *err);

/* Fill err for a problem of a whole section: "FILE:LINE: [service web]: msg" or "msg" for
 * flags. In fmt, write key names with %s and pass cfg_keyref(raw, "backend") so flags read
 * "--backend". Returns -1. */
int cfg_err_section(const struct cfg_raw *raw, const struct cfg_section *sec, struct tw_err *err,
                    const char *fmt, ...) TW_PRINTF(4, 5);

/* "--name" for flags, "name" for files (static buffer per call site is NOT used: rotating
 * buffers, safe for up to 4 uses in one message). */
const char *cfg_keyref(const struct cfg_raw *raw, const char *name);

/* ---- value parsers used by the table (config_value.c) ---------------------------------- */

int cfg_parse_addr(const char *text, struct gw_addr *out, char *why, size_t cap);
int cfg_parse_backend(const char *text, struct gw_backend *out, char *why, size_t cap);
int cfg_check_allow_rule(const char *text, char *why, size_t cap);
int cfg_check_server_name(const char *text, char *why, size_t cap);
int cfg_check_path(const char *text, char *why, size_t cap);
int cfg_check_crl(const char *text, bool *is_url, char *why, size_t cap);
int cfg_parse_bool(const char *text, bool *out, char *why, size_t cap);
int cfg_parse_int(const char *text, long long min, long long max, long long *out, char *why,
                  size_t cap);
int cfg_parse_size(const char *text, long long min, long long max, long long *out, char *why,
                   size_t cap);
int cfg_parse_duration(const char *text, long long min, long long max, int64_t *out, char *why,
                       size_t cap);

/* Free what a gw_service / gw_global owns (not the struct itself). */
void cfg_service_clear(struct gw_service *s);
void cfg_global_clear(struct gw_global *g);

/* Fill the DNS SANs of a PEM certificate file into names. 0 ok, -1 with why. */
int cfg_cert_dns_names(const char *path, char ***names, size_t *n, char *why, size_t cap);

#endif
