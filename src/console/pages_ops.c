/* Pages: enrollment tokens (the token shown once, with the command and its QR code), pending
 * requests (approve or reject), the audit log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "console/internal.h"
#include "util/clock.h"

#define A(...) TW_GUARD(tw_buf_appendf(b, err, __VA_ARGS__))
#define E(text) TW_GUARD(console_html_esc(b, (text), err))

struct rows_ctx {
    struct tw_buf *b;
    struct tw_err *err;
    struct console_req *q;
    int rc;
    size_t n;
};

static int token_line(const struct store_token *t, void *arg)
{
    struct rows_ctx *x = arg;
    struct tw_buf *b = x->b;
    struct tw_err *err = x->err;
    int64_t now = (int64_t)time(NULL);
    if (t->used_at != 0 && t->expires_at < now - 7 * 86400)
        return 0; /* a week after expiry a used token is history (the audit log keeps it) */
    char c[32], e[32];
    const char *state = t->used_at != 0 ? "used" : t->expires_at <= now ? "expired" : "unused";
    if ((x->rc = tw_buf_appendf(b, err, "<tr><td>")) != 0 || (x->rc = console_html_esc(b, t->name, err)) != 0 ||
        (x->rc = tw_buf_appendf(b, err, "</td><td>%s</td><td>", t->profile)) != 0 ||
        (x->rc = console_html_esc(b, t->sans, err)) != 0 ||
        (x->rc = tw_buf_appendf(b, err, "</td><td>%s</td><td>%s</td><td>%s</td><td class=\"mono\">%s</td></tr>\n",
                                console_when(t->created_at, c, sizeof(c)), console_when(t->expires_at, e, sizeof(e)),
                                state, t->serial)) != 0)
        return 1;
    return 0;
}

static int tokens(struct console_req *q, struct tw_buf *b, const char *shown, const char *cmd,
                  struct tw_err *err)
{
    TW_GUARD(console_html_head(q, b, "Enrollment tokens", err));
    if (shown != NULL) {
        A("<section class=\"secret\"><h2>New token (shown once)</h2><p class=\"mono\" "
          "id=\"token\">");
        E(shown);
        A("</p><p>On the machine to enroll:</p><pre id=\"command\">");
        E(cmd);
        A("</pre>");
        TW_GUARD(console_svg_qr(b, cmd, err));
        A("</section>\n");
    }
    if (q->role == CONSOLE_ADMIN) {
        A("<form method=\"post\" action=\"/console/tokens\"><fieldset><legend>New "
          "token</legend><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
          "<label>Name <input name=\"name\" required></label> <label>Profile <select "
          "name=\"profile\"><option>client</option><option>server</option></select></label> "
          "<label>SANs <input name=\"sans\" placeholder=\"dns:a.example,email:x@y\"></label> "
          "<label>Token TTL <input name=\"ttl\" value=\"24h\"></label> <label>Certificate "
          "validity <input name=\"days\" placeholder=\"30d\"></label> <button "
          "id=\"create\">Create</button></fieldset></form>\n",
          q->csrf);
    }
    A("<table><tr><th>Name</th><th>Profile</th><th>SANs</th><th>Created</th><th>Expires</th>"
      "<th>State</th><th>Certificate</th></tr>\n");
    struct rows_ctx x = {b, err, q, 0, 0};
    TW_GUARD(store_token_list(pki_ca_store(q->c->o.ca), token_line, &x, err));
    TW_GUARD(x.rc);
    A("</table>\n");
    return console_html_foot(b, err);
}

void console_page_tokens(struct console_req *q, const char *arg)
{
    (void)arg;
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = tokens(q, &buf, NULL, NULL, &err);
    console_html_send(q, &buf, rc, &err);
}

void console_page_token_create(struct console_req *q, const char *arg)
{
    (void)arg;
    char token[PKI_TOKEN_TEXT_MAX], cmd[1024];
    int64_t expires = 0;
    struct tw_err err;
    if (console_do_token(q, token, cmd, sizeof(cmd), &expires, &err) != 0) {
        console_fail(q, console_status_of(&err), err.msg);
        return;
    }
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    int rc = tokens(q, &buf, token, cmd, &err);
    OPENSSL_cleanse(token, sizeof(token));
    OPENSSL_cleanse(cmd, sizeof(cmd));
    console_html_send(q, &buf, rc, &err);
}

