/* Phase 1 of loading: raw `key = value` entries per section, and the error messages that
 * name where a value came from (file:line or --flag). */
#include "gateway/config_priv.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cfg_raw_init(struct cfg_raw *raw, const char *source, bool flags)
{
    memset(raw, 0, sizeof(*raw));
    raw->path = source;
    /* Long paths keep their end, where the file name is, so messages keep their reason. */
    size_t len = strlen(source), cap = sizeof(raw->source_buf);
    if (len < cap)
        snprintf(raw->source_buf, cap, "%s", source);
    else
        snprintf(raw->source_buf, cap, "...%s", source + len - (cap - 4));
    raw->source = raw->source_buf;
    raw->flags = flags;
    raw->global.kind = CFG_SEC_GLOBAL;
}

static void section_free(struct cfg_section *sec)
{
    for (size_t i = 0; i < sec->n; i++)
        free(sec->entries[i].value);
    free(sec->entries);
    free(sec->name);
}

void cfg_raw_free(struct cfg_raw *raw)
{
    if (raw == NULL)
        return;
    section_free(&raw->global);
    for (size_t i = 0; i < raw->n_services; i++)
        section_free(&raw->services[i]);
    free(raw->services);
    memset(raw, 0, sizeof(*raw));
}

const char *cfg_quote(const char *value, char *out, size_t cap)
{
    /* Show at most 60 bytes, fewer when cap is smaller, always ending a cut with "...". */
    size_t shown = cap > 64 ? 60 : (cap > 8 ? cap - 4 : 0), o = 0;
    if (cap == 0)
        return out;
    for (size_t i = 0; value[i] != '\0' && o + 1 < cap; i++) {
        if (i == shown) {
            snprintf(out + o, cap - o, "...");
            return out;
        }
        unsigned char ch = (unsigned char)value[i];
        out[o++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
    }
    out[o] = '\0';
    return out;
}

/* Room left for a quoted value once everything else of a message is counted, so the reason
 * at its end always fits in TW_ERR_MSG_MAX. */
size_t cfg_quote_room(size_t used)
{
    size_t room = used + 8 < TW_ERR_MSG_MAX ? TW_ERR_MSG_MAX - used - 8 : 0;
    room = room < 12 ? 12 : room;
    return room > 80 ? 80 : room;
}

const char *cfg_keyref(const struct cfg_raw *raw, const char *name)
{
    static __thread char bufs[4][64];
    static __thread unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s%s", raw->flags ? "--" : "", name);
    return b;
}

/* "[global]" or "[service web]", with a quoted-safe name. */
static const char *section_label(const struct cfg_section *sec, char *out, size_t cap)
{
    char q[80];
    if (sec->kind == CFG_SEC_GLOBAL)
        snprintf(out, cap, "[global]");
    else
        snprintf(out, cap, "[%s %s]", sec->kind == CFG_SEC_SERVICE ? "service" : "tunnel",
                 cfg_quote(sec->name != NULL ? sec->name : "", q, sizeof(q)));
    return out;
}

int cfg_err_entry(const struct cfg_raw *raw, const struct cfg_section *sec,
                  const struct cfg_entry *e, const char *why, struct tw_err *err)
{
    char q[80], label[96];
    const char *name = cfg_keys[e->key].name;
    section_label(sec, label, sizeof(label));
    size_t used =
        strlen(name) + strlen(why) + (raw->flags ? 0 : strlen(raw->source) + strlen(label) + 16);
    cfg_quote(e->value, q, cfg_quote_room(used));
    if (raw->flags)
        return tw_err_set(err, TW_ERR_USAGE, "--%s \"%s\": %s", name, q, why);
    return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: %s %s = \"%s\": %s", raw->source, e->line, label,
                      name, q, why);
}

int cfg_err_section(const struct cfg_raw *raw, const struct cfg_section *sec, struct tw_err *err,
                    const char *fmt, ...)
{
    char msg[TW_ERR_MSG_MAX], label[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (raw->flags)
        return tw_err_set(err, TW_ERR_USAGE, "%s", msg);
    return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: %s: %s", raw->source, sec->line,
                      section_label(sec, label, sizeof(label)), msg);
}

/* Service names appear in logs, metrics labels and JSON: keep them plain. */
static int check_service_name(const char *name, char *why, size_t cap)
{
    size_t len = strlen(name);
    if (len == 0) {
        snprintf(why, cap, "a service needs a name: [service NAME]");
        return -1;
    }
    if (len > GW_CONFIG_NAME_MAX) {
        snprintf(why, cap, "service name longer than %u characters", GW_CONFIG_NAME_MAX);
        return -1;
    }
    for (const char *p = name; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr("_.-", *p) == NULL) {
            snprintf(why, cap, "service names may contain only letters, digits, '_', '.', '-'");
            return -1;
        }
    }
    return 0;
}

