"""`twoway ca serve --console`: the HTML pages. Every page loads for a reader; values from
certificates and requests are escaped (a subject and SANs holding <script>, quotes and
non-ASCII); no inline script or style; forms carry the CSRF token and only admins see them;
writes from forms answer 303 to the page that shows the result; errors are pages."""

import html
import re
import urllib.parse
from html.parser import HTMLParser

import pytest

from console_helpers import Console, audit, ocsp_status
from twoway_testlib import Pki

NASTY_CN = "<script>alert(\"Zoë's\")<-x"
NASTY_SANS = "uri:https://x.example/<script>alert(1)</script>,email:\"<b>\"@example.com"
PAGES = ["/console/", "/console/certs", "/console/tokens", "/console/pending", "/console/audit"]


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser sees them."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(body):
    p = Tags()
    p.feed(body.decode("utf-8"))
    return p


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-pages")
    pki = Pki(tmp)
    c = Console(pki, tmp, "--approval", "manual")
    c.nasty = pki.issue_client(NASTY_CN, san=NASTY_SANS, out=tmp / "nasty")
    yield c
    c.stop()


def no_script_but_ours(p):
    scripts = [a for t, a in p.tags if t == "script"]
    assert all(a.get("src") == "/console/static/console.js" for a in scripts), scripts
    assert not [t for t, a in p.tags if t == "style"]
    for t, a in p.tags:
        assert not [k for k in a if k.startswith("on")], (t, a)  # no event handler attributes
        assert "style" not in a


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_for_a_reader(con, path):
    st, h, body = con.req(con.viewer, "GET", path)
    assert st == 200 and h["content-type"] == "text/html; charset=utf-8"
    p = parse(body)
    no_script_but_ours(p)
    assert "CN=viewer" in "".join(p.text) and "read-only" in "".join(p.text)
    assert not [a for t, a in p.tags if t == "form" and a.get("method") == "post"]


def test_overview_has_the_expiry_timeline(con):
    st, _, body = con.req(con.viewer, "GET", "/console/")
    p = parse(body)
    charts = [a for t, a in p.tags if t == "svg" and a.get("class") == "chart"]
    assert len(charts) == 2
    text = "".join(p.text)
    assert "expiring per week" in text and "sqlite" in text
    # the 13 weekly bars add up to the valid certificates expiring within 91 days
    bars = re.findall(r"<title>week \d+: (\d+)</title>", body.decode())
    soon = con.json(con.viewer, "GET", "/api/v1/certs?expiring=91&status=valid")[1]["total"]
    assert soon >= 6 and sum(map(int, bars[:13])) == soon


def test_nasty_subject_and_sans_are_escaped(con):
    serial = con.nasty.serial
    for path in ["/console/certs", f"/console/certs/{serial}",
                 "/console/certs?q=" + urllib.parse.quote(NASTY_CN)]:
        st, _, body = con.req(con.viewer, "GET", path)
        assert st == 200
        text = body.decode("utf-8")
        assert "<script>alert" not in text and "<b>" not in text
        p = parse(body)
        no_script_but_ours(p)
        assert NASTY_CN in "".join(p.text)  # shown as text, non-ASCII intact
    st, _, body = con.req(con.viewer, "GET", f"/console/certs/{serial}")
    shown = "".join(parse(body).text)
    assert "https://x.example/<script>alert(1)</script>" in shown and "\"<b>\"@example.com" in shown
    # a search value comes back inside an attribute, escaped
    st, _, body = con.req(con.viewer, "GET", "/console/certs?q=%22%3E%3Cscript%3E")
    assert b"\"><script>" not in body
    inputs = [a for t, a in parse(body).tags if t == "input" and a.get("name") == "q"]
    assert inputs[0]["value"] == "\"><script>"