static int pending_line(const struct store_pending *p, void *arg)
{
    struct rows_ctx *x = arg;
    struct tw_buf *b = x->b;
    struct tw_err *err = x->err;
    char c[32];
    x->rc = tw_buf_appendf(b, err, "<tr><td class=\"mono\">%.16s</td><td>", p->id);
    if (x->rc == 0)
        x->rc = console_html_esc(b, p->subject, err);
    if (x->rc == 0)
        x->rc = tw_buf_appendf(b, err, "</td><td>");
    if (x->rc == 0)
        x->rc = console_html_esc(b, p->sans, err);
    if (x->rc == 0)
        x->rc = tw_buf_appendf(b, err, "</td><td>%s</td><td>", p->profile);
    if (x->rc == 0)
        x->rc = console_html_esc(b, p->peer, err);
    if (x->rc == 0)
        x->rc = tw_buf_appendf(b, err, "</td><td>%s</td><td>", console_when(p->created_at, c, sizeof(c)));
    for (int approve = 1; x->rc == 0 && approve >= 0 && x->q->role == CONSOLE_ADMIN; approve--)
        x->rc = tw_buf_appendf(
            b, err,
            "<form class=\"inline\" method=\"post\" action=\"/console/pending/%s/%s\"><input "
            "type=\"hidden\" name=\"csrf\" value=\"%s\">%s<button>%s</button></form> ",
            p->id, approve ? "approve" : "reject", x->q->csrf,
            approve ? "" : "<input name=\"reason\" placeholder=\"reason\"> ",
            approve ? "Approve" : "Reject");
    if (x->rc == 0)
        x->rc = tw_buf_appendf(b, err, "</td></tr>\n");
    return x->rc != 0;
}

static int pending(struct console_req *q, struct tw_buf *b, struct tw_err *err)
{
    TW_GUARD(console_html_head(q, b, "Pending requests", err));
    A("<p>Enrollment requests waiting for approval (<code>ca serve --approval manual</code>). "
      "An approved request gets its certificate when the client asks again.</p>\n<table><tr>"
      "<th>Id</th><th>Subject</th><th>SANs</th><th>Profile</th><th>From</th><th>Sent</th>"
      "<th></th></tr>\n");
    struct rows_ctx x = {b, err, q, 0, 0};
    TW_GUARD(store_pending_list(pki_ca_store(q->c->o.ca), "pending", pending_line, &x, err));
    TW_GUARD(x.rc);
    A("</table>\n");
    return console_html_foot(b, err);
}

void console_page_pending(struct console_req *q, const char *arg)
{
    (void)arg;
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = pending(q, &buf, &err);
    console_html_send(q, &buf, rc, &err);
}

void console_page_decide(struct console_req *q, const char *id)
{
    struct tw_err err;
    if (console_do_decide(q, id, strstr(q->path, "/approve") != NULL, &err) != 0) {
        console_fail(q, console_status_of(&err), err.msg);
        return;
    }
    console_redirect(q, "/console/pending");
}

static int audit(struct console_req *q, const struct store_audit *rows, size_t n, size_t total,
                 long page, struct tw_buf *b, struct tw_err *err)
{
    TW_GUARD(console_html_head(q, b, "Audit log", err));
    const char *action = console_param(q, "action"), *subject = console_param(q, "subject");
    A("<form method=\"get\" action=\"/console/audit\"><label>Action <input name=\"action\" "
      "value=\"");
    E(action != NULL ? action : "");
    A("\"></label> <label>Subject contains <input name=\"subject\" value=\"");
    E(subject != NULL ? subject : "");
    A("\"></label> <button>Filter</button></form>\n<p>%zu entries, newest first; page %ld</p>"
      "<table><tr><th>When</th><th>Action</th><th>By (subject)</th><th>By (serial)</th>"
      "<th>Result</th></tr>\n",
      total, page);
    for (size_t i = 0; i < n; i++) {
        char at[32];
        A("<tr><td>%s</td><td>", console_when(rows[i].at, at, sizeof(at)));
        E(rows[i].action);
        A("</td><td>");
        E(rows[i].subject);
        A("</td><td class=\"mono\">");
        E(rows[i].serial);
        A("</td><td>");
        E(rows[i].result);
        A("</td></tr>\n");
    }
    A("</table><p>");
    if (page > 1)
        A("<a href=\"/console/audit?page=%ld\">newer</a> ", page - 1);
    if ((size_t)page * CONSOLE_PER_PAGE < total)
        A("<a href=\"/console/audit?page=%ld\">older</a>", page + 1);
    A("</p>\n");
    return console_html_foot(b, err);
}

void console_page_audit(struct console_req *q, const char *arg)
{
    (void)arg;
    struct store_audit *rows = NULL;
    size_t n = 0, total = 0;
    long page = 1;
    if (console_audit_search(q, &rows, &n, &total, &page) != 0)
        return;
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = audit(q, rows, n, total, page, &buf, &err);
    free(rows);
    console_html_send(q, &buf, rc, &err);
}