int cfg_raw_add_service(struct cfg_raw *raw, const char *name, int line, struct tw_err *err)
{
    char why[160], q[80];
    if (check_service_name(name, why, sizeof(why)) != 0)
        return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: [service \"%s\"]: %s", raw->source, line,
                          cfg_quote(name, q, sizeof(q)), why);
    for (size_t i = 0; i < raw->n_services; i++)
        if (strcmp(raw->services[i].name, name) == 0)
            return tw_err_set(err, TW_ERR_CONFIG,
                              "%s:%d: [service %s]: duplicate service name (first at line %d)",
                              raw->source, line, name, raw->services[i].line);
    if (raw->n_services >= GW_CONFIG_SERVICES_MAX)
        return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: [service %s]: more than %u services",
                          raw->source, line, name, GW_CONFIG_SERVICES_MAX);
    struct cfg_section *grown =
        realloc(raw->services, (raw->n_services + 1) * sizeof(*raw->services));
    if (grown == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    raw->services = grown;
    struct cfg_section *sec = &raw->services[raw->n_services];
    memset(sec, 0, sizeof(*sec));
    sec->kind = CFG_SEC_SERVICE;
    sec->line = line;
    if ((sec->name = strdup(name)) == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    raw->n_services++;
    return 0;
}

/* The error for a key that does not exist or sits in the wrong section. */
static int key_error(const struct cfg_raw *raw, const struct cfg_section *sec, const char *key,
                     int line, const char *why, struct tw_err *err)
{
    char label[96], q[80];
    cfg_quote(key, q, sizeof(q));
    if (raw->flags)
        return tw_err_set(err, TW_ERR_USAGE, "--%s: %s", q, why);
    return tw_err_set(err, TW_ERR_CONFIG, "%s:%d: %s %s: %s", raw->source, line,
                      section_label(sec, label, sizeof(label)), q, why);
}

int cfg_raw_add_entry(struct cfg_raw *raw, struct cfg_section *sec, const char *key,
                      const char *value, int line, struct tw_err *err)
{
    char why[160];
    int k = cfg_key_find(key);
    if (k < 0) {
        const char *near = cfg_key_suggest(key);
        if (near != NULL)
            snprintf(why, sizeof(why), "unknown %s (did you mean %s?)", raw->flags ? "flag" : "key",
                     cfg_keyref(raw, near));
        else
            snprintf(why, sizeof(why), "unknown %s", raw->flags ? "flag" : "key");
        return key_error(raw, sec, key, line, why, err);
    }
    const struct cfg_key *ck = &cfg_keys[k];
    if (sec->kind == CFG_SEC_GLOBAL && ck->scope == CFG_SERVICE)
        return key_error(raw, sec, key, line, "belongs in a [service NAME] section", err);
    if (sec->kind == CFG_SEC_SERVICE && ck->scope == CFG_GLOBAL)
        return key_error(raw, sec, key, line, "belongs in the [global] section", err);

    size_t count = 0;
    const struct cfg_entry *first = NULL;
    for (size_t i = 0; i < sec->n; i++) {
        if (sec->entries[i].key == k) {
            first = first != NULL ? first : &sec->entries[i];
            count++;
        }
    }
    if (!ck->repeatable && first != NULL) {
        if (raw->flags)
            snprintf(why, sizeof(why), "given twice (only one allowed)");
        else
            snprintf(why, sizeof(why), "set twice (first at line %d)", first->line);
        return key_error(raw, sec, key, line, why, err);
    }
    if (ck->repeatable && count >= ck->max_count) {
        snprintf(why, sizeof(why), "more than %zu entries", ck->max_count);
        return key_error(raw, sec, key, line, why, err);
    }
    if (value[0] == '\0')
        return key_error(raw, sec, key, line, "empty value", err);
    if (sec->n == sec->cap) {
        size_t cap = sec->cap ? sec->cap * 2 : 16;
        struct cfg_entry *grown = realloc(sec->entries, cap * sizeof(*grown));
        if (grown == NULL)
            return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        sec->entries = grown;
        sec->cap = cap;
    }
    char *copy = strdup(value);
    if (copy == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    sec->entries[sec->n++] = (struct cfg_entry){.key = k, .value = copy, .line = line};
    return 0;
}
