/* Pages: overview, inventory, one certificate and its revocation. Server-rendered from the same
 * functions the API uses; every value escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "console/internal.h"
#include "util/clock.h"

#define A(...) TW_GUARD(tw_buf_appendf(b, err, __VA_ARGS__))
#define E(text) TW_GUARD(console_html_esc(b, (text), err))

static int overview(struct console_req *q, struct tw_buf *b, struct tw_err *err)
{
    struct console_stats s;
    TW_GUARD(console_stats(q->c, &s, err));
    TW_GUARD(console_html_head(q, b, "Overview", err));
    A("<section class=\"cards\">"
      "<div class=\"card\"><b>%lld</b>certificates</div>"
      "<div class=\"card valid\"><b>%lld</b>valid</div>"
      "<div class=\"card revoked\"><b>%lld</b>revoked</div>"
      "<div class=\"card expired\"><b>%lld</b>expired</div>"
      "<div class=\"card\"><b>%lld / %lld / %lld</b>client / server / admin</div></section>\n",
      (long long)s.total, (long long)s.by_status[0], (long long)s.by_status[1],
      (long long)s.by_status[2], (long long)s.client, (long long)s.server, (long long)s.admin);
    A("<h2>Expiry timeline</h2>");
    TW_GUARD(console_svg_bars(b, "Valid certificates expiring per week, next 90 days",
                              s.expiring_week, 13, "week", err));
    A("<h2>Revocations</h2>");
    TW_GUARD(console_svg_bars(b, "Revocations per week, last 90 days (oldest first)",
                              s.revoked_week, 13, "week", err));
    struct store *st = pki_ca_store(q->c->o.ca);
    A("<h2>CA</h2><table><tr><th>Store</th><td>%s (", store_backend(st));
    E(store_where(st));
    A(") healthy</td></tr><tr><th>CRL</th><td><a href=\"/crl\">/crl</a>, updated every %d "
      "days at most, and at each revocation</td></tr></table>\n",
      pki_ca_crl_days(q->c->o.ca));
    return console_html_foot(b, err);
}

void console_page_overview(struct console_req *q, const char *arg)
{
    (void)arg;
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = overview(q, &buf, &err);
    if (rc != 0 && err.code == TW_ERR_STORE) {
        tw_buf_free(&buf);
        console_fail(q, 503, "the inventory cannot be read; try again shortly");
        return;
    }
    console_html_send(q, &buf, rc, &err);
}

/* A link to the inventory with the current query but one parameter replaced. */
static int link_with(struct console_req *q, struct tw_buf *b, const char *name, const char *value,
                     struct tw_err *err)
{
    static const char *keep[] = {"q", "status", "profile", "expiring", "sort", "order",
                                 "per_page", "page"};
    A("/console/certs?");
    int first = 1;
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        const char *v = strcmp(keep[i], name) == 0 ? value : console_param(q, keep[i]);
        if (v == NULL)
            continue;
        char *enc = evhttp_encode_uri(v);
        TW_ENSURE(enc != NULL, err, TW_ERR_INTERNAL, "out of memory");
        int rc = tw_buf_appendf(b, err, "%s%s=%s", first ? "" : "&amp;", keep[i], enc);
        free(enc);
        TW_GUARD(rc);
        first = 0;
    }
    return 0;
}

static int field(struct console_req *q, struct tw_buf *b, const char *label, const char *name,
                 struct tw_err *err)
{
    const char *v = console_param(q, name);
    A("<label>%s <input name=\"%s\" value=\"", label, name);
    E(v != NULL ? v : "");
    A("\"></label> ");
    return 0;
}

static int inventory(struct console_req *q, const struct console_page *p, struct tw_buf *b,
                     struct tw_err *err)
{
    TW_GUARD(console_html_head(q, b, "Inventory", err));
    A("<form method=\"get\" action=\"/console/certs\">");
    TW_GUARD(field(q, b, "Search", "q", err));
    TW_GUARD(field(q, b, "Status (valid, revoked, expired)", "status", err));
    TW_GUARD(field(q, b, "Profile", "profile", err));
    TW_GUARD(field(q, b, "Expiring within days", "expiring", err));
    A("<button>Search</button></form>\n<p>%zu matching; page %ld. Export: <a href=\"",
      p->total, p->page);
    A("/api/v1/certs?format=csv&amp;per_page=%d", CONSOLE_PER_PAGE_MAX);
    A("\">CSV</a>, <a href=\"/api/v1/certs?per_page=%d\">JSON</a></p>\n<table><tr>",
      CONSOLE_PER_PAGE_MAX);
    static const char *cols[][2] = {{"serial", "Serial"}, {"name", "Name"}, {NULL, "Profile"},
                                    {"status", "Status"}, {"not_before", "Not before"},
                                    {"not_after", "Not after"}};
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        if (cols[i][0] == NULL) {
            A("<th>%s</th>", cols[i][1]);
            continue;
        }
        A("<th><a href=\"");
        TW_GUARD(link_with(q, b, "sort", cols[i][0], err));
        A("\">%s</a></th>", cols[i][1]);
    }
    A("</tr>\n");
    for (size_t i = 0; i < p->n; i++) {
        const struct console_row *r = &p->rows[i];
        char nb[32], na[32];
        A("<tr><td class=\"mono\"><a href=\"/console/certs/%s\">%s</a></td><td>", r->serial,
          r->serial);
        E(r->name);
        A("</td><td>");
        E(r->profile);
        A("</td><td class=\"%s\">%s</td><td>%s</td><td>%s</td></tr>\n",
          console_status_name(r->status), console_status_name(r->status),
          console_when(r->not_before, nb, sizeof(nb)), console_when(r->not_after, na, sizeof(na)));
    }
    A("</table>\n<p>");
    if (p->page > 1) {
        char prev[24];
        snprintf(prev, sizeof(prev), "%ld", p->page - 1);
        A("<a href=\"");
        TW_GUARD(link_with(q, b, "page", prev, err));
        A("\">previous</a> ");
    }
    if ((size_t)(p->page * p->per_page) < p->total) {
        char next[24];
        snprintf(next, sizeof(next), "%ld", p->page + 1);
        A("<a href=\"");
        TW_GUARD(link_with(q, b, "page", next, err));
        A("\">next</a>");
    }
    A("</p>\n");
    return console_html_foot(b, err);
}

