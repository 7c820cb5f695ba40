"""First enrollment over EST (RFC 7030) with one-time tokens: twoway's own client, plain curl
+ openssl, trust bootstrap by fingerprint, token single use (also across two servers on one
inventory), status codes, profile labels, limits."""

import concurrent.futures
import os
import sqlite3
import stat
import subprocess

import pytest

from est_helpers import (CaServer, audit_rows, b64_lines, enroll, https, make_csr_der, make_key,
                         p7_certs, token)
from twoway_testlib import Pki, run, run_cmd
from x509_checks import cn, load_cert, openssl_verify, sans

EST = "/.well-known/est"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("est-enroll"))
    with CaServer(pki) as srv:
        yield pki, srv


def test_token_is_printed_alone_on_the_last_line_and_stored_as_a_hash(env):
    pki, _ = env
    tok, out = token(pki, "t-hash", "--ttl", "1h")
    assert len(tok) >= 32 and all(c in "0123456789abcdef" for c in tok)
    assert pki.root_sha256 in out
    db = sqlite3.connect(str(pki.db))
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert tok not in dump
    assert ("token", "CN=t-hash", None, "ok") in audit_rows(pki)


def test_enroll_with_fingerprint_writes_key_cert_chain_root(env, tmp_path):
    pki, srv = env
    tok, _ = token(pki, "alice", "--san", "email:alice@example.com")
    r = enroll(srv, "alice", tok, tmp_path, "--san", "email:alice@example.com")
    assert r.returncode == 0, r.stderr
    key, crt, chain, root = (tmp_path / f for f in ("alice.key", "alice.crt", "alice.chain.pem",
                                                    "ca.pem"))
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert root.read_bytes() == pki.root.read_bytes()
    assert openssl_verify(crt, pki.root, pki.intermediate, purpose="sslclient").returncode == 0
    cert = load_cert(crt)
    assert cn(cert) == "alice" and sans(cert) == ["email:alice@example.com"]
    # The key never left: the certificate is for the key on disk.
    mod = run_cmd(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=True).stdout
    pub = run_cmd(["openssl", "pkey", "-in", key, "-pubout"], check=True).stdout
    assert mod == pub
    assert chain.read_text().count("BEGIN CERTIFICATE") == 2
    r = pki.ca("show", "alice", check=True)
    assert "status: valid" in r.stdout
    assert any(a == "enroll" and res == "ok: token" for a, _, _, res in audit_rows(pki))


def test_wrong_fingerprint_is_refused_before_anything_is_sent(env, tmp_path):
    pki, srv = env
    tok, _ = token(pki, "mallory")
    r = enroll(srv, "mallory", tok, tmp_path, fingerprint="00" * 32)
    assert r.returncode == 1
    assert "fingerprint" in r.stderr and "refusing to trust" in r.stderr
    assert not (tmp_path / "mallory.key").exists() and not (tmp_path / "ca.pem").exists()
    # The token was not spent: the right fingerprint still works.
    assert enroll(srv, "mallory", tok, tmp_path).returncode == 0


def test_enroll_with_ca_file_and_p12(env, tmp_path):
    pki, srv = env
    tok, _ = token(pki, "carol")
    pw = tmp_path / "pw"
    pw.write_text("p12-secret\n")
    r = run(["enroll", srv.url, "--name", "carol", "--token", tok, "--ca", pki.chain, "--out",
             tmp_path, "--p12", "--p12-pass-file", pw])
    assert r.returncode == 0, r.stderr
    info = run_cmd(["openssl", "pkcs12", "-in", tmp_path / "carol.p12", "-noout", "-passin",
                    f"file:{pw}"])
    assert info.returncode == 0, info.stderr


def test_token_is_single_use(env, tmp_path):
    pki, srv = env
    tok, _ = token(pki, "dave")
    assert enroll(srv, "dave", tok, tmp_path / "a").returncode == 0
    r = enroll(srv, "dave", tok, tmp_path / "b")
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "already used" in r.stderr


