"""GET /revocations?since=N of `twoway ca serve`: a long poll on the CRL number. News is
answered at once with the signed DER CRL and its number; without news the request is held and
answered the moment `twoway ca revoke` (another process) replaces the CRL; a client that gives
up is forgotten; a bad `since` is a 400; the plain HTTP listener does not serve it."""

import http.client
import threading
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from est_helpers import CaServer, context, https
from twoway_testlib import Pki, run_cmd


@pytest.fixture
def env(tmp_path):
    pki = Pki(tmp_path)
    with CaServer(pki) as srv:
        yield pki, srv


def crl_number(der):
    crl = x509.load_der_x509_crl(der)
    return crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number


def test_news_answered_at_once(env):
    pki, srv = env
    status, hdrs, data = https(srv, "GET", "/revocations?since=0")
    assert status == 200
    assert hdrs["content-type"] == "application/pkix-crl"
    assert int(hdrs["twoway-crl-number"]) == crl_number(data)
    crl = x509.load_der_x509_crl(data)
    assert crl.is_signature_valid(
        x509.load_pem_x509_certificate(pki.intermediate.read_bytes()).public_key())
    # /crl advertises the feed, so a gateway given `crl = https://…/crl` can follow it.
    _, crl_hdrs, _ = https(srv, "GET", "/crl")
    assert crl_hdrs["twoway-revocation-feed"] == "/revocations"


def test_held_until_revoke_then_answered(env):
    pki, srv = env
    alice = pki.issue_client("alice")
    _, hdrs, _ = https(srv, "GET", "/revocations?since=0")
    held_n = int(hdrs["twoway-crl-number"])
    result = {}

    def poll():
        t0 = time.monotonic()
        result["resp"] = https(srv, "GET", f"/revocations?since={held_n}")
        result["secs"] = time.monotonic() - t0

    th = threading.Thread(target=poll)
    th.start()
    # Held: no answer while nothing changes (the hold is far longer than this).
    th.join(1.5)
    assert th.is_alive(), "answered without news"
    pki.revoke("alice")
    th.join(20)
    assert not th.is_alive(), "not woken by the revocation"
    status, hdrs, data = result["resp"]
    assert status == 200
    assert int(hdrs["twoway-crl-number"]) > held_n
    assert int(hdrs["twoway-crl-number"]) == crl_number(data)
    serial = x509.load_pem_x509_certificate(alice.cert.read_bytes()).serial_number
    assert x509.load_der_x509_crl(data).get_revoked_certificate_by_serial_number(serial)
    # The same with curl, a second client: news for an older number is at once.
    r = run_cmd(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                 pki.chain, f"{srv.url}/revocations?since={held_n}"], check=True)
    assert r.stdout.strip() == "200"


def test_client_gone_is_forgotten_and_server_still_serves(env):
    pki, srv = env
    _, hdrs, _ = https(srv, "GET", "/revocations?since=0")
    n = int(hdrs["twoway-crl-number"])
    # Several held requests whose clients hang up before any news.
    for _ in range(5):
        conn = http.client.HTTPSConnection(srv.host, srv.port, context=context(pki.chain),
                                           timeout=5)
        conn.request("GET", f"/revocations?since={n}")
        time.sleep(0.1)
        conn.close()
    pki.issue_client("bob")
    pki.revoke("bob")
    status, hdrs, _ = https(srv, "GET", f"/revocations?since={n}")
    assert status == 200 and int(hdrs["twoway-crl-number"]) > n
    assert https(srv, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("query", ["", "?since=", "?since=x", "?since=-1", "?other=1"])
def test_bad_since_is_400(env, query):
    _, srv = env
    status, _, body = https(srv, "GET", "/revocations" + query)
    assert status == 400 and b"since=N" in body


def test_feed_not_rate_limited(tmp_path):
    """Many gateways behind one address re-ask at once after each revocation: the per-address
    limit (here 1/s, burst 2) throttles /crl but never the feed."""
    pki = Pki(tmp_path)
    with CaServer(pki, "--rate", "1", "--burst", "2") as srv:
        feed = [https(srv, "GET", "/revocations?since=0")[0] for _ in range(8)]
        assert feed == [200] * 8
        crl = [https(srv, "GET", "/crl")[0] for _ in range(8)]
        assert 429 in crl


def test_not_on_plain_http(tmp_path):
    pki = Pki(tmp_path)
    with CaServer(pki, "--http-listen", "127.0.0.1:0") as srv:
        assert srv.http_url
        r = run_cmd(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                     f"{srv.http_url}/revocations?since=0"], check=True)
        assert r.stdout.strip() == "404"
