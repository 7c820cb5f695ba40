"""`twoway ca serve --console`: the JSON API at /api/v1/ and its roles, CSRF and audit,
through python's ssl and curl. No certificate: 401; a certificate of this CA outside every
rule: 403; console-allow: reads, 403 on writes; console-admin-allow with the admin profile:
writes, each audited with the admin's subject and serial; a CN that matches an admin rule
without the admin profile only reads. Writes without the session's CSRF token, or from
another origin, are refused."""

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from console_helpers import Console, audit, ocsp_status
from est_helpers import enroll, https, make_csr_der, make_key
from twoway_testlib import Pki

READS = ["/api/v1/session", "/api/v1/overview", "/api/v1/certs", "/api/v1/tokens",
         "/api/v1/pending", "/api/v1/audit"]


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console-api")
    pki = Pki(tmp)
    c = Console(pki, tmp, "--approval", "manual")
    c.tmp = tmp
    c.alice = pki.issue_client("alice", san="email:alice@example.com", out=tmp / "alice")
    yield c
    c.stop()


def test_admin_profile_only_from_ca_issue_admin(con):
    rows = {r["name"]: r for r in con.json(con.ops, "GET", "/api/v1/certs?per_page=1000")[1]["items"]}
    assert rows["ops"]["profile"] == "admin"
    assert rows["imposter"]["profile"] == "client"
    r = con.pki.ca("token", "x", "--profile", "admin")
    assert r.returncode == 2 and "admin" in r.stderr
    st, j = con.json(con.ops, "POST", "/api/v1/tokens",
                     {"name": "x", "profile": "admin", "csrf": con.csrf(con.ops)})
    assert st == 400 and "client or server" in j["error"]


def test_start_line_says_who_may_use_the_console(con):
    out = con.srv.output()
    assert "console at /console/ and /api/v1/: read: cn:viewer, cn:imposter" in out
    assert "admin (admin profile only): cn:ops, cn:imposter" in out


def test_nobody_by_default(tmp_path):
    from est_helpers import CaServer
    pki = Pki(tmp_path)
    ops = pki.issue("admin", "ops", out=tmp_path / "ops")
    with CaServer(pki, "--console") as srv:
        assert "nobody may use it" in srv.output()
        st, _, body = https(srv, "GET", "/api/v1/session", cert=ops.cert, key=ops.key)
        assert st == 403 and b"no console-allow rule" in body


@pytest.mark.parametrize("path", READS + ["/console/"])
def test_no_certificate_is_refused(con, path):
    st, h, body = con.req(None, "GET", path)
    assert st == 401
    assert b"client certificate" in body
    code, _ = con.curl(None, "GET", path)
    assert code == 401


@pytest.mark.parametrize("path", READS)
def test_outsider_is_forbidden(con, path):
    st, j = con.json(con.outsider, "GET", path)
    assert st == 403 and "no console-allow rule" in j["error"]
    code, body = con.curl(con.outsider, "GET", path)
    assert code == 403


@pytest.mark.parametrize("who", ["viewer", "imposter", "ops"])
@pytest.mark.parametrize("path", READS)
def test_readers_read(con, who, path):
    st, j = con.json(getattr(con, who), "GET", path)
    assert st == 200, j
    code, body = con.curl(getattr(con, who), "GET", path)
    assert code == 200 and json.loads(body) == j or path in ("/api/v1/audit", "/api/v1/overview")


def test_session_names_the_role(con):
    assert con.json(con.viewer, "GET", "/api/v1/session")[1]["role"] == "read"
    assert con.json(con.imposter, "GET", "/api/v1/session")[1]["role"] == "read"
    s = con.json(con.ops, "GET", "/api/v1/session")[1]
    assert s["role"] == "admin" and s["subject"] == "CN=ops" and s["serial"] == con.ops.serial
    assert re.fullmatch(r"[0-9a-f]{64}", s["csrf"])
    assert s["csrf"] != con.csrf(con.viewer)