def test_parallel_enrollments_with_one_token_get_exactly_one_certificate(env, tmp_path):
    pki, srv = env
    tok, _ = token(pki, "erin")
    with CaServer(pki) as second:  # another process on the same inventory
        jobs = [(srv if i % 2 else second, tmp_path / f"o{i}") for i in range(6)]
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
            results = list(ex.map(lambda j: enroll(j[0], "erin", tok, j[1]), jobs))
    ok = [r for r in results if r.returncode == 0]
    assert len(ok) == 1, [r.stderr for r in results]
    assert all("HTTP 401" in r.stderr for r in results if r.returncode != 0)
    listed = pki.ca("list", "--name", "erin", "--json", check=True).stdout
    assert listed.count('"serial"') == 1


def test_curl_and_openssl_recipe(env, tmp_path):
    pki, srv = env
    tok, _ = token(pki, "frank")
    key, csr_der = tmp_path / "frank.key", tmp_path / "frank.csr"
    run_cmd(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-subj", "/CN=frank", "-outform", "DER", "-out", csr_der],
            check=True)
    b64 = tmp_path / "csr.b64"
    b64.write_text(b64_lines(csr_der.read_bytes(), 76, "\r\n"))
    cacerts = run_cmd(["curl", "-sS", "--cacert", pki.chain, f"{srv.url}{EST}/cacerts"],
                      check=True).stdout
    root = p7_certs(cacerts.encode())
    assert any(c.subject == c.issuer for c in root)
    r = run_cmd(["curl", "-sS", "-f", "--cacert", pki.chain, "--data-binary", f"@{b64}",
                 "-H", "Content-Type: application/pkcs10", "-u", f"frank:{tok}",
                 f"{srv.url}{EST}/simpleenroll"], check=True)
    # -A: the answer is one line of base64 with no line break at all (RFC 8951).
    assert "\n" not in r.stdout and "\r" not in r.stdout
    pem = subprocess.run("openssl base64 -d -A | openssl pkcs7 -inform DER -print_certs",
                         shell=True, input=r.stdout.encode(), capture_output=True, check=True)
    (tmp_path / "frank.crt").write_bytes(pem.stdout)
    assert cn(load_cert(tmp_path / "frank.crt")) == "frank"
    assert openssl_verify(tmp_path / "frank.crt", pki.root, pki.intermediate).returncode == 0


@pytest.mark.parametrize("layout", ["one-line", "crlf-76", "lf-64-cte"])
def test_base64_with_any_line_breaks(env, layout):
    pki, srv = env
    name = f"lb-{layout}"
    tok, _ = token(pki, name)
    der = make_csr_der(make_key(), name)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(name, tok)}
    if layout == "one-line":
        body = b64_lines(der, 10**6, "")
    elif layout == "crlf-76":
        body = b64_lines(der, 76, "\r\n")
    else:
        body = b64_lines(der, 64, "\n")
        headers["Content-Transfer-Encoding"] = "base64"
    status, hdrs, data = https(srv, "POST", f"{EST}/simpleenroll", body, headers)
    assert status == 200, data
    assert hdrs["content-type"].startswith("application/pkcs7-mime")
    assert "smime-type=certs-only" in hdrs["content-type"]
    assert hdrs["content-transfer-encoding"] == "base64"
    assert [cn(c) for c in p7_certs(data)] == [name]


def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_missing_or_bad_credentials_get_401_with_www_authenticate(env):
    pki, srv = env
    der = b64_lines(make_csr_der(make_key(), "nobody"))
    for headers in ({}, {"Authorization": basic("nobody", "f" * 40)},
                    {"Authorization": "Bearer x"}):
        headers["Content-Type"] = "application/pkcs10"
        status, hdrs, data = https(srv, "POST", f"{EST}/simpleenroll", der, headers)
        assert status == 401, data
        assert hdrs["www-authenticate"] == 'Basic realm="twoway est"'


