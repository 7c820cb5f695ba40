"""The OCSP responder (RFC 6960) of `twoway ca serve`, checked with `openssl ocsp` as the
client: signature verified against the CA chain, good / revoked (time, reason) / unknown,
nonce echoed, thisUpdate/nextUpdate, unauthorized for another issuer, malformed requests, GET,
and revocations from the CLI visible in the very next answer."""

import base64
import re
import subprocess
import urllib.parse

import pytest

from est_helpers import CaServer, https
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
