"""EST enrollment with manual approval (RFC 7030 §4.2.3): `ca serve --approval manual` answers a
simpleenroll without credentials with 202 + Retry-After and keeps the request; `ca pending`
lists it, `ca approve` / `ca reject` decide it (unique id prefix), and the client, sending the
same CSR again, gets its certificate (the same one every time after that) or 403. Token mode
(the default) is unchanged. `twoway enroll --wait` polls until approved. SQLite, and
PostgreSQL through a throwaway cluster when one can be started."""
import base64
import hashlib
import itertools
import json
import re
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_helpers import CaServer, audit_rows, b64_lines, https, make_csr_der, make_key, p7_certs
from est_helpers import token as make_token
from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import run, run_cmd, stop, twoway_bin
from x509_checks import openssl_verify

ENROLL = "/.well-known/est/simpleenroll"
CT = {"Content-Type": "application/pkcs10"}


def post(srv, der, headers=None):
    return https(srv, "POST", ENROLL, body=b64_lines(der), headers={**CT, **(headers or {})})


def pending(pki, *extra):
    r = pki.ca("pending", "--json", *extra, check=True)
    return json.loads(r.stdout)


def pub_der(key):
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_curl_202_then_approve_then_certificate(pki, tmp_path):
    key = tmp_path / "dev.key"
    run_cmd(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-subj", "/CN=dev1", "-addext",
             "subjectAltName=DNS:dev1.example", "-outform", "DER", "-out", tmp_path / "csr.der"],
            check=True)
    der = (tmp_path / "csr.der").read_bytes()
    (tmp_path / "csr.b64").write_text(b64_lines(der))
    rid = hashlib.sha256(der).hexdigest()
    with CaServer(pki, "--approval", "manual", "--retry-after", "7s") as srv:
        curl = ["curl", "-sS", "-D", "-", "--cacert", str(pki.chain), "--data-binary",
                "@" + str(tmp_path / "csr.b64"), "-H", "Content-Type: application/pkcs10",
                srv.url + ENROLL]
        out = run_cmd(curl, check=True).stdout
        assert re.search(r"^HTTP/1.1 202", out, re.M), out
        assert re.search(r"^Retry-After: 7\r?$", out, re.M), out
        assert rid[:16] in out
        # Sent again while waiting: the same request, not a second row.
        status, hdrs, body = post(srv, der)
        assert status == 202 and hdrs["retry-after"] == "7" and rid[:16].encode() in body
        rows = pending(pki)
        assert len(rows) == 1
        row = rows[0]
        assert row["id"] == rid and row["subject"] == "CN=dev1"
        assert row["sans"] == "dns:dev1.example" and row["peer"] == "127.0.0.1"
        assert row["profile"] == "client" and row["state"] == "pending"
        text = pki.ca("pending", check=True).stdout
        assert rid[:12] in text and "CN=dev1" in text and "127.0.0.1" in text

        r = pki.ca("approve", rid[:8], "--days", "5", check=True)
        assert rid in r.stdout and "Approved" in r.stdout
        status, _, body = post(srv, der)
        assert status == 200, body
        (cert,) = p7_certs(body)
        crt = tmp_path / "dev1.crt"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        assert openssl_verify(crt, pki.root, pki.intermediate,
                              purpose="sslclient").returncode == 0
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in eku
        days = (cert.not_valid_after - cert.not_valid_before).total_seconds() / 86400
        assert 4.9 < days < 5.1
        keypub = run_cmd(["openssl", "pkey", "-in", key, "-pubout"], check=True).stdout
        assert cert.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode() == keypub
        # The answer was lost? The same CSR gets the same certificate, not a second one.
        status, _, body2 = post(srv, der)
        assert status == 200 and p7_certs(body2)[0] == cert
    serial = format(cert.serial_number, "X")
    assert pending(pki) == []
    (done,) = pending(pki, "--all")
    assert done["state"] == "approved" and done["serial"] == serial
    actions = [(a, s) for a, _, s, _ in audit_rows(pki)]
    assert ("approve", None) in actions or ("approve", "") in actions
    assert ("enroll", serial) in actions
    assert sum(1 for a, s in actions if a == "issue" and s == serial) == 1
    assert "status: valid" in pki.ca("show", serial, check=True).stdout


