/* ca/ca.conf: the settings `ca init` chose, in INI form so a person can read them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "pki/internal.h"
#include "util/fs.h"

int conf_check_base_url(const char *url, struct tw_err *err)
{
    size_t len = strlen(url);
    TW_ENSURE(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0, err,
              TW_ERR_USAGE, "--base-url %s: must start with http:// or https://", url);
    TW_ENSURE(len < PKI_URL_MAX - 16, err, TW_ERR_USAGE, "--base-url: longer than %d bytes",
              PKI_URL_MAX - 16);
    const char *host = strstr(url, "://") + 3;
    TW_ENSURE(*host != '\0' && *host != '/', err, TW_ERR_USAGE, "--base-url %s: no host", url);
    for (const char *p = url; *p != '\0'; p++)
        TW_ENSURE(isgraph((unsigned char)*p) && *p != ',' && *p != ';' && *p != '"', err,
                  TW_ERR_USAGE, "--base-url %s: spaces, commas, quotes and ';' are not allowed",
                  url);
    TW_ENSURE(url[len - 1] != '/', err, TW_ERR_USAGE,
              "--base-url %s: leave out the trailing '/' (twoway adds /crl and /ocsp)", url);
    return 0;
}

int conf_write(const char *path, const struct pki_ca_conf *conf, struct tw_err *err)
{
    char text[PKI_CONF_MAX];
    int n = snprintf(text, sizeof(text),
                     "; Written by `twoway ca init`. Read by every `twoway ca` command.\n"
                     "[ca]\n"
                     "name = %s\n"
                     "key = %s\n"
                     "base-url = %s\n"
                     "encrypted = %s\n"
                     "crl-days = %d\n",
                     conf->name, conf->key, conf->base_url, conf->encrypted ? "yes" : "no",
                     conf->crl_days);
    if (n > 0 && (size_t)n < sizeof(text) && conf->store[0] != '\0')
        n += snprintf(text + n, sizeof(text) - (size_t)n, "store = %s\n", conf->store);
    if (n > 0 && (size_t)n < sizeof(text) && conf->http_listen[0] != '\0')
        n += snprintf(text + n, sizeof(text) - (size_t)n, "http-listen = %s\n", conf->http_listen);
    TW_ENSURE(n > 0 && (size_t)n < sizeof(text), err, TW_ERR_INTERNAL, "ca.conf too long");
    return fs_write_atomic(path, text, (size_t)n, 0600, err);
}

struct conf_parse {
    struct pki_ca_conf *conf;
    const char *path;
    struct tw_err *err;
    int failed;
};

static int set_string(char *out, size_t cap, const char *value)
{
    return snprintf(out, cap, "%s", value) < (int)cap;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct conf_parse *cp = user;
    struct pki_ca_conf *c = cp->conf;
    int ok;
    if (strcmp(section, "ca") != 0)
        ok = 0;
    else if (strcmp(name, "name") == 0)
        ok = set_string(c->name, sizeof(c->name), value);
    else if (strcmp(name, "key") == 0)
        ok = set_string(c->key, sizeof(c->key), value);
    else if (strcmp(name, "base-url") == 0)
        ok = set_string(c->base_url, sizeof(c->base_url), value) &&
             (value[0] == '\0' || conf_check_base_url(value, NULL) == 0);
    else if (strcmp(name, "encrypted") == 0)
        ok = (c->encrypted = strcmp(value, "yes") == 0) || strcmp(value, "no") == 0;
    else if (strcmp(name, "crl-days") == 0) {
        char *end;
        long days = strtol(value, &end, 10);
        ok = *end == '\0' && days >= 1 && days <= 3650;
        c->crl_days = (int)days;
    } else if (strcmp(name, "store") == 0)
        ok = set_string(c->store, sizeof(c->store), value);
    else if (strcmp(name, "http-listen") == 0) /* checked by `ca serve`, which uses it */
        ok = value[0] != '\0' && set_string(c->http_listen, sizeof(c->http_listen), value);
    else
        ok = 0;
    if (!ok && !cp->failed) {
        cp->failed = 1;
        tw_err_set(cp->err, TW_ERR_CONFIG, "%s: bad or unknown setting [%s] %s = %s", cp->path,
                   section, name, value);
    }
    return ok;
}

int pki_store_uri(const char *dir, const char *conf_store, char *out, size_t cap, int *is_default,
                  struct tw_err *err)
{
    const char *env = getenv("TWOWAY_STORE");
    const char *uri = env != NULL && env[0] != '\0' ? env : conf_store;
    *is_default = uri == NULL || uri[0] == '\0';
    if (*is_default)
        return fs_path_join(out, cap, dir, PKI_FILE_DB, err);
    TW_ENSURE(strlen(uri) < cap, err, TW_ERR_USAGE, "store URI longer than %zu bytes", cap - 1);
    snprintf(out, cap, "%s", uri);
    return 0;
}

int conf_read(const char *path, struct pki_ca_conf *conf, struct tw_err *err)
{
    char *text = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(path, PKI_CONF_MAX, &text, &len, err));
    memset(conf, 0, sizeof(*conf));
    conf->crl_days = PKI_CRL_DAYS_DEFAULT;
    struct conf_parse cp = {conf, path, err, 0};
    int rc = ini_parse_string(text, handler, &cp);
    free(text);
    if (cp.failed)
        return -1;
    TW_ENSURE(rc == 0, err, TW_ERR_CONFIG, "%s: syntax error on line %d", path, rc);
    TW_ENSURE(conf->name[0] != '\0', err, TW_ERR_CONFIG, "%s: no name = ...", path);
    return 0;
}