def test_token_for_another_name_is_refused(env):
    pki, srv = env
    tok, _ = token(pki, "gina")
    der = b64_lines(make_csr_der(make_key(), "harry"))
    status, _, data = https(srv, "POST", f"{EST}/simpleenroll", der,
                            {"Authorization": basic("harry", tok)})
    assert status == 401 and b"not for 'harry'" in data


def test_malformed_csr_gets_400_with_a_plain_reason(env):
    pki, srv = env
    tok, _ = token(pki, "ivan")
    for body in ("not base64 !!!", b64_lines(b"\x30\x03\x02\x01\x00"), ""):
        status, hdrs, data = https(srv, "POST", f"{EST}/simpleenroll", body,
                                   {"Authorization": basic("ivan", tok)})
        assert status == 400, data
        assert hdrs["content-type"].startswith("text/plain") and len(data.strip()) > 5
    # A refused request does not spend the token.
    der = b64_lines(make_csr_der(make_key(), "ivan"))
    status, _, _ = https(srv, "POST", f"{EST}/simpleenroll", der,
                         {"Authorization": basic("ivan", tok)})
    assert status == 200


def test_san_outside_the_token_is_refused_with_403(env):
    pki, srv = env
    tok, _ = token(pki, "judy", "--san", "dns:judy.example.com", "--profile", "server")
    der = b64_lines(make_csr_der(make_key(), "judy", ["dns:evil.example.com"]))
    status, _, data = https(srv, "POST", f"{EST}/server/simpleenroll", der,
                            {"Authorization": basic("judy", tok)})
    assert status == 403 and b"evil.example.com" in data
    der = b64_lines(make_csr_der(make_key(), "judy", ["dns:judy.example.com"]))
    status, _, data = https(srv, "POST", f"{EST}/client/simpleenroll", der,
                            {"Authorization": basic("judy", tok)})
    assert status == 403 and b"server certificate" in data
    status, _, data = https(srv, "POST", f"{EST}/server/simpleenroll", der,
                            {"Authorization": basic("judy", tok)})
    assert status == 200, data
    cert = p7_certs(data)[0]
    assert sans(cert) == ["dns:judy", "dns:judy.example.com"]


def test_csrattrs_healthz_404_405(env):
    _, srv = env
    assert https(srv, "GET", f"{EST}/csrattrs")[0] == 200  # contents: test_est_csrattrs.py
    assert https(srv, "GET", f"{EST}/client/csrattrs")[0] == 200
    assert https(srv, "GET", "/healthz")[2] == b"ok\n"
    assert https(srv, "GET", f"{EST}/nothing")[0] == 404
    assert https(srv, "GET", f"{EST}/bogus/cacerts")[0] == 404
    status, hdrs, _ = https(srv, "GET", f"{EST}/simpleenroll")
    assert status == 405 and hdrs["allow"] == "POST"