def test_admin_revokes_through_the_form(con, tmp_path):
    victim = con.pki.issue_client("formvictim", out=tmp_path)
    st, _, body = con.req(con.ops, "GET", f"/console/certs/{victim.serial}")
    p = parse(body)
    form = [a for t, a in p.tags if t == "form" and a.get("method") == "post"][0]
    assert form["action"] == f"/console/certs/{victim.serial}/revoke" and "data-confirm" in form
    csrf = [a["value"] for t, a in p.tags if t == "input" and a.get("name") == "csrf"][0]
    # without the token: refused, as a page
    st, h, body = con.req(con.ops, "POST", form["action"],
                          {"reason": "keyCompromise", "confirm": "yes"})
    assert st == 403 and h["content-type"].startswith("text/html") and b"CSRF" in body
    st, h, _ = con.req(con.ops, "POST", form["action"],
                       {"reason": "keyCompromise", "confirm": "yes", "csrf": csrf})
    assert st == 303 and h["location"] == f"/console/certs/{victim.serial}"
    st, _, body = con.req(con.ops, "GET", h["location"])
    assert re.search(rb'id="ocsp">revoked<', body)
    assert ocsp_status(con.pki, victim.cert, con.srv.url) == "revoked"


def test_token_page_shows_the_token_once_with_a_qr_code(con):
    st, _, body = con.req(con.ops, "GET", "/console/tokens")
    csrf = [a["value"] for t, a in parse(body).tags if t == "input" and a.get("name") == "csrf"][0]
    st, _, body = con.req(con.ops, "POST", "/console/tokens",
                          {"name": "Zoë-<x>", "csrf": csrf, "ttl": "1h"})
    if st == 400:  # a NAME the CA refuses is an error page, escaped
        assert b"<x>" not in body
    st, _, body = con.req(con.ops, "POST", "/console/tokens",
                          {"name": "frank", "csrf": csrf, "ttl": "1h", "sans": "email:f@example.com"})
    assert st == 200
    p = parse(body)
    assert [a for t, a in p.tags if t == "svg" and a.get("class") == "qr"]
    text = "".join(p.text)
    cmd = re.search(r"twoway enroll \S+ --name frank --ca-fingerprint [0-9a-f]{64} --token "
                    r"([0-9a-f]+)", text)
    assert cmd
    st, _, again = con.req(con.ops, "GET", "/console/tokens")
    assert cmd.group(1).encode() not in again and b"frank" in again


def test_pending_page_lists_and_decides(con):
    import base64
    from est_helpers import https, make_csr_der, make_key
    der = make_csr_der(make_key(), "gina")
    st, _, _ = https(con.srv, "POST", "/.well-known/est/simpleenroll", body=base64.b64encode(der),
                     headers={"Content-Type": "application/pkcs10"})
    assert st == 202
    st, _, body = con.req(con.ops, "GET", "/console/pending")
    p = parse(body)
    forms = [a["action"] for t, a in p.tags if t == "form" and a.get("method") == "post"]
    approve = [f for f in forms if f.endswith("/approve")][0]
    csrf = [a["value"] for t, a in p.tags if t == "input" and a.get("name") == "csrf"][0]
    st, h, _ = con.req(con.ops, "POST", approve, {"csrf": csrf})
    assert st == 303 and h["location"] == "/console/pending"
    assert b"CN=gina" not in con.req(con.ops, "GET", "/console/pending")[2]


def test_audit_page_escapes_and_filters(con):
    st, _, body = con.req(con.viewer, "GET", "/console/audit?action=revoke")
    p = parse(body)
    no_script_but_ours(p)
    rows = [ln for ln in body.decode().split("\n") if ln.startswith("<tr><td>")]
    assert rows and all("<td>revoke</td>" in r for r in rows)
    st, _, body = con.req(con.viewer, "GET", "/console/audit?subject=%3Cscript%3E")
    assert b"<script>" not in body.replace(b'<script src="/console/static/console.js" defer>', b"")


def test_errors_are_pages(con):
    for who, path, code in [(con.viewer, "/console/nope", 404),
                            (con.viewer, "/console/certs/ABC", 404),
                            (con.outsider, "/console/", 403), (None, "/console/", 401),
                            (con.viewer, "/console/certs?page=x", 400)]:
        st, h, body = con.req(who, "GET", path)
        assert st == code and h["content-type"].startswith("text/html"), (path, st)
        assert b"Traceback" not in body and b"<h1>%d</h1>" % code in body


def test_static_assets_and_redirect(con):
    st, h, body = con.req(con.viewer, "GET", "/console/static/console.js")
    assert st == 200 and h["content-type"].startswith("text/javascript") and b"confirm" in body
    st, h, body = con.req(con.viewer, "GET", "/console/static/console.css")
    assert st == 200 and h["content-type"].startswith("text/css")
    st, h, _ = con.req(con.viewer, "GET", "/console")
    assert st == 301 and h["location"] == "/console/"