def test_reject_gives_403_with_the_reason(pki):
    der = make_csr_der(make_key(), "intruder")
    rid = hashlib.sha256(der).hexdigest()
    with CaServer(pki, "--approval", "manual") as srv:
        status, hdrs, _ = post(srv, der)
        assert status == 202 and hdrs["retry-after"] == "60"
        # The same CSR under another profile label is refused, not re-queued.
        status, _, body = https(srv, "POST", "/.well-known/est/server/simpleenroll",
                                body=b64_lines(der), headers=CT)
        assert status == 403 and b"client certificate" in body
        r = pki.ca("reject", rid[:10], "--reason", "unknown device", check=True)
        assert "Rejected" in r.stdout
        status, _, body = post(srv, der)
        assert status == 403 and b"rejected: unknown device" in body
        r = pki.ca("approve", rid[:10])
        assert r.returncode == 1 and "already rejected" in r.stderr
    assert ("reject", "CN=intruder") in [(a, s) for a, s, _, _ in audit_rows(pki)]


def test_ids_unknown_ambiguous_malformed(pki):
    with CaServer(pki, "--approval", "manual") as srv:
        ids = []
        # 17 requests: two of them share a first hex digit.
        for i in range(17):
            der = make_csr_der(make_key(), f"dev{i}")
            assert post(srv, der)[0] == 202
            ids.append(hashlib.sha256(der).hexdigest())
    assert len(pending(pki)) == 17
    first = next(c for c in "0123456789abcdef" if sum(i[0] == c for i in ids) > 1)
    r = pki.ca("approve", first)
    assert r.returncode == 2 and "ambiguous" in r.stderr, r.stderr
    unknown = next("".join(p) for p in itertools.product("0123456789abcdef", repeat=6)
                   if not any(i.startswith("".join(p)) for i in ids))
    r = pki.ca("reject", unknown)
    assert r.returncode == 1 and "no enrollment request" in r.stderr, r.stderr
    r = pki.ca("approve", "not-hex")
    assert r.returncode == 2 and "hex" in r.stderr
    r = pki.ca("reject", ids[0][:12], "--reason", "two\nlines")
    assert r.returncode == 2
    assert len(pending(pki)) == 17  # nothing was decided


def test_token_mode_is_unchanged(pki):
    der = make_csr_der(make_key(), "plain")
    with CaServer(pki) as srv:
        status, hdrs, _ = post(srv, der)
        assert status == 401 and "basic" in hdrs["www-authenticate"].lower()
    assert pending(pki, "--all") == []


def test_manual_mode_still_takes_tokens(pki):
    tok, _ = make_token(pki, "tokdev")
    auth = "Basic " + base64.b64encode(f"tokdev:{tok}".encode()).decode()
    with CaServer(pki, "--approval", "manual") as srv:
        status, _, body = post(srv, make_csr_der(make_key(), "tokdev"),
                               {"Authorization": auth})
        assert status == 200, body
        status, _, _ = post(srv, make_csr_der(make_key(), "tokdev"), {"Authorization": auth})
        assert status == 401  # a bad token is refused, not queued
    assert pending(pki, "--all") == []


def test_bounded_queue_and_bad_csrs(pki):
    with CaServer(pki, "--approval", "manual", "--max-pending", "2") as srv:
        assert post(srv, make_csr_der(make_key(), "q1"))[0] == 202
        assert post(srv, make_csr_der(make_key(), "q2"))[0] == 202
        status, hdrs, body = post(srv, make_csr_der(make_key(), "q3"))
        assert status == 503 and "retry-after" in hdrs and b"wait for approval" in body
        status, _, body = https(srv, "POST", ENROLL, body=b"bm90IGEgQ1NS", headers=CT)
        assert status == 400
        status, _, body = post(srv, make_csr_der(make_key(), "bad/name"))
        assert status == 400 and b"CN" in body
        # A NUL inside the CN is refused with its reason, not cut short and queued.
        status, _, body = post(srv, make_csr_der(make_key(), "dev1\x00evil"))
        assert status == 400 and b"NUL" in body
    assert len(pending(pki)) == 2


def test_one_certificate_per_approval_across_two_servers(pki):
    """Two servers on one inventory, many clients re-sending the approved CSR at once: one
    certificate is issued, and every answer is that certificate."""
    import concurrent.futures
    der = make_csr_der(make_key(), "shared", ["dns:shared.example"])
    rid = hashlib.sha256(der).hexdigest()
    with CaServer(pki, "--approval", "manual", "--rate", "1000", "--burst", "1000") as a, \
            CaServer(pki, "--approval", "manual", "--rate", "1000", "--burst", "1000") as b:
        assert post(a, der)[0] == 202
        assert post(b, der)[0] == 202
        pki.ca("approve", rid[:12], check=True)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: post((a, b)[i % 2], der), range(16)))
    assert [st for st, _, _ in answers] == [200] * 16
    certs = {p7_certs(body)[0].serial_number for _, _, body in answers}
    assert len(certs) == 1
    serial = format(certs.pop(), "X")
    issued = [s for act, _, s, res in audit_rows(pki) if act == "issue" and res == "ok"]
    assert issued.count(serial) == 1
    assert sum(1 for act, subj, _, _ in audit_rows(pki)
               if act == "issue" and subj == "CN=shared") == 1


