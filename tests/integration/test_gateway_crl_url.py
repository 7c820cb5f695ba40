"""The gateway polls CRLs from URLs: `crl = https://CA/crl` served by `twoway ca serve`.

After `twoway ca revoke` the revoked client is refused on its next connection and its live
connection is cut within crl-refresh seconds (measured and printed); the CA server going down
keeps the last good CRL (clients still served, the failures counted); an expired CRL is
refused or tolerated per crl-expired; the CA server's certificate must verify."""

import datetime
import http.server
import signal
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from backends import TcpEchoBackend
from est_helpers import CaServer
from gateway_helpers import ctx_for, wait_until
from gateway_helpers import (Gateway, MiniPki, client_context, closed_by_peer, echo_roundtrip,
                             fetch_metrics, free_port, metric, recv_exact, refused, tls_connect)
from twoway_testlib import Pki, run, twoway_bin


@pytest.fixture
def env(tmp_path):
    ca_port = free_port()
    pki = Pki(tmp_path, base_url=f"https://127.0.0.1:{ca_port}")
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    alice, bob = pki.issue_client("alice"), pki.issue_client("bob")
    ca = CaServer(pki, listen=f"127.0.0.1:{ca_port}")
    backend = TcpEchoBackend()
    port, mport = free_port(), free_port()
    gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode", "tcp",
                  "--cert", server.chain, "--key", server.key, "--client-ca", pki.chain,
                  "--crl", f"{ca.url}/crl", "--crl-refresh", "1s", "--revocation-feed", "off",
                  "--workers", "2",
                  "--metrics", f"127.0.0.1:{mport}"])
    yield {"pki": pki, "ca": ca, "alice": alice, "bob": bob, "port": port, "mport": mport,
           "gw": gw}
    rc = gw.stop()
    out = gw.output()
    assert rc == 0, out
    assert "Sanitizer" not in out and "runtime error:" not in out, out
    if ca.proc.poll() is None:
        ca.stop()
    backend.close()


def test_revoke_refuses_next_connection_and_cuts_live_one(env):
    pki, port = env["pki"], env["port"]
    alice = ctx_for(pki, env["alice"])
    assert echo_roundtrip(port, alice) == b"ping\n"
    live = tls_connect(port, alice)
    live.sendall(b"a")
    assert recv_exact(live, 1) == b"a"

    t0 = time.monotonic()
    pki.revoke("alice", reason="keyCompromise")
    assert closed_by_peer(live, 10), env["gw"].output()
    cut = time.monotonic() - t0
    # Each worker swaps generations on its own loop: allow them a moment to all have done so.
    assert wait_until(lambda: refused(port, alice), 2), env["gw"].output()
    refused_at = time.monotonic() - t0
    print(f"\nrevoke -> live connection cut: {cut:.2f}s; -> new connection refused by "
          f"{refused_at:.2f}s (crl-refresh 1s)")
    assert cut < 10
    live.close()
    assert echo_roundtrip(port, ctx_for(pki, env["bob"])) == b"ping\n"
    text = fetch_metrics(env["mport"])
    assert metric(text, "twoway_crl_fetch_total", {"result": "ok"}) >= 2
    assert metric(text, "twoway_revoked_closed_total") >= 1
    assert env["gw"].wait_line(r"reload \(crl https://\S+ fetched: a new CRL\)", timeout=5)


def test_unchanged_crl_costs_a_304(env):
    # The CA server answers the conditional request with 304: no reload, no new generation.
    mport = env["mport"]
    assert wait_until(lambda: (metric(fetch_metrics(mport), "twoway_crl_fetch_total",
                                      {"result": "not-modified"}) or 0) >= 2, 10)
    assert metric(fetch_metrics(mport), "twoway_config_generation") == 1


def test_ca_down_keeps_last_good_crl(env):
    pki, port, mport = env["pki"], env["port"], env["mport"]
    pki.revoke("bob")
    bob = ctx_for(pki, env["bob"])
    assert wait_until(lambda: refused(port, bob), 10)
    env["ca"].stop()
    assert wait_until(lambda: (metric(fetch_metrics(mport), "twoway_crl_fetch_total",
                                      {"result": "failed"}) or 0) >= 2, 10)
    # Still serving with the last good CRL: alice allowed, bob still refused.
    assert echo_roundtrip(port, ctx_for(pki, env["alice"])) == b"ping\n"
    assert refused(port, bob)
    assert env["gw"].wait_line(r"fetch failed: .*keeping the last good CRL", timeout=5)
    assert (metric(fetch_metrics(mport), "twoway_crl_fetch_age_seconds") or 0) >= 1


