/* The table-driven flag parser (see flags.h). */
#include "cli/flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/clock.h"

static const struct flag builtin[] = {
    {.name = "help", .kind = FLAG_HELP, .short_name = 'h'},
    {.kind = FLAG_END},
};

/* A row found by name, with its field offset from the target (groups add theirs). */
struct hit {
    const struct flag *f;
    size_t off;
    int count; /* rows matched (prefix search: more than one is ambiguous) */
};

/* How a token names a row: the whole name, a prefix of it, or the short letter. */
struct probe {
    const char *name;
    size_t len;
    bool prefix;
    char letter;
};

static bool matches(const struct flag *f, const struct probe *p)
{
    if (p->letter != 0)
        return f->short_name == p->letter;
    if (strncmp(f->name, p->name, p->len) != 0)
        return false;
    return p->prefix || f->name[p->len] == '\0';
}

static void search(const struct flag *t, size_t base, const struct probe *p, struct hit *h)
{
    for (; t->kind != FLAG_END; t++) {
        if (t->kind == FLAG_GROUP) {
            search(t->group, base + t->off, p, h);
        } else if (matches(t, p)) {
            if (h->count++ == 0) {
                h->f = t;
                h->off = base + t->off;
            }
        }
    }
}

/* Exact name first; else a unique prefix, as getopt_long accepted. */
static struct hit find(const struct flag_set *set, struct probe p)
{
    struct hit h = {NULL, 0, 0};
    p.prefix = false;
    search(set->flags, 0, &p, &h);
    search(builtin, 0, &p, &h);
    if (h.count > 0 || p.letter != 0)
        return h;
    p.prefix = true;
    search(set->flags, 0, &p, &h);
    search(builtin, 0, &p, &h);
    return h;
}

static bool takes_value(const struct flag *f)
{
    return f->kind != FLAG_BOOL && f->kind != FLAG_HELP;
}

static int bad_value(const struct flag_set *set, const struct flag *f, const char *value,
                     const char *fallback)
{
    return cli_usage_error(set->cmd, "--%s '%s': %s", f->name, value,
                           f->bad != NULL ? f->bad : fallback);
}

static int set_int(const struct flag_set *set, const struct flag *f, const char *value, int *out)
{
    char *end = NULL;
    long long v = strtoll(value, &end, 10);
    if (value[0] == '\0' || end == NULL || *end != '\0' || v < f->min || v > f->max)
        return cli_usage_error(set->cmd, "--%s '%s': %s %lld to %lld", f->name, value,
                               f->bad != NULL ? f->bad : "expected a whole number from", f->min,
                               f->max);
    *out = (int)v;
    return FLAGS_GO_ON;
}

static int set_duration(const struct flag_set *set, const struct flag *f, const char *value,
                        int64_t *out)
{
    int64_t v = 0;
    if (clock_duration_parse(value, &v, NULL) != 0 || v < f->min || (f->max > 0 && v > f->max))
        return bad_value(set, f, value, "expected a duration (90s, 15m, 12h, 7d)");
    *out = v;
    return FLAGS_GO_ON;
}

/* "use a, b or c", from the choices themselves. */
static int set_choice(const struct flag_set *set, const struct flag *f, const char *value, int *out)
{
    char names[256] = "use ";
    size_t n = 0;
    for (const struct flag_choice *c = f->choices; c->name != NULL; c++, n++)
        if (strcmp(c->name, value) == 0)
            return (*out = c->value, FLAGS_GO_ON);
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof(names) - used, "%s%s",
                 i == 0       ? ""
                 : i == n - 1 ? " or "
                              : ", ",
                 f->choices[i].name);
    }
    return bad_value(set, f, value, names);
}

static int apply(const struct flag_set *set, const struct flag *f, void *field, const char *value)
{
    struct tw_err err;
    switch (f->kind) {
    case FLAG_HELP:
        fputs(set->usage, stdout);
        return 0;
    case FLAG_BOOL:
        *(bool *)field = true;
        return FLAGS_GO_ON;
    case FLAG_STRING:
        *(const char **)field = value;
        return FLAGS_GO_ON;
    case FLAG_INT:
        return set_int(set, f, value, field);
    case FLAG_DURATION:
        return set_duration(set, f, value, field);
    case FLAG_CHOICE:
        return set_choice(set, f, value, field);
    case FLAG_CALL:
        tw_err_clear(&err);
        if (f->call(field, value, &err) != 0)
            return cli_usage_error(set->cmd, "%s", err.msg);
        return FLAGS_GO_ON;
    default:
        return cli_usage_error(set->cmd, "--%s: not a flag", f->name);
    }
}

