/* The inventory: search, filter, sort and page (the pages and the API share it). Rows are
 * read through store_cert_list once per request and only a compact copy of the matching ones
 * is kept, so 100,000 certificates stay a few tens of megabytes for the moment of a search. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "console/internal.h"

struct search {
    const char *text; /* case-insensitive substring of name, serial, subject, SANs, SHA-256 */
    struct console_row *rows;
    size_t n, cap;
    int oom;
};

static int matches(const struct store_cert *c, const char *text)
{
    if (text == NULL)
        return 1;
    const char *fields[] = {c->name, c->serial, c->subject, c->sans, c->sha256};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcasestr(fields[i], text) != NULL)
            return 1;
    return 0;
}

static int collect(const struct store_cert *c, void *ctx)
{
    struct search *s = ctx;
    if (!matches(c, s->text))
        return 0;
    if (s->n >= CONSOLE_LIST_MAX)
        return 1;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct console_row *rows = realloc(s->rows, cap * sizeof(*rows));
        if (rows == NULL)
            return (s->oom = 1);
        s->rows = rows;
        s->cap = cap;
    }
    struct console_row *r = &s->rows[s->n++];
    memcpy(r->serial, c->serial, sizeof(r->serial));
    memcpy(r->name, c->name, sizeof(r->name));
    memcpy(r->profile, c->profile, sizeof(r->profile));
    r->not_before = c->not_before;
    r->not_after = c->not_after;
    r->revoked_at = c->revoked_at;
    r->status = (int)c->status;
    return 0;
}

const char *console_status_name(int status)
{
    return status == STORE_VALID ? "valid" : status == STORE_REVOKED ? "revoked" : "expired";
}

static int cmp_name(const void *a, const void *b)
{
    const struct console_row *x = a, *y = b;
    int d = strcmp(x->name, y->name);
    return d != 0 ? d : strcmp(x->serial, y->serial);
}

static int cmp_serial(const void *a, const void *b)
{
    const struct console_row *x = a, *y = b;
    return strcmp(x->serial, y->serial);
}

static int cmp_i64(int64_t x, int64_t y)
{
    return x < y ? -1 : x > y;
}

static int cmp_not_after(const void *a, const void *b)
{
    const struct console_row *x = a, *y = b;
    int d = cmp_i64(x->not_after, y->not_after);
    return d != 0 ? d : strcmp(x->serial, y->serial);
}

static int cmp_not_before(const void *a, const void *b)
{
    const struct console_row *x = a, *y = b;
    int d = cmp_i64(x->not_before, y->not_before);
    return d != 0 ? d : strcmp(x->serial, y->serial);
}

static int cmp_status(const void *a, const void *b)
{
    const struct console_row *x = a, *y = b;
    int d = x->status - y->status;
    return d != 0 ? d : cmp_not_after(a, b);
}

static const struct {
    const char *name;
    int (*cmp)(const void *, const void *);
} sorts[] = {
    {"not_after", cmp_not_after}, {"not_before", cmp_not_before}, {"name", cmp_name},
    {"serial", cmp_serial},       {"status", cmp_status},
};

static const struct {
    const char *name;
    int status;
} statuses[] = {{"any", -1}, {"valid", STORE_VALID}, {"revoked", STORE_REVOKED},
                {"expired", STORE_EXPIRED}};

static int bad(struct console_req *q, const char *msg)
{
    console_fail(q, 400, msg);
    return -1;
}

int console_certs_search(struct console_req *q, struct console_page *out)
{
    memset(out, 0, sizeof(*out));
    struct store_filter f = {.status = -1};
    const char *st = console_param(q, "status"), *sort = console_param(q, "sort");
    const char *order = console_param(q, "order"), *text = console_param(q, "q");
    const char *profile = console_param(q, "profile");
    if (text != NULL && strlen(text) > CONSOLE_QUERY_MAX)
        return bad(q, "q: search text too long");
    size_t i;
    for (i = 0; st != NULL && i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(st, statuses[i].name) == 0)
            break;
    if (st != NULL && i == sizeof(statuses) / sizeof(statuses[0]))
        return bad(q, "status: use any, valid, revoked or expired");
    if (st != NULL)
        f.status = statuses[i].status;
    if (profile != NULL && strcmp(profile, "any") != 0) {
        if (strlen(profile) >= STORE_PROFILE_MAX)
            return bad(q, "profile: unknown profile");
        f.profile = profile;
    }
    long days = 0, page = 1, per_page = CONSOLE_PER_PAGE;
    if (console_int_param(q, "expiring", 0, 0, 36500, &days) != 0 ||
        console_int_param(q, "page", 1, 1, 1000000, &page) != 0 ||
        console_int_param(q, "per_page", CONSOLE_PER_PAGE, 1, CONSOLE_PER_PAGE_MAX, &per_page) !=
            0)
        return -1;
    f.expiring_within = (int64_t)days * 86400;
    int (*cmp)(const void *, const void *) = cmp_not_after;
    for (i = 0; sort != NULL && i < sizeof(sorts) / sizeof(sorts[0]); i++)
        if (strcmp(sort, sorts[i].name) == 0)
            break;
    if (sort != NULL && i == sizeof(sorts) / sizeof(sorts[0]))
        return bad(q, "sort: use not_after, not_before, name, serial or status");
    if (sort != NULL)
        cmp = sorts[i].cmp;
    if (order != NULL && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)
        return bad(q, "order: use asc or desc");
    struct search s = {.text = text};
    struct tw_err err;
    if (store_cert_list(pki_ca_store(q->c->o.ca), &f, collect, &s, &err) != 0 || s.oom) {
        free(s.rows);
        console_fail(q, s.oom ? 500 : console_status_of(&err),
                     s.oom ? "out of memory" : "the inventory cannot be read");
        return -1;
    }
    if (s.n > 1)
        qsort(s.rows, s.n, sizeof(*s.rows), cmp);
    if (order != NULL && strcmp(order, "desc") == 0)
        for (size_t a = 0, b = s.n; a + 1 < b; a++, b--) {
            struct console_row t = s.rows[a];
            s.rows[a] = s.rows[b - 1];
            s.rows[b - 1] = t;
        }
    size_t first = (size_t)(page - 1) * (size_t)per_page;
    size_t n = first < s.n ? s.n - first : 0;
    if (n > (size_t)per_page)
        n = (size_t)per_page;
    if (n > 0)
        memmove(s.rows, s.rows + first, n * sizeof(*s.rows));
    out->rows = s.rows;
    out->n = n;
    out->total = s.n;
    out->page = page;
    out->per_page = per_page;
    return 0;
}

void console_page_free(struct console_page *p)
{
    free(p->rows);
    memset(p, 0, sizeof(*p));
}