def test_start_fails_when_the_crl_url_is_unreachable(tmp_path):
    pki = MiniPki(tmp_path / "pki")
    server = pki.server()
    port = free_port()
    dead = free_port()
    r = run(["gateway", "--listen", f"127.0.0.1:{port}", "--backend", "127.0.0.1:9",
             "--cert", server.cert_path, "--key", server.key_path, "--client-ca", pki.ca_path,
             "--crl", f"https://127.0.0.1:{dead}/crl"], timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"crl https://127.0.0.1:{dead}/crl: cannot fetch the CRL" in r.stderr, r.stderr


def test_ca_server_certificate_must_verify(tmp_path):
    ca_port = free_port()
    pki = Pki(tmp_path / "a", base_url=f"https://127.0.0.1:{ca_port}")
    other = MiniPki(tmp_path / "other")
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    with CaServer(pki, listen=f"127.0.0.1:{ca_port}") as ca:
        r = run(["gateway", "--listen", f"127.0.0.1:{free_port()}", "--backend", "127.0.0.1:9",
                 "--cert", server.chain, "--key", server.key, "--client-ca", pki.chain,
                 "--crl", f"{ca.url}/crl", "--crl-ca", other.ca_path], timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "server certificate not trusted" in r.stderr, r.stderr


# ---- expired CRLs, served over plain http by a tiny server -------------------------------------

def expired_crl(pki):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(pki.cert.subject)
         .last_update(now - datetime.timedelta(days=2))
         .next_update(now - datetime.timedelta(days=1))
         .add_extension(x509.CRLNumber(7), False))
    return b.sign(pki.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class CrlHttpServer:
    """Serves self.body at /crl over plain http; tests swap the body at will."""

    def __init__(self, body):
        self.body = body
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = outer.body
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/crl"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("policy", ["reject", "warn"])
def test_expired_crl_policy(tmp_path, policy):
    pki = MiniPki(tmp_path / "pki")
    server, alice = pki.server(), pki.issue("alice")
    http_crl = CrlHttpServer(expired_crl(pki))
    backend = TcpEchoBackend()
    port, mport = free_port(), free_port()
    try:
        with Gateway(["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode",
                      "tcp", "--cert", server.cert_path, "--key", server.key_path,
                      "--client-ca", pki.ca_path, "--crl", http_crl.url, "--crl-expired", policy,
                      "--crl-refresh", "1s", "--metrics", f"127.0.0.1:{mport}"]) as gw:
            ctx = client_context(pki, alice)
            if policy == "reject":
                assert refused(port, ctx)
            else:
                assert echo_roundtrip(port, ctx) == b"ping\n"
            text = fetch_metrics(mport)
            assert metric(text, "twoway_crl_expired", {"policy": policy}) == 1
            assert "the CRL held EXPIRED" in gw.output()
            assert gw.stop() == 0
    finally:
        http_crl.close()
        backend.close()


def good_crl(pki, revoked=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(pki.cert.subject)
         .last_update(now - datetime.timedelta(minutes=5))
         .next_update(now + datetime.timedelta(days=1))
         .add_extension(x509.CRLNumber(int(time.time() * 1000)), False))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - datetime.timedelta(minutes=1))
                                      .build())
    return b.sign(pki.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_crl_not_signed_by_client_ca_is_refused_and_last_good_kept(tmp_path):
    pki, other = MiniPki(tmp_path / "pki"), MiniPki(tmp_path / "other", name="Other CA")
    server, alice, bob = pki.server(), pki.issue("alice"), pki.issue("bob")
    http_crl = CrlHttpServer(good_crl(pki, [bob.serial]))
    backend = TcpEchoBackend()
    port, mport = free_port(), free_port()
    try:
        with Gateway(["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode",
                      "tcp", "--cert", server.cert_path, "--key", server.key_path,
                      "--client-ca", pki.ca_path, "--crl", http_crl.url, "--crl-refresh", "1s",
                      "--metrics", f"127.0.0.1:{mport}"]) as gw:
            assert refused(port, client_context(pki, bob))
            # A forged CRL (another CA) that would unrevoke bob and revoke alice: refused.
            http_crl.body = good_crl(other, [alice.serial])
            gw.wait_line(r"fetch failed: the CRL was refused: .*keeping the last good CRL", 5)
            assert echo_roundtrip(port, client_context(pki, alice)) == b"ping\n"
            assert refused(port, client_context(pki, bob))
            # A reload (SIGHUP) rebuilds from the last good CRL, not from the forged one.
            gw.signal(signal.SIGHUP)
            gw.wait_line(r"reload: generation 2 serving", 5)
            assert refused(port, client_context(pki, bob))
            # The real CA revokes alice: applied at the next poll, her new connection refused.
            http_crl.body = good_crl(pki, [bob.serial, alice.serial])
            gw.wait_line(r"reload \(crl http://\S+ fetched: a new CRL\)", 5)
            assert wait_until(lambda: refused(port, client_context(pki, alice)), 3)
            assert metric(fetch_metrics(mport), "twoway_crl_fetch_total",
                          {"result": "failed"}) >= 1
            assert gw.stop() == 0
    finally:
        http_crl.close()
        backend.close()
