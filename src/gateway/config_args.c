/* Flags for the one-service case: `--KEY VALUE` for every key of the table, recorded as raw
 * entries exactly like an INI file's and built by the same code. */
#include "gateway/config_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Words that may follow a bare on/off flag as its value. */
static bool is_bool_word(const char *s)
{
    bool ignored;
    char why[8];
    return s != NULL && cfg_parse_bool(s, &ignored, why, sizeof(why)) == 0;
}

/* Split "--name=value" / "--name": name into out (without dashes), value pointer or NULL. */
static int flag_name(const char *arg, char *out, size_t cap, const char **value)
{
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return -1;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (len == 0 || len >= cap)
        return -1;
    memcpy(out, name, len);
    out[len] = '\0';
    *value = eq != NULL ? eq + 1 : NULL;
    return 0;
}

int gw_config_is_flag(const char *arg)
{
    char name[64];
    const char *value;
    return arg != NULL && flag_name(arg, name, sizeof(name), &value) == 0 &&
           cfg_key_find(name) >= 0;
}

static int parse_args(struct cfg_raw *raw, int argc, char **argv, struct tw_err *err)
{
    char q[80];
    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *value;
        if (flag_name(argv[i], name, sizeof(name), &value) != 0)
            return tw_err_set(err, TW_ERR_USAGE,
                              "unexpected argument \"%s\": config values "
                              "are given as --KEY VALUE",
                              cfg_quote(argv[i], q, sizeof(q)));
        int k = cfg_key_find(name);
        if (k >= 0 && value == NULL) {
            if (cfg_keys[k].is_bool && (i + 1 >= argc || !is_bool_word(argv[i + 1])))
                value = "on";
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return tw_err_set(err, TW_ERR_USAGE, "--%s needs a value (%s)", name,
                                  cfg_keys[k].syntax);
        }
        /* Global keys (and max-connections, whose process-wide meaning is the useful one
         * here) go to [global]; everything else to the one service. */
        struct cfg_section *sec = &raw->services[0];
        if (k >= 0 && (cfg_keys[k].scope == CFG_GLOBAL || cfg_keys[k].scope == CFG_EACH))
            sec = &raw->global;
        TW_GUARD(cfg_raw_add_entry(raw, sec, name, value != NULL ? value : "", 0, err));
    }
    return 0;
}

struct gw_config *gw_config_from_args(int argc, char **argv, struct tw_err *err)
{
    struct cfg_raw raw;
    struct gw_config *cfg = NULL;
    cfg_raw_init(&raw, "command line", true);
    if (cfg_raw_add_service(&raw, "default", 0, err) == 0 && parse_args(&raw, argc, argv, err) == 0)
        cfg = cfg_build(&raw, err);
    cfg_raw_free(&raw);
    return cfg;
}

void gw_config_usage(FILE *out)
{
    for (size_t i = 0; i < cfg_nkeys; i++) {
        const struct cfg_key *k = &cfg_keys[i];
        char flag[96];
        snprintf(flag, sizeof(flag), "--%s %s", k->name, k->syntax);
        fprintf(out, "  %-44s %s%s (default: %s)\n", flag, k->help,
                k->repeatable ? "; repeatable" : "", k->deflt);
    }
}

void gw_config_list_flags(FILE *out)
{
    for (size_t i = 0; i < cfg_nkeys; i++)
        fprintf(out, "--%s\n", cfg_keys[i].name);
}
