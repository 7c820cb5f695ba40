/* Allow-policy: typed rules matched against a certificate identity. The rule types are a table
 * of matchers; each names the identity field it reads and how values compare. */
#include <ctype.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlsx/internal.h"

enum fold {
    FOLD_NONE, /* exact bytes: cn, o, ou, uri */
    FOLD_CASE, /* case-insensitive: dns (RFC 4343), email */
    FOLD_HEX,  /* hex digits: case-insensitive, colons ignored: serial, sha256 */
};

/* A single value (serial, sha256) or a list (CN, SANs): a getter returns one list view. */
struct values {
    size_t n;
    const char *const *v;
    const char *one; /* for single values */
};

typedef struct values (*field_fn)(const struct tlsx_identity *id);

static struct values of_list(const struct tlsx_strlist *l)
{
    return (struct values){.n = l->n, .v = (const char *const *)l->v};
}
static struct values f_cn(const struct tlsx_identity *id)
{
    return of_list(&id->cns);
}
static struct values f_o(const struct tlsx_identity *id)
{
    return of_list(&id->o);
}
static struct values f_ou(const struct tlsx_identity *id)
{
    return of_list(&id->ou);
}
static struct values f_dns(const struct tlsx_identity *id)
{
    return of_list(&id->dns);
}
static struct values f_email(const struct tlsx_identity *id)
{
    return of_list(&id->email);
}
static struct values f_uri(const struct tlsx_identity *id)
{
    return of_list(&id->uri);
}
static struct values f_serial(const struct tlsx_identity *id)
{
    return (struct values){.n = 1, .one = id->serial_hex};
}
static struct values f_sha256(const struct tlsx_identity *id)
{
    return (struct values){.n = 1, .one = id->sha256_hex};
}

static const struct matcher {
    const char *type;
    field_fn field;
    enum fold fold;
    size_t hex_len; /* exact hex length required for non-glob values, 0: any */
} matchers[] = {
    {"cn", f_cn, FOLD_NONE, 0},        {"ou", f_ou, FOLD_NONE, 0},
    {"o", f_o, FOLD_NONE, 0},          {"dns", f_dns, FOLD_CASE, 0},
    {"email", f_email, FOLD_CASE, 0},  {"uri", f_uri, FOLD_NONE, 0},
    {"serial", f_serial, FOLD_HEX, 0}, {"sha256", f_sha256, FOLD_HEX, 64},
};

#define NMATCHERS (sizeof(matchers) / sizeof(matchers[0]))
#define TYPES_HINT "use cn:, ou:, o:, dns:, email:, uri:, serial:, sha256:"

struct rule {
    const struct matcher *m;
    char *text;    /* the rule as written, for logs */
    char *pattern; /* fnmatch pattern: only '*' is special, hex normalised */
};

struct tlsx_policy {
    atomic_int refs;
    size_t n;
    struct rule *rules;
};

struct tlsx_policy *tlsx_policy_new(struct tw_err *err)
{
    struct tlsx_policy *p = calloc(1, sizeof(*p));
    TW_ENSURE_PTR(p != NULL, err, TW_ERR_INTERNAL, "out of memory");
    atomic_init(&p->refs, 1);
    return p;
}

/* Hex values compare as upper-case digits without colons. */
static void hex_normalise(const char *in, char *out)
{
    for (; *in != '\0'; in++)
        if (*in != ':')
            *out++ = (char)toupper((unsigned char)*in);
    *out = '\0';
}

/* Build an fnmatch pattern where only '*' is a wildcard: escape ? [ ] and backslash. */
static char *glob_pattern(const char *value, enum fold fold)
{
    size_t len = strlen(value);
    char *out = malloc(2 * len + 1);
    if (out == NULL)
        return NULL;
    char *norm = NULL;
    if (fold == FOLD_HEX) {
        norm = malloc(len + 1);
        if (norm == NULL) {
            free(out);
            return NULL;
        }
        hex_normalise(value, norm);
        value = norm;
    }
    char *o = out;
    for (const char *c = value; *c != '\0'; c++) {
        if (*c == '?' || *c == '[' || *c == ']' || *c == '\\')
            *o++ = '\\';
        *o++ = *c;
    }
    *o = '\0';
    free(norm);
    return out;
}

static int check_hex(const char *rule, const struct matcher *m, const char *value,
                     struct tw_err *err)
{
    size_t digits = 0;
    for (const char *c = value; *c != '\0'; c++) {
        TW_ENSURE(isxdigit((unsigned char)*c) || *c == ':' || *c == '*', err, TW_ERR_CONFIG,
                  "allow rule '%s': %s: expects hex digits (colons allowed), got '%c'", rule,
                  m->type, *c);
        digits += isxdigit((unsigned char)*c) != 0;
    }
    TW_ENSURE(m->hex_len == 0 || strchr(value, '*') != NULL || digits == m->hex_len, err,
              TW_ERR_CONFIG, "allow rule '%s': %s: expects %zu hex digits, got %zu", rule, m->type,
              m->hex_len, digits);
    return 0;
}

