/* Pieces of every page: escaping, the head with navigation, sending. Every value that comes
 * from a certificate, a request or the store goes through console_html_esc. */
#include <stdio.h>
#include <string.h>

#include "console/internal.h"
#include "util/clock.h"

const char *console_when(int64_t t, char *buf, size_t cap)
{
    return t == 0 ? "-" : clock_iso8601((time_t)t, buf, cap);
}

int console_html_esc(struct tw_buf *b, const char *text, struct tw_err *err)
{
    for (const char *p = text; *p != '\0'; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        TW_GUARD(rep != NULL ? tw_buf_append(b, rep, strlen(rep), err)
                             : tw_buf_append(b, p, 1, err));
    }
    return 0;
}

static const struct {
    const char *href, *label;
} nav[] = {
    {"/console/", "Overview"},       {"/console/certs", "Inventory"},
    {"/console/tokens", "Tokens"},   {"/console/pending", "Pending requests"},
    {"/console/audit", "Audit log"},
};

int console_html_head(struct console_req *q, struct tw_buf *b, const char *title,
                      struct tw_err *err)
{
    TW_GUARD(tw_buf_appendf(b, err,
                            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                            "<meta name=\"viewport\" content=\"width=device-width\"><link rel=\"icon\" href=\"data:,\">"
                            "<title>"));
    TW_GUARD(console_html_esc(b, title, err));
    TW_GUARD(tw_buf_appendf(b, err,
                            " - twoway console</title><link rel=\"stylesheet\" "
                            "href=\"/console/static/console.css\"><script "
                            "src=\"/console/static/console.js\" defer></script></head>\n<body>"
                            "<header><strong>twoway console</strong><nav>"));
    for (size_t i = 0; i < sizeof(nav) / sizeof(nav[0]); i++)
        TW_GUARD(tw_buf_appendf(b, err, "<a href=\"%s\">%s</a>", nav[i].href, nav[i].label));
    TW_GUARD(tw_buf_appendf(b, err, "</nav><span class=\"who\">"));
    TW_GUARD(console_html_esc(b, q->who, err));
    TW_GUARD(tw_buf_appendf(b, err, " (%s)</span></header>\n<main><h1>",
                            q->role == CONSOLE_ADMIN ? "admin" : "read-only"));
    TW_GUARD(console_html_esc(b, title, err));
    return tw_buf_appendf(b, err, "</h1>\n");
}

int console_html_foot(struct tw_buf *b, struct tw_err *err)
{
    return tw_buf_appendf(b, err, "</main></body></html>\n");
}

void console_html_send(struct console_req *q, struct tw_buf *b, int rc, const struct tw_err *err)
{
    if (rc == 0)
        console_send(q, 200, "text/html; charset=utf-8", b->data, b->len, NULL);
    else
        console_fail(q, err->code == TW_ERR_IO ? 500 : console_status_of(err),
                     "the page cannot be made");
    tw_buf_free(b);
}