/* "--name", "--name=value", "--name value". */
static int long_flag(const struct flag_set *set, void *target, int argc, char **argv, int *i)
{
    const char *token = argv[*i], *name = token + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    struct hit h = find(set, (struct probe){name, len, false, 0});
    if (h.count != 1 || len == 0) /* none, or an ambiguous prefix */
        return cli_usage_error(set->cmd, "unknown option %s", token);
    const char *value = NULL;
    if (!takes_value(h.f)) {
        if (eq != NULL)
            return cli_usage_error(set->cmd, "option --%s takes no value", h.f->name);
    } else if (eq != NULL) {
        value = eq + 1;
    } else if (*i + 1 < argc) {
        value = argv[++*i];
    } else {
        return cli_usage_error(set->cmd, "option %s needs a value", token);
    }
    return apply(set, h.f, (char *)target + h.off, value);
}

/* "-h", "-abc" (letters that take no value), "-ovalue", "-o value". */
static int short_flags(const struct flag_set *set, void *target, int argc, char **argv, int *i)
{
    const char *token = argv[*i];
    for (const char *c = token + 1; *c != '\0'; c++) {
        struct hit h = find(set, (struct probe){NULL, 0, false, *c});
        if (h.count == 0)
            return cli_usage_error(set->cmd, "unknown option -%c", *c);
        const char *value = NULL;
        if (takes_value(h.f)) {
            if (c[1] == '\0' && *i + 1 >= argc)
                return cli_usage_error(set->cmd, "option %s needs a value", token);
            value = c[1] != '\0' ? c + 1 : argv[++*i];
        }
        int rc = apply(set, h.f, (char *)target + h.off, value);
        if (rc != FLAGS_GO_ON || value != NULL)
            return rc;
    }
    return FLAGS_GO_ON;
}

static void list(const struct flag *t)
{
    for (; t->kind != FLAG_END; t++) {
        if (t->kind == FLAG_GROUP)
            list(t->group);
        else
            printf("--%s\n", t->name);
    }
}

int flags_parse(const struct flag_set *set, void *target, int argc, char **argv, int *nargs)
{
    if (argc == 2 && strcmp(argv[1], FLAGS_LIST) == 0) {
        list(set->flags);
        list(builtin);
        return 0;
    }
    int n = 0;
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] == '\0') {
            argv[1 + n++] = a; /* n < i: this slot was read already */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        int rc = a[1] == '-' ? long_flag(set, target, argc, argv, &i)
                             : short_flags(set, target, argc, argv, &i);
        if (rc != FLAGS_GO_ON)
            return rc;
    }
    if (set->nargs != FLAGS_ANY_ARGS && n != set->nargs) {
        if (set->nargs_error != NULL)
            return cli_usage_error(set->cmd, "%s", set->nargs_error);
        if (n > set->nargs)
            return cli_usage_error(set->cmd, "unexpected argument '%s'", argv[1 + set->nargs]);
        return cli_usage_error(set->cmd, "expected %d argument%s", set->nargs,
                               set->nargs == 1 ? "" : "s");
    }
    if (nargs != NULL)
        *nargs = n;
    return FLAGS_GO_ON;
}

int flags_host_port(const char *cmd, const char *text, char *host, size_t host_cap, char *port,
                    size_t port_cap)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon[1] == '\0')
        return cli_usage_error(cmd, "'%s': give HOST:PORT", text);
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']')
        h++, hlen -= 2;
    char *end = NULL;
    long n = strtol(colon + 1, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535)
        return cli_usage_error(cmd, "'%s': port must be 1-65535", text);
    if (hlen == 0 || hlen >= host_cap)
        return cli_usage_error(cmd, "'%s': host is empty or too long", text);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, port_cap, "%ld", n);
    return FLAGS_GO_ON;
}
