"""The OCSP responder (RFC 6960) of `twoway ca serve`, checked with `openssl ocsp` as the
client: signature verified against the CA chain, good / revoked (time, reason) / unknown,
nonce echoed, thisUpdate/nextUpdate, unauthorized for another issuer, malformed requests, GET,
and revocations from the CLI visible in the very next answer, also on a kept-alive connection,
whose answers are not held back by Nagle's algorithm."""

import base64
import http.client
import re
import statistics
import subprocess
import time
import urllib.parse

import pytest
from cryptography.x509 import ocsp as x509_ocsp

from est_helpers import CaServer, context, https
from twoway_testlib import Pki, run_cmd


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("ocsp"))
    with CaServer(pki) as srv:
        yield pki, srv


def ocsp(pki, srv, *args, scheme="https"):
    url = f"{scheme}://127.0.0.1:{srv.port}/ocsp"
    return run_cmd(["openssl", "ocsp", "-issuer", pki.intermediate, "-url", url, "-CAfile",
                    pki.chain, *args])


def test_good_with_verified_signature_and_nonce(env, tmp_path):
    pki, srv = env
    got = pki.issue_client("alice", out=tmp_path)
    r = ocsp(pki, srv, "-cert", got.cert, "-resp_text")
    assert r.returncode == 0, r.stderr
    assert "Response verify OK" in r.stderr + r.stdout
    assert f"{got.cert}: good" in r.stdout
    assert "This Update:" in r.stdout and "Next Update:" in r.stdout
    assert "WARNING" not in r.stdout + r.stderr  # nonce present and matching
    assert "OCSP Nonce" in r.stdout
    assert "OCSP Signer" in r.stdout  # signed by the delegated OCSP signing certificate


def test_revocation_shows_at_once_with_time_and_reason(env, tmp_path):
    pki, srv = env
    got = pki.issue_client("bob", out=tmp_path)
    assert f"{got.cert}: good" in ocsp(pki, srv, "-cert", got.cert).stdout
    pki.revoke("bob", reason="keyCompromise")
    r = ocsp(pki, srv, "-cert", got.cert)
    assert r.returncode == 0, r.stderr
    assert f"{got.cert}: revoked" in r.stdout
    assert "Reason: keyCompromise" in r.stdout
    assert "Revocation Time:" in r.stdout
    assert "Response verify OK" in r.stderr + r.stdout


def test_unknown_serial(env):
    pki, srv = env
    r = ocsp(pki, srv, "-serial", "0x1234567890ABCDEF")
    assert r.returncode == 0, r.stderr
    assert re.search(r"0x1234567890ABCDEF: unknown", r.stdout, re.I)


def test_several_certificates_in_one_request(env, tmp_path):
    pki, srv = env
    a = pki.issue_client("carol", out=tmp_path)
    b = pki.issue_client("dave", out=tmp_path)
    pki.revoke("dave")
    r = ocsp(pki, srv, "-cert", a.cert, "-cert", b.cert)
    assert f"{a.cert}: good" in r.stdout and f"{b.cert}: revoked" in r.stdout


def test_other_issuer_is_unauthorized(env, tmp_path):
    pki, srv = env
    other = Pki(tmp_path / "other")
    stranger = other.issue_client("stranger", out=tmp_path / "s")
    r = run_cmd(["openssl", "ocsp", "-issuer", other.intermediate, "-cert", stranger.cert,
                 "-url", f"https://127.0.0.1:{srv.port}/ocsp", "-CAfile", pki.chain])
    assert "unauthorized" in (r.stdout + r.stderr).lower()


