/* Reading the INI file with libinih. The system libinih calls its handler without line
 * numbers and sees no empty sections, so it reads through our line reader, which counts
 * lines, notices section headers (an empty `[service x]` is still a service), enforces the
 * line-length limit, and hands inih each line with indentation and comments removed: an
 * indented `key = value` is then an ordinary line, never an inih "continuation" of the
 * previous value, and comments never count against inih's line buffer. */
#include "gateway/config_priv.h"

#include <ctype.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fs.h"

enum { SEC_NONE = -1, SEC_GLOBAL_IDX = -2, SEC_TUNNEL_IDX = -3 };

struct ini_src {
    const char *data;
    size_t len, pos;
    int line;
    struct cfg_raw *raw;
    long cur;           /* SEC_* or an index into raw->services */
    char inih_name[64]; /* the section name exactly as inih will report it */
    int err_line;       /* line of our first error, 0 if none */
    struct tw_err *err;
};

static void trim(char *s)
{
    size_t len = strlen(s), start = 0;
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    while (isspace((unsigned char)s[start]))
        start++;
    memmove(s, s + start, len - start + 1);
}

static int fail(struct ini_src *src, const char *fmt, ...) TW_PRINTF(2, 3);

static int fail(struct ini_src *src, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    src->err_line = src->line;
    return tw_err_set(src->err, TW_ERR_CONFIG, "%s:%d: %s", src->raw->source, src->line, msg);
}

/* A `[...]` header: [global], [service NAME], [tunnel NAME] (skipped: twoway tunnel's). */
static int on_section(struct ini_src *src, const char *inner)
{
    char name[128], q[80];
    snprintf(src->inih_name, sizeof(src->inih_name), "%.49s", inner); /* inih keeps 49 */
    snprintf(name, sizeof(name), "%s", inner);
    trim(name);
    size_t word = strcspn(name, " \t");
    const char *rest = name + word + strspn(name + word, " \t");
    if (strcmp(name, "global") == 0) {
        src->cur = SEC_GLOBAL_IDX;
        return 0;
    }
    if (word == 7 && strncmp(name, "service", 7) == 0) {
        if (rest[0] == '\0')
            return fail(src, "[service]: a service needs a name: [service NAME]");
        TW_GUARD(cfg_raw_add_service(src->raw, rest, src->line, src->err));
        src->cur = (long)src->raw->n_services - 1;
        return 0;
    }
    if (word == 6 && strncmp(name, "tunnel", 6) == 0 && rest[0] != '\0') {
        src->cur = SEC_TUNNEL_IDX;
        return 0;
    }
    static const char *const kinds[] = {"global", "service", "tunnel"};
    char first[32];
    snprintf(first, sizeof(first), "%.*s", (int)(word < sizeof(first) ? word : 0), name);
    const char *near = cfg_word_suggest(first, kinds, 3);
    cfg_quote(name, q, sizeof(q));
    if (near != NULL && strcmp(near, first) != 0)
        return fail(src, "unknown section [%s] (did you mean [%s%s]?)", q, near,
                    strcmp(near, "global") == 0 ? "" : " NAME");
    return fail(src, "unknown section [%s]: use [global], [service NAME] or [tunnel NAME]", q);
}

/* Remove an inline comment the way inih does (';' after whitespace) and surrounding space. */
static void strip_line(char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if (*p == ';' && p > s && isspace((unsigned char)p[-1])) {
            *p = '\0';
            break;
        }
    }
    trim(s);
    if (s[0] == ';' || s[0] == '#')
        s[0] = '\0';
}

static char *reader(char *str, int num, void *stream)
{
    struct ini_src *src = stream;
    if (src->err_line != 0 || src->pos >= src->len)
        return NULL;
    if (num < 8) {
        src->line++;
        return fail(src, "libinih line buffer too small (%d bytes)", num), NULL;
    }
    const char *start = src->data + src->pos;
    const char *nl = memchr(start, '\n', src->len - src->pos);
    size_t linelen = nl != NULL ? (size_t)(nl - start) : src->len - src->pos;
    src->pos += linelen + (nl != NULL);
    src->line++;
    if (memchr(start, '\0', linelen) != NULL)
        return fail(src, "a NUL byte in the file"), NULL;
    if (linelen > GW_CONFIG_LINE_MAX) {
        return fail(src, "line longer than %u bytes", GW_CONFIG_LINE_MAX), NULL;
    }
    char *line = malloc(linelen + 1);
    if (line == NULL)
        return fail(src, "out of memory"), NULL;
    memcpy(line, start, linelen);
    line[linelen] = '\0';
    if (src->line == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
        memmove(line, line + 3, linelen - 2);
    strip_line(line);
    size_t len = strlen(line);
    if (len + 3 > (size_t)num) {
        free(line);
        return fail(src, "line longer than %d bytes (not counting comments)", num - 3), NULL;
    }
    if (line[0] == '[') {
        char *close = strchr(line, ']');
        if (close == NULL || close[1] != '\0') {
            free(line);
            return fail(src, "a section header is [NAME] alone on its line"), NULL;
        }
        *close = '\0';
        int rc = on_section(src, line + 1);
        *close = ']';
        if (rc != 0) {
            src->err_line = src->line;
            free(line);
            return NULL;
        }
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    free(line);
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct ini_src *src = user;
    if (src->err_line != 0)
        return 1;
    struct cfg_section *sec;
    if (src->cur == SEC_NONE) {
        char q[80];
        fail(src, "%s outside a section: start with [global] or [service NAME]",
             cfg_quote(name, q, sizeof(q)));
        return 0;
    }
    if (strcmp(section, src->inih_name) != 0) {
        fail(src, "could not follow the section structure here");
        return 0;
    }
    if (src->cur == SEC_TUNNEL_IDX)
        return 1;
    if (name[0] == '\0') {
        fail(src, "missing key name before '='");
        return 0;
    }
    sec = src->cur == SEC_GLOBAL_IDX ? &src->raw->global : &src->raw->services[src->cur];
    if (cfg_raw_add_entry(src->raw, sec, name, value, src->line, src->err) != 0) {
        src->err_line = src->line;
        return 0;
    }
    return 1;
}

struct gw_config *gw_config_load_buffer(const char *name, const void *data, size_t len,
                                        struct tw_err *err)
{
    struct cfg_raw raw;
    cfg_raw_init(&raw, name, false);
    struct ini_src src = {.data = data, .len = len, .raw = &raw, .cur = SEC_NONE, .err = err};
    int rc = ini_parse_stream(reader, &src, handler, &src);
    struct gw_config *cfg = NULL;
    if (src.err_line != 0 && (rc <= 0 || src.err_line <= rc)) {
        /* err already holds our message */
    } else if (rc > 0) {
        tw_err_set(err, TW_ERR_CONFIG, "%s:%d: expected 'key = value' or a [section] header",
                   raw.source, rc);
    } else if (rc < 0) {
        tw_err_set(err, TW_ERR_INTERNAL, "%s: out of memory while parsing", raw.source);
    } else {
        cfg = cfg_build(&raw, err);
    }
    cfg_raw_free(&raw);
    return cfg;
}

struct gw_config *gw_config_load_file(const char *path, struct tw_err *err)
{
    char *data = NULL;
    size_t len = 0;
    if (fs_read_file(path, GW_CONFIG_FILE_MAX, &data, &len, err) != 0)
        return NULL;
    struct gw_config *cfg = gw_config_load_buffer(path, data, len, err);
    free(data);
    return cfg;
}