WRITES = [("/api/v1/certs/{alice}/revoke", {"reason": "keyCompromise", "confirm": "yes"}),
          ("/api/v1/tokens", {"name": "bob"}),
          ("/api/v1/pending/00/approve", {}),
          ("/api/v1/pending/00/reject", {})]


@pytest.mark.parametrize("who", ["viewer", "imposter"])
@pytest.mark.parametrize("path,form", WRITES)
def test_read_only_certificates_cannot_write(con, who, path, form):
    cert = getattr(con, who)
    form = dict(form, csrf=con.csrf(cert))
    st, j = con.json(cert, "POST", path.format(alice=con.alice.serial), form)
    assert st == 403 and "read-only" in j["error"]
    assert con.json(con.ops, "GET", f"/api/v1/certs/{con.alice.serial}")[1]["status"] == "valid"


@pytest.mark.parametrize("path,form", WRITES)
def test_writes_need_the_csrf_token(con, path, form):
    path = path.format(alice=con.alice.serial)
    st, j = con.json(con.ops, "POST", path, dict(form))
    assert st == 403 and "CSRF" in j["error"]
    st, j = con.json(con.ops, "POST", path, dict(form, csrf="0" * 64))
    assert st == 403 and "CSRF" in j["error"]
    # the viewer's token is not the admin's
    st, j = con.json(con.ops, "POST", path, dict(form, csrf=con.csrf(con.viewer)))
    assert st == 403
    # from another site, even with the right token
    st, j = con.json(con.ops, "POST", path, dict(form, csrf=con.csrf(con.ops)),
                     headers={"Origin": "https://evil.example"})
    assert st == 403 and "another site" in j["error"]
    st, j = con.json(con.ops, "POST", path, dict(form, csrf=con.csrf(con.ops)),
                     headers={"Sec-Fetch-Site": "cross-site"})
    assert st == 403
    code, _ = con.curl(con.ops, "POST", path, form)
    assert code == 403


def test_get_cannot_write(con):
    st, j = con.json(con.ops, "GET", f"/api/v1/certs/{con.alice.serial}/revoke")
    assert st == 405


def test_revoke_with_confirmation_is_audited_and_ocsp_says_revoked(con, tmp_path):
    victim = con.pki.issue_client("victim", out=tmp_path)
    path = f"/api/v1/certs/{victim.serial}/revoke"
    tok = con.csrf(con.ops)
    st, j = con.json(con.ops, "POST", path, {"reason": "keyCompromise", "csrf": tok})
    assert st == 400 and "confirm=yes" in j["error"]
    st, j = con.json(con.ops, "POST", path, {"reason": "nonsense", "confirm": "yes", "csrf": tok})
    assert st == 400
    assert ocsp_status(con.pki, victim.cert, con.srv.url) == "good"
    st, j = con.json(con.ops, "POST", path,
                     {"reason": "keyCompromise", "confirm": "yes", "csrf": tok})
    assert st == 200 and j["status"] == "revoked"
    assert ocsp_status(con.pki, victim.cert, con.srv.url) == "revoked"
    d = con.json(con.viewer, "GET", f"/api/v1/certs/{victim.serial}")[1]
    assert d["status"] == "revoked" and d["revoke_reason"] == "keyCompromise"
    assert d["ocsp"] == "revoked"
    st, j = con.json(con.ops, "POST", path,
                     {"reason": "keyCompromise", "confirm": "yes", "csrf": tok})
    assert st == 409
    # the console's rows name the admin (pki adds its own row naming the certificate)
    rows = [r for r in audit(con.pki) if r[0] == "revoke" and victim.serial in r[3]
            and r[3].endswith("(console)")]
    assert all(r[1:3] == ("CN=ops", con.ops.serial) for r in rows)
    # refusals are audited too: no confirmation, bad reason, done, already revoked
    assert "confirm=yes is required" in rows[0][3] and "unknown reason" in rows[1][3]
    assert rows[2][3].startswith("ok: revoke " + victim.serial + " keyCompromise")
    assert rows[3][3].startswith("revoke " + victim.serial) and "already" in rows[3][3]
    assert len(rows) == 4
    # the CRL was rewritten: openssl sees the revocation too
    crl = subprocess.run(["openssl", "crl", "-in", str(con.pki.crl), "-noout", "-text"],
                         capture_output=True, text=True, check=True).stdout
    assert victim.serial in crl.replace(":", "")