def test_get_with_base64_in_the_path(env, tmp_path):
    pki, srv = env
    got = pki.issue_client("erin", out=tmp_path)
    req = tmp_path / "req.der"
    run_cmd(["openssl", "ocsp", "-issuer", pki.intermediate, "-cert", got.cert, "-reqout", req,
             "-no_nonce"], check=True)
    path = "/ocsp/" + urllib.parse.quote(base64.b64encode(req.read_bytes()).decode(), safe="")
    status, hdrs, data = https(srv, "GET", path)
    assert status == 200 and hdrs["content-type"] == "application/ocsp-response"
    resp = tmp_path / "resp.der"
    resp.write_bytes(data)
    r = run_cmd(["openssl", "ocsp", "-respin", resp, "-issuer", pki.intermediate, "-cert",
                 got.cert, "-CAfile", pki.chain, "-no_nonce"])
    assert "Response verify OK" in r.stderr + r.stdout and f"{got.cert}: good" in r.stdout
    # Unescaped base64 ('/' and '+' left in the path) works too.
    raw = "/ocsp/" + base64.b64encode(req.read_bytes()).decode()
    assert https(srv, "GET", raw)[0] == 200


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30" * 3000])
def test_malformed_requests_get_malformed_request(env, body, tmp_path):
    pki, srv = env
    status, hdrs, data = https(srv, "POST", "/ocsp", body,
                               {"Content-Type": "application/ocsp-request"})
    assert status == 200 and hdrs["content-type"] == "application/ocsp-response"
    resp = tmp_path / "resp.der"
    resp.write_bytes(data)
    r = run_cmd(["openssl", "ocsp", "-respin", resp, "-resp_text", "-noverify"])
    assert "malformedrequest" in (r.stdout + r.stderr).lower().replace(" ", "")
    assert srv.proc.poll() is None


def test_plain_http_client_is_refused_and_server_survives(env):
    pki, srv = env
    r = subprocess.run(["curl", "-sS", "-m", "5", f"http://127.0.0.1:{srv.port}/ocsp"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert https(srv, "GET", "/healthz")[0] == 200


def request_der(pki, cert, tmp_path, name):
    req = tmp_path / f"{name}.req"
    run_cmd(["openssl", "ocsp", "-issuer", pki.intermediate, "-cert", cert, "-reqout", req],
            check=True)
    return req.read_bytes()


def post(conn, body):
    """One OCSP POST on a kept-alive connection: (parsed response, seconds it took)."""
    t0 = time.monotonic()
    conn.request("POST", "/ocsp", body=body, headers={"Content-Type": "application/ocsp-request"})
    r = conn.getresponse()
    data = r.read()
    took = time.monotonic() - t0
    assert r.status == 200 and not r.will_close, (r.status, r.getheaders())
    resp = x509_ocsp.load_der_ocsp_response(data)
    assert resp.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    return resp, took


@pytest.fixture
def fast(tmp_path_factory):
    """A server with the rate limit lifted, for many requests in a row."""
    pki = Pki(tmp_path_factory.mktemp("ocsp-fast"))
    with CaServer(pki, "--rate", "100000", "--burst", "100000", "--access-log", "off") as srv:
        yield pki, srv


def test_keep_alive_answers_are_not_held_back(fast, tmp_path):
    """Each answer on a kept-alive connection arrives at once. Sent as two TCP segments without
    TCP_NODELAY, the second waited for the client's delayed ACK: about 40 ms per answer."""
    pki, srv = fast
    got = pki.issue_client("kim", out=tmp_path)
    body = request_der(pki, got.cert, tmp_path, "kim")
    conn = http.client.HTTPSConnection(srv.host, srv.port, context=context(pki.chain),
                                       timeout=20)
    try:
        post(conn, body)  # the handshake is not part of the measure
        sock = conn.sock
        times = []
        for _ in range(25):
            resp, took = post(conn, body)
            assert resp.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
            times.append(took)
        assert conn.sock is sock  # one connection throughout
    finally:
        conn.close()
    assert statistics.median(times) < 0.030, [round(t * 1000, 1) for t in times]


def test_revocation_shows_in_the_next_answer_on_the_same_connection(fast, tmp_path):
    pki, srv = fast
    got = pki.issue_client("lee", out=tmp_path)
    other = pki.issue_client("max", out=tmp_path)
    body = request_der(pki, got.cert, tmp_path, "lee")
    other_body = request_der(pki, other.cert, tmp_path, "max")
    conn = http.client.HTTPSConnection(srv.host, srv.port, context=context(pki.chain),
                                       timeout=20)
    try:
        for _ in range(3):
            assert post(conn, body)[0].certificate_status == x509_ocsp.OCSPCertStatus.GOOD
        pki.revoke("lee", reason="keyCompromise")
        resp = post(conn, body)[0]
        assert resp.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
        assert resp.revocation_reason.name == "key_compromise"
        assert post(conn, other_body)[0].certificate_status == x509_ocsp.OCSPCertStatus.GOOD
        assert post(conn, body)[0].certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
    finally:
        conn.close()