void console_page_certs(struct console_req *q, const char *arg)
{
    (void)arg;
    struct console_page p;
    if (console_certs_search(q, &p) != 0)
        return;
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = inventory(q, &p, &buf, &err);
    console_page_free(&p);
    console_html_send(q, &buf, rc, &err);
}

static int csrf_field(struct console_req *q, struct tw_buf *b, struct tw_err *err)
{
    A("<input type=\"hidden\" name=\"csrf\" value=\"%s\">", q->csrf);
    return 0;
}

static int cert_page(struct console_req *q, const struct store_cert *row, X509 *cert,
                     struct tw_buf *b, struct tw_err *err)
{
    char nb[32], na[32], ra[32];
    TW_GUARD(console_html_head(q, b, row->name, err));
    A("<table>");
    const char *rows[][2] = {{"Subject", row->subject}, {"SANs", row->sans},
                             {"Profile", row->profile}, {"Issuer", row->issuer},
                             {"Serial", row->serial},   {"SHA-256", row->sha256}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        A("<tr><th>%s</th><td class=\"mono\">", rows[i][0]);
        E(rows[i][1]);
        A("</td></tr>");
    }
    EVP_PKEY *pk = cert != NULL ? X509_get0_pubkey(cert) : NULL;
    A("<tr><th>Key</th><td>%s %d bits</td></tr>", pk != NULL ? EVP_PKEY_get0_type_name(pk) : "?",
      pk != NULL ? EVP_PKEY_get_bits(pk) : 0);
    A("<tr><th>Validity</th><td>%s to %s</td></tr>", console_when(row->not_before, nb, sizeof(nb)),
      console_when(row->not_after, na, sizeof(na)));
    A("<tr><th>Status</th><td class=\"%s\">%s", console_status_name((int)row->status),
      console_status_name((int)row->status));
    if (row->status == STORE_REVOKED)
        A(" at %s (%s)", console_when(row->revoked_at, ra, sizeof(ra)), pki_reason_name(row->revoke_reason));
    A("</td></tr><tr><th>OCSP says</th><td id=\"ocsp\">%s</td></tr>",
      cert != NULL ? console_ocsp_says(q->c, cert) : "?");
    A("<tr><th>Chain</th><td>this certificate, the intermediate, the root (<a "
      "href=\"/chain.pem\">chain.pem</a>)</td></tr></table>\n");
    A("<p>Download: <a href=\"/api/v1/certs/%s/pem\">PEM</a> <a "
      "href=\"/api/v1/certs/%s/der\">DER</a></p>\n",
      row->serial, row->serial);
    if (q->role == CONSOLE_ADMIN && row->status == STORE_VALID) {
        A("<form method=\"post\" action=\"/console/certs/%s/revoke\" data-confirm=\"Revoke this "
          "certificate? This cannot be undone.\"><fieldset><legend>Revoke</legend>",
          row->serial);
        TW_GUARD(csrf_field(q, b, err));
        A("<label>Reason <select name=\"reason\">");
        static const char *reasons[] = {"unspecified", "keyCompromise", "affiliationChanged",
                                        "superseded", "cessationOfOperation", "privilegeWithdrawn"};
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
            A("<option>%s</option>", reasons[i]);
        A("</select></label> <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" "
          "required> I confirm</label> <button id=\"revoke\">Revoke</button></fieldset></form>\n");
    }
    A("<h2>PEM</h2><pre>");
    E(row->pem != NULL ? row->pem : "");
    A("</pre>\n");
    return console_html_foot(b, err);
}

void console_page_cert(struct console_req *q, const char *serial)
{
    struct store_cert row;
    X509 *cert = NULL;
    if (console_cert_load(q, serial, &row, &cert) != 0)
        return;
    struct tw_buf buf;
    tw_buf_init(&buf, CONSOLE_PAGE_MAX);
    struct tw_err err;
    int rc = cert_page(q, &row, cert, &buf, &err);
    X509_free(cert);
    store_cert_clear(&row);
    console_html_send(q, &buf, rc, &err);
}

/* After a write from a page: 303 to where the result shows (POST/redirect/GET). */
void console_redirect(struct console_req *q, const char *to)
{
    const char *h[] = {"Location", to, NULL};
    console_send(q, 303, "text/plain; charset=utf-8", "see other\n", 10, h);
}

void console_page_revoke(struct console_req *q, const char *serial)
{
    struct tw_err err;
    if (console_do_revoke(q, serial, console_form(q, "reason"), &err) != 0) {
        console_fail(q, console_status_of(&err), err.msg);
        return;
    }
    char to[128];
    snprintf(to, sizeof(to), "/console/certs/%s", serial);
    console_redirect(q, to);
}
