/* The console's routes: one table for the API and the pages, not an if chain. A pattern is
 * literal text with at most one '*', which matches one path segment of hex digits or letters
 * (a serial, a request id, an asset name) and is handed to the handler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/rand.h>

#include "console/internal.h"

#define SEGMENT_MAX 80 /* bytes of the '*' part of a path */

struct route {
    int html;
    const char *method;
    const char *pattern;
    console_handler run;
};

static const struct route routes[] = {
    {0, "GET", "session", console_api_session},
    {0, "GET", "overview", console_api_overview},
    {0, "GET", "certs", console_api_certs},
    {0, "GET", "certs/*", console_api_cert},
    {0, "GET", "certs/*/pem", console_api_cert},
    {0, "GET", "certs/*/der", console_api_cert},
    {0, "POST", "certs/*/revoke", console_api_revoke},
    {0, "GET", "tokens", console_api_tokens},
    {0, "POST", "tokens", console_api_token_create},
    {0, "GET", "pending", console_api_pending},
    {0, "POST", "pending/*/approve", console_api_decide},
    {0, "POST", "pending/*/reject", console_api_decide},
    {0, "GET", "audit", console_api_audit},
    {1, "GET", "", console_page_overview},
    {1, "GET", "certs", console_page_certs},
    {1, "GET", "certs/*", console_page_cert},
    {1, "POST", "certs/*/revoke", console_page_revoke},
    {1, "GET", "tokens", console_page_tokens},
    {1, "POST", "tokens", console_page_token_create},
    {1, "GET", "pending", console_page_pending},
    {1, "POST", "pending/*/approve", console_page_decide},
    {1, "POST", "pending/*/reject", console_page_decide},
    {1, "GET", "audit", console_page_audit},
    {1, "GET", "static/*", console_page_static},
    {0, NULL, NULL, NULL},
};

static int segment_char(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           ch == '.' || ch == '-' || ch == ':';
}

/* 1 when path matches pattern; the '*' part (if any) into seg. */
static int match(const char *pattern, const char *path, char *seg, size_t cap)
{
    seg[0] = '\0';
    const char *star = strchr(pattern, '*');
    if (star == NULL)
        return strcmp(pattern, path) == 0;
    size_t pre = (size_t)(star - pattern);
    if (strncmp(pattern, path, pre) != 0)
        return 0;
    const char *p = path + pre;
    size_t n = 0;
    while (p[n] != '\0' && segment_char(p[n]))
        n++;
    if (n == 0 || n >= cap || strcmp(p + n, star + 1) != 0)
        return 0;
    memcpy(seg, p, n);
    seg[n] = '\0';
    return 1;
}

static void handle(struct console *c, struct est_req *r, int html)
{
    struct console_req q;
    memset(&q, 0, sizeof(q));
    q.c = c;
    q.r = r;
    q.html = html;
    TAILQ_INIT(&q.query);
    TAILQ_INIT(&q.form);
    const char *path = est_req_path(r);
    size_t plen = strlen(html ? CONSOLE_UI : CONSOLE_API);
    q.path = strlen(path) >= plen ? path + plen : "";
    q.post = strcmp(est_req_method(r), "POST") == 0;
    const char *qs = est_req_query(r);
    if (qs != NULL && evhttp_parse_query_str(qs, &q.query) != 0) {
        console_fail(&q, 400, "malformed query string");
        goto out;
    }
    if (console_auth(&q) != 0)
        goto out;
    char seg[SEGMENT_MAX];
    const struct route *found = NULL;
    int path_known = 0;
    for (const struct route *rt = routes; rt->pattern != NULL; rt++) {
        if (rt->html != html || !match(rt->pattern, q.path, seg, sizeof(seg)))
            continue;
        path_known = 1;
        const char *m = est_req_method(r);
        if (strcmp(rt->method, m) == 0 || (strcmp(m, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
            found = rt;
            break;
        }
    }
    if (found == NULL) {
        console_fail(&q, path_known ? 405 : 404,
                     path_known ? "method not allowed here" : "no such page");
        goto out;
    }
    if (q.post && console_auth_write(&q) != 0)
        goto out;
    found->run(&q, seg);
out:
    evhttp_clear_headers(&q.query);
    evhttp_clear_headers(&q.form);
    tlsx_identity_free(q.id);
}

static void run_api(void *arg, struct est_req *r)
{
    handle(arg, r, 0);
}

static void run_ui(void *arg, struct est_req *r)
{
    handle(arg, r, 1);
}

/* "/console" without the slash: where the pages start. */
static void run_bare(void *arg, struct est_req *r)
{
    (void)arg;
    if (strcmp(est_req_path(r), "/console") != 0) {
        est_req_reply(r, 404, "text/plain; charset=utf-8", "not found\n", 10, NULL, NULL);
        return;
    }
    const char *h[] = {"Location", CONSOLE_UI, NULL};
    est_req_reply(r, 301, "text/plain; charset=utf-8", "moved\n", 6, h, NULL);
}

struct console *console_new(const struct console_opts *opts, struct tw_err *err)
{
    struct console *c = calloc(1, sizeof(*c));
    TW_ENSURE_PTR(c != NULL, err, TW_ERR_INTERNAL, "out of memory");
    c->o = *opts;
    if (RAND_bytes(c->csrf_key, sizeof(c->csrf_key)) != 1) {
        free(c);
        tw_err_set(err, TW_ERR_INTERNAL, "no randomness for the CSRF key");
        return NULL;
    }
    if (c->o.readers != NULL)
        tlsx_policy_up_ref(c->o.readers);
    if (c->o.admins != NULL)
        tlsx_policy_up_ref(c->o.admins);
    c->exts[0] = (struct est_ext){CONSOLE_API, run_api, c};
    c->exts[1] = (struct est_ext){CONSOLE_UI, run_ui, c};
    c->exts[2] = (struct est_ext){"/console", run_bare, c};
    return c;
}

void console_free(struct console *c)
{
    if (c == NULL)
        return;
    tlsx_policy_free(c->o.readers);
    tlsx_policy_free(c->o.admins);
    OPENSSL_cleanse(c->csrf_key, sizeof(c->csrf_key));
    free(c);
}

const struct est_ext *console_exts(struct console *c)
{
    return c->exts;
}

void console_describe(const struct console *c, char *out, size_t cap)
{
    char r[512] = "", a[512] = "";
    size_t nr = c->o.readers != NULL ? tlsx_policy_count(c->o.readers) : 0;
    size_t na = c->o.admins != NULL ? tlsx_policy_count(c->o.admins) : 0;
    if (nr > 0)
        tlsx_policy_render(c->o.readers, r, sizeof(r));
    if (na > 0)
        tlsx_policy_render(c->o.admins, a, sizeof(a));
    if (nr == 0 && na == 0)
        snprintf(out, cap, "console at /console/ and /api/v1/: nobody may use it (no "
                           "--console-allow or --console-admin-allow rule)");
    else
        snprintf(out, cap, "console at /console/ and /api/v1/: read: %s; admin (admin profile "
                           "only): %s", nr > 0 ? r : "(admins only)", na > 0 ? a : "nobody");
}