def test_revoke_by_curl(con, tmp_path):
    victim = con.pki.issue_client("victim2", out=tmp_path)
    tok = con.csrf(con.ops)
    code, body = con.curl(con.ops, "POST", f"/api/v1/certs/{victim.serial}/revoke",
                          {"reason": "superseded", "confirm": "yes"},
                          headers=[f"X-CSRF-Token: {tok}"])
    assert code == 200, body
    assert ocsp_status(con.pki, victim.cert, con.srv.url) == "revoked"


def test_token_from_the_api_enrolls(con, tmp_path):
    tok = con.csrf(con.ops)
    st, j = con.json(con.ops, "POST", "/api/v1/tokens",
                     {"name": "carol", "ttl": "1h", "csrf": tok})
    assert st == 201, j
    cmd = j["command"].split()
    assert cmd[:2] == ["twoway", "enroll"] and j["token"] in cmd
    r = enroll(con.srv, "carol", j["token"], tmp_path, fingerprint=cmd[cmd.index("--ca-fingerprint") + 1])
    assert r.returncode == 0, r.stderr
    items = con.json(con.viewer, "GET", "/api/v1/tokens")[1]["items"]
    carol = [t for t in items if t["name"] == "carol"]
    assert carol and carol[0]["state"] == "used" and carol[0]["serial"]
    assert "token" not in carol[0]  # the secret is shown once, never listed
    assert any(r[0] == "token" and r[1] == "CN=ops" and "carol" in r[3] for r in audit(con.pki))
    st, j = con.json(con.ops, "POST", "/api/v1/tokens", {"name": "a/b", "csrf": tok})
    assert st == 400


def test_pending_approve_and_reject(con, tmp_path):
    ids = []
    for cn in ("dave", "eve"):
        der = make_csr_der(make_key(), cn)
        import base64
        st, h, _ = https(con.srv, "POST", "/.well-known/est/simpleenroll",
                         body=base64.b64encode(der), headers={"Content-Type": "application/pkcs10"})
        assert st == 202
    items = con.json(con.viewer, "GET", "/api/v1/pending")[1]["items"]
    by = {p["name"]: p["id"] for p in items}
    tok = con.csrf(con.ops)
    st, j = con.json(con.ops, "POST", f"/api/v1/pending/{by['dave'][:12]}/approve", {"csrf": tok})
    assert st == 200 and j["state"] == "approved"
    st, j = con.json(con.ops, "POST", f"/api/v1/pending/{by['eve']}/reject",
                     {"csrf": tok, "reason": "unknown device"})
    assert st == 200
    st, j = con.json(con.ops, "POST", f"/api/v1/pending/{by['eve']}/approve", {"csrf": tok})
    assert st == 409
    left = con.json(con.viewer, "GET", "/api/v1/pending")[1]["items"]
    assert not [p for p in left if p["name"] in ("dave", "eve")]
    acts = [(r[0], r[1], r[2]) for r in audit(con.pki) if r[0] in ("approve", "reject")]
    assert ("approve", "CN=ops", con.ops.serial) in acts
    assert ("reject", "CN=ops", con.ops.serial) in acts