def test_oversized_body_is_refused(env):
    """A body over the limit is refused from its Content-Length, before it is read."""
    import socket
    from est_helpers import context
    pki, srv = env
    ctx = context(pki.chain)
    with socket.create_connection((srv.host, srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=srv.host) as tls:
            tls.sendall(f"POST {EST}/simpleenroll HTTP/1.1\r\nHost: x\r\n"
                        f"Content-Length: {200 * 1024}\r\n\r\n".encode())
            head = tls.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head
    assert srv.proc.poll() is None


def test_access_log_lines(env):
    _, srv = env
    https(srv, "GET", "/healthz?probe=1")
    line = srv.wait_log(r'"path":"/healthz".*"status":200')
    assert '"peer":"127.0.0.1"' in line and '"method":"GET"' in line


def test_rate_limit_per_address(tmp_path):
    pki = Pki(tmp_path)
    with CaServer(pki, "--rate", "1", "--burst", "2") as srv:
        codes = [https(srv, "GET", "/healthz") for _ in range(5)]
        assert [c[0] for c in codes[:2]] == [200, 200]
        limited = [c for c in codes if c[0] == 429]
        assert limited and all(int(c[1]["retry-after"]) >= 1 for c in limited)
        assert srv.proc.poll() is None


def test_server_certificate_is_made_once_and_reissued_for_new_sans(tmp_path):
    pki = Pki(tmp_path)
    crt, key = pki.dir / "serve" / "server.crt", pki.dir / "serve" / "server.key"
    with CaServer(pki):
        pass
    first = load_cert(crt)
    assert {"dns:localhost", "ip:127.0.0.1"} <= set(sans(first))
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert openssl_verify(crt, pki.root, pki.intermediate, purpose="sslserver").returncode == 0
    with CaServer(pki):
        pass
    assert load_cert(crt).serial_number == first.serial_number
    with CaServer(pki, "--san", "dns:ca.example.com") as srv:
        r = run_cmd(["curl", "-sS", "--cacert", pki.root, "--resolve",
                     f"ca.example.com:{srv.port}:127.0.0.1",
                     f"https://ca.example.com:{srv.port}/healthz"])
        assert r.stdout == "ok\n", r.stderr
    again = load_cert(crt)
    assert again.serial_number != first.serial_number
    assert "dns:ca.example.com" in sans(again)


def test_ipv6_listener_and_enroll(tmp_path):
    pki = Pki(tmp_path / "pki")
    tok, _ = token(pki, "v6")
    with CaServer(pki, listen="[::1]:0") as srv:
        assert srv.url.startswith("https://[::1]:")
        r = enroll(srv, "v6", tok, tmp_path / "out")
        assert r.returncode == 0, r.stderr
        assert cn(load_cert(tmp_path / "out" / "v6.crt")) == "v6"


def test_garbage_never_crashes_the_server(env):
    """Not TLS at all, TLS then not HTTP, oversized headers: each connection fails alone."""
    import socket
    from est_helpers import context
    pki, srv = env
    with socket.create_connection((srv.host, srv.port), timeout=5) as raw:
        raw.sendall(b"\x00\xff" * 512 + b"GET / HTTP/1.1\r\n\r\n")
        try:
            raw.recv(100)
        except OSError:
            pass
    for payload in (b"\x16\x03\x01" + os.urandom(300), b"NOT HTTP AT ALL\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                    b"POST /ocsp HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection((srv.host, srv.port), timeout=5) as raw:
            with context(pki.chain).wrap_socket(raw, server_hostname=srv.host) as tls:
                try:
                    tls.sendall(payload)
                    tls.recv(1000)
                except OSError:
                    pass
    assert srv.proc.poll() is None
    assert https(srv, "GET", "/healthz")[0] == 200


def test_serve_start_failures_are_one_clear_line(tmp_path, env):
    _, srv = env
    (tmp_path / "locked").mkdir()
    pki = Pki(tmp_path / "locked", passphrase="correct horse battery")
    r = run(["ca", "serve", "--dir", pki.dir, "--listen", "127.0.0.1:0"], timeout=20)
    assert r.returncode == 1 and "is encrypted" in r.stderr
    with CaServer(pki, "--passphrase-file", pki.passphrase_file) as locked:
        assert https(locked, "GET", "/healthz")[0] == 200
    r = run(["ca", "serve", "--dir", pki.dir, "--passphrase-file", pki.passphrase_file,
             "--listen", f"127.0.0.1:{srv.port}"], timeout=20)
    assert r.returncode == 1 and "cannot listen on 127.0.0.1" in r.stderr
    r = run(["ca", "serve", "--dir", tmp_path / "none"], timeout=20)
    assert r.returncode == 1 and "no CA in" in r.stderr
    r = run(["ca", "serve", "--listen", "nowhere"], timeout=20)
    assert r.returncode == 2
    r = run(["ca", "serve", "--rate", "-1"], timeout=20)
    assert r.returncode == 2