int tlsx_policy_add(struct tlsx_policy *p, const char *rule, struct tw_err *err)
{
    TW_ENSURE(rule != NULL && rule[0] != '\0', err, TW_ERR_CONFIG,
              "allow rule is empty; " TYPES_HINT);
    TW_ENSURE(strlen(rule) <= TLSX_MAX_RULE_LEN, err, TW_ERR_CONFIG,
              "allow rule '%.40s...': longer than %d characters", rule, TLSX_MAX_RULE_LEN);
    TW_ENSURE(p->n < TLSX_MAX_RULES, err, TW_ERR_CONFIG, "more than %d allow rules",
              TLSX_MAX_RULES);
    const char *colon = strchr(rule, ':');
    TW_ENSURE(colon != NULL, err, TW_ERR_CONFIG, "allow rule '%s': missing type; " TYPES_HINT,
              rule);
    size_t tlen = (size_t)(colon - rule);
    const struct matcher *m = NULL;
    for (size_t i = 0; i < NMATCHERS && m == NULL; i++)
        if (strlen(matchers[i].type) == tlen && strncasecmp(matchers[i].type, rule, tlen) == 0)
            m = &matchers[i];
    TW_ENSURE(m != NULL, err, TW_ERR_CONFIG, "allow rule '%s': unknown type '%.*s'; " TYPES_HINT,
              rule, (int)tlen, rule);
    const char *value = colon + 1;
    TW_ENSURE(value[0] != '\0', err, TW_ERR_CONFIG, "allow rule '%s': empty %s value", rule,
              m->type);
    if (m->fold == FOLD_HEX)
        TW_GUARD(check_hex(rule, m, value, err));

    struct rule *rules = realloc(p->rules, (p->n + 1) * sizeof(*rules));
    TW_ENSURE(rules != NULL, err, TW_ERR_INTERNAL, "out of memory");
    p->rules = rules;
    struct rule r = {.m = m, .text = strdup(rule), .pattern = glob_pattern(value, m->fold)};
    if (r.text == NULL || r.pattern == NULL) {
        free(r.text);
        free(r.pattern);
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    }
    p->rules[p->n++] = r;
    return 0;
}

int tlsx_policy_up_ref(struct tlsx_policy *p)
{
    atomic_fetch_add(&p->refs, 1);
    return 1;
}

void tlsx_policy_free(struct tlsx_policy *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) > 1)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->rules[i].text);
        free(p->rules[i].pattern);
    }
    free(p->rules);
    free(p);
}

size_t tlsx_policy_count(const struct tlsx_policy *p)
{
    return p != NULL ? p->n : 0;
}

static int match_one(const struct rule *r, const char *value)
{
    if (value == NULL)
        return 0;
    if (r->m->fold == FOLD_HEX) {
        char norm[160];
        if (strlen(value) >= sizeof(norm))
            return 0;
        hex_normalise(value, norm);
        return fnmatch(r->pattern, norm, 0) == 0;
    }
    return fnmatch(r->pattern, value, r->m->fold == FOLD_CASE ? FNM_CASEFOLD : 0) == 0;
}

static int rule_matches(const struct rule *r, const struct tlsx_identity *id)
{
    struct values vals = r->m->field(id);
    if (vals.one != NULL)
        return match_one(r, vals.one);
    for (size_t i = 0; i < vals.n; i++)
        if (match_one(r, vals.v[i]))
            return 1;
    return 0;
}

int tlsx_policy_check(const struct tlsx_policy *p, const struct tlsx_identity *id,
                      const char **matched_rule)
{
    if (matched_rule != NULL)
        *matched_rule = NULL;
    if (p == NULL || p->n == 0) {
        if (matched_rule != NULL)
            *matched_rule = "";
        return 1;
    }
    if (id == NULL)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        if (rule_matches(&p->rules[i], id)) {
            if (matched_rule != NULL)
                *matched_rule = p->rules[i].text;
            return 1;
        }
    }
    return 0;
}

char *tlsx_policy_render(const struct tlsx_policy *p, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    if (p == NULL || p->n == 0) {
        snprintf(out, cap, "(any)");
        return out;
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < p->n; i++) {
        const char *sep = i > 0 ? ", " : "";
        size_t need = strlen(sep) + strlen(p->rules[i].text);
        size_t reserve = i + 1 < p->n ? 4 : 1; /* room for "..." unless this is the last */
        if (used + need + reserve > cap) {
            if (used + 4 <= cap)
                snprintf(out + used, cap - used, "...");
            break;
        }
        used += (size_t)snprintf(out + used, cap - used, "%s%s", sep, p->rules[i].text);
    }
    return out;
}