def test_inventory_search_filter_sort_page_csv(con, tmp_path):
    for i in range(5):
        con.pki.issue_client(f"bulk{i}", out=tmp_path)
    j = con.json(con.viewer, "GET", "/api/v1/certs?q=bulk&sort=name&per_page=2")[1]
    assert j["total"] == 5 and [r["name"] for r in j["items"]] == ["bulk0", "bulk1"]
    j = con.json(con.viewer, "GET", "/api/v1/certs?q=bulk&sort=name&order=desc&per_page=2&page=3")[1]
    assert [r["name"] for r in j["items"]] == ["bulk0"]
    j = con.json(con.viewer, "GET", "/api/v1/certs?q=ALICE%40example")[1]
    assert [r["name"] for r in j["items"]] == ["alice"]
    fp = con.json(con.viewer, "GET", f"/api/v1/certs/{con.alice.serial}")[1]["sha256"]
    j = con.json(con.viewer, "GET", f"/api/v1/certs?q={fp[10:30]}")[1]
    assert [r["name"] for r in j["items"]] == ["alice"]
    j = con.json(con.viewer, "GET", "/api/v1/certs?status=valid&profile=admin")[1]
    assert [r["name"] for r in j["items"]] == ["ops"]
    j = con.json(con.viewer, "GET", "/api/v1/certs?expiring=60&q=bulk")[1]
    assert j["total"] == 5
    for bad in ("status=nope", "sort=evil", "page=0", "per_page=100000", "expiring=x"):
        st, j = con.json(con.viewer, "GET", "/api/v1/certs?" + bad)
        assert st == 400 and j["error"]
    st, h, body = con.req(con.viewer, "GET", "/api/v1/certs?q=bulk&format=csv&sort=name")
    assert st == 200 and h["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0][:2] == ["serial", "name"] and [r[1] for r in rows[1:]] == [f"bulk{i}" for i in range(5)]


def test_certificate_downloads(con):
    st, h, pem = con.req(con.viewer, "GET", f"/api/v1/certs/{con.alice.serial}/pem")
    assert st == 200 and pem == con.alice.cert.read_bytes()
    st, h, der = con.req(con.viewer, "GET", f"/api/v1/certs/{con.alice.serial}/der")
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode()
    assert con.alice.serial in out
    d = con.json(con.viewer, "GET", f"/api/v1/certs/{con.alice.serial}")[1]
    assert d["subject"] == "CN=alice" and d["sans"] == "email:alice@example.com"
    assert d["key"].startswith("EC 256") and d["ocsp"] == "good" and len(d["chain"]) == 3
    assert con.json(con.viewer, "GET", "/api/v1/certs/ABCDEF")[0] == 404
    assert con.req(con.viewer, "GET", "/api/v1/certs/..%2f")[0] == 404


def test_audit_filter_newest_first(con):
    j = con.json(con.viewer, "GET", "/api/v1/audit?action=revoke")[1]
    assert j["items"] and all(r["action"] == "revoke" for r in j["items"])
    ids = [r["id"] for r in j["items"]]
    assert ids == sorted(ids, reverse=True)
    j = con.json(con.viewer, "GET", "/api/v1/audit?subject=cn%3Dops&per_page=1")[1]
    assert len(j["items"]) == 1 and j["total"] >= 1


def test_overview_counts(con):
    j = con.json(con.viewer, "GET", "/api/v1/overview")[1]
    assert j["store"]["backend"] == "sqlite" and j["store"]["healthy"] is True
    assert j["profile"]["admin"] == 1
    assert sum(j["expiring_per_week"]) == j["status"]["valid"] or sum(j["expiring_per_week"]) <= j["status"]["valid"]
    assert sum(j["revoked_per_week"]) == j["status"]["revoked"]


def test_security_headers_on_every_answer(con):
    for who, path in [(None, "/api/v1/certs"), (con.viewer, "/api/v1/certs"),
                      (con.viewer, "/console/"), (con.outsider, "/console/certs")]:
        st, h, _ = con.req(who, "GET", path)
        assert "script-src 'self'" in h["content-security-policy"]
        assert "'unsafe-inline'" not in h["content-security-policy"]
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "same-origin"
        assert h["strict-transport-security"].startswith("max-age=")
        assert h["x-content-type-options"] == "nosniff"
        assert "set-cookie" not in h


def test_revoked_admin_is_locked_out(tmp_path):
    pki = Pki(tmp_path)
    c = Console(pki, tmp_path)
    try:
        assert c.json(c.ops, "GET", "/api/v1/session")[0] == 200
        pki.revoke("ops")
        st, j = c.json(c.ops, "GET", "/api/v1/session")
        assert st == 403 and "revoked" in j["error"]
    finally:
        c.stop()