def test_enroll_waits_for_approval_and_resumes_its_request(pki, tmp_path):
    import os
    import stat
    with CaServer(pki, "--approval", "manual", "--retry-after", "1s") as srv:
        fp = pki.root_sha256
        r = run(["enroll", srv.url, "--name", "waiter", "--ca-fingerprint", fp,
                 "--out", tmp_path / "none"])
        assert r.returncode == 2 and "--wait" in r.stderr
        out = tmp_path / "out"
        r = run(["enroll", srv.url, "--name", "waiter", "--ca-fingerprint", fp, "--wait", "2s",
                 "--out", out])
        assert r.returncode == 1 and "no decision within" in r.stderr, r.stderr
        assert "HTTP 202" in r.stderr and "asking again in 1 s" in r.stderr
        # The request is kept, so a later run asks about the same one.
        pkey, pcsr = out / "waiter.pending.key", out / "waiter.pending.csr"
        assert stat.S_IMODE(os.stat(pkey).st_mode) == 0o600
        rid = hashlib.sha256(pcsr.read_bytes()).hexdigest()
        assert [x["id"] for x in pending(pki) if x["name"] == "waiter"] == [rid]
        p = subprocess.Popen([twoway_bin(), "enroll", srv.url, "--name", "waiter",
                              "--ca-fingerprint", fp, "--wait", "60s", "--out", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    a == "request" for a, _, _, _ in audit_rows(pki)):
                time.sleep(0.2)
            pki.ca("approve", rid[:12], check=True)
            so, se = p.communicate(timeout=30)
        finally:
            stop(p)
        assert p.returncode == 0, se
        assert "Enrolled waiter" in so and "asking again about the request" in se
        assert openssl_verify(out / "waiter.crt", pki.root, pki.intermediate,
                              purpose="sslclient").returncode == 0
        assert not pkey.exists() and not pcsr.exists()
        assert len([x for x in pending(pki, "--all") if x["name"] == "waiter"]) == 1

        # Rejected: reported, and the kept request is dropped so a new run starts afresh.
        rout = tmp_path / "rej"
        r = run(["enroll", srv.url, "--name", "rej", "--ca-fingerprint", fp, "--wait", "1s",
                 "--out", rout])
        assert r.returncode == 1
        rid = hashlib.sha256((rout / "rej.pending.csr").read_bytes()).hexdigest()
        pki.ca("reject", rid, "--reason", "not ours", check=True)
        r = run(["enroll", srv.url, "--name", "rej", "--ca-fingerprint", fp, "--wait", "30s",
                 "--out", rout])
        assert r.returncode == 1 and "rejected: not ours" in r.stderr, r.stderr
        assert not (rout / "rej.pending.key").exists()
        assert not (rout / "rej.crt").exists()


# ------------------------------------------------------------------------- PostgreSQL

_db_names = itertools.count(1)


def test_manual_approval_on_postgresql(pg, pki):
    uri = pg.create_database("approval%d" % next(_db_names))
    run(["ca", "migrate", "--from", "sqlite:%s" % pki.db, "--to", uri], check=True)
    pki.db.rename(pki.dir / "ca.db.migrated")
    with open(pki.ca_dir / "ca.conf", "a") as f:
        f.write("store = %s\n" % uri)
    key = make_key()
    der = make_csr_der(key, "pgdev", ["dns:pgdev.example"])
    other = make_csr_der(make_key(), "pgother")
    rid = hashlib.sha256(der).hexdigest()
    with CaServer(pki, "--approval", "manual") as srv:
        assert post(srv, der)[0] == 202
        assert post(srv, der)[0] == 202
        assert post(srv, other)[0] == 202
        rows = pending(pki)
        assert sorted(r["name"] for r in rows) == ["pgdev", "pgother"]
        pki.ca("approve", rid[:12], check=True)
        pki.ca("reject", hashlib.sha256(other).hexdigest()[:12], "--reason", "no", check=True)
        status, _, body = post(srv, der)
        assert status == 200
        (cert,) = p7_certs(body)
        assert pub_der(key) == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert post(srv, der)[2] == body
        status, _, body = post(srv, other)
        assert status == 403 and b"rejected: no" in body
    assert pending(pki) == []
    states = {r["name"]: r["state"] for r in pending(pki, "--all")}
    assert states == {"pgdev": "approved", "pgother": "rejected"}
