"""`ocsp = on`: the gateway checks client certificates with the OCSP responder named in their
AIA (`twoway ca serve`'s /ocsp), from a cache the main thread fills, never blocking a worker.

With ocsp-fail = closed a client with no cached answer waits (handshake done, backend not yet
connected) while the main thread fetches it, then gets through; a revoked client is refused; a
revocation after a good answer is picked up at the next refresh (crl-refresh) and cuts the live
connection; with the responder down, closed refuses unknown clients and open lets them in."""

import ssl
import time

import pytest

from backends import TcpEchoBackend
from est_helpers import CaServer
from gateway_helpers import ctx_for
from gateway_helpers import (Gateway, closed_by_peer, echo_roundtrip, fetch_metrics, free_port,
                             metric, recv_exact, refused, tls_connect)
from twoway_testlib import Pki


def allowed(port, ctx):
    try:
        return echo_roundtrip(port, ctx) == b"ping\n"
    except (ssl.SSLError, OSError):
        return False


class Env:
    def __init__(self, tmp_path, fail):
        ca_port = free_port()
        self.pki = Pki(tmp_path, base_url=f"https://127.0.0.1:{ca_port}")
        server = self.pki.issue_server("localhost", san="ip:127.0.0.1")
        self.alice, self.bob = self.pki.issue_client("alice"), self.pki.issue_client("bob")
        self.ca = CaServer(self.pki, listen=f"127.0.0.1:{ca_port}")
        self.backend = TcpEchoBackend()
        self.port, self.mport = free_port(), free_port()
        self.gw = Gateway(["--listen", f"127.0.0.1:{self.port}", "--backend",
                           self.backend.address, "--mode", "tcp", "--cert", server.chain,
                           "--key", server.key, "--client-ca", self.pki.chain, "--ocsp", "on",
                           "--ocsp-fail", fail, "--crl-refresh", "1s", "--workers", "2",
                           "--metrics", f"127.0.0.1:{self.mport}"])

    def metric(self, name, labels=None):
        return metric(fetch_metrics(self.mport), name, labels) or 0

    def close(self):
        rc = self.gw.stop()
        out = self.gw.output()
        assert rc == 0, out
        assert "Sanitizer" not in out and "runtime error:" not in out, out
        if self.ca.proc.poll() is None:
            self.ca.stop()
        self.backend.close()


@pytest.fixture
def closed_env(tmp_path):
    env = Env(tmp_path, "closed")
    yield env
    env.close()


@pytest.fixture
def open_env(tmp_path):
    env = Env(tmp_path, "open")
    yield env
    env.close()


def test_good_allowed_revoked_refused(closed_env):
    env = closed_env
    alice, bob = ctx_for(env.pki, env.alice), ctx_for(env.pki, env.bob)
    # No answer cached yet: the first connection waits for it and gets through.
    t0 = time.monotonic()
    assert allowed(env.port, alice), env.gw.output()
    print(f"\nfirst connection (OCSP answer fetched meanwhile): {time.monotonic() - t0:.2f}s")
    assert allowed(env.port, alice)
    assert env.metric("twoway_ocsp_fetch_total", {"result": "ok"}) >= 1
    assert env.metric("twoway_ocsp_checks_total", {"answer": "good"}) >= 1
    assert env.metric("twoway_ocsp_checks_total", {"answer": "none"}) >= 1

    env.pki.revoke("bob", reason="keyCompromise")
    assert refused(env.port, bob)
    env.gw.wait_line(rf"refused: .*OCSP: serial 0*{env.bob.serial.lstrip('0')}: revoked", 5)
    assert refused(env.port, bob)
    assert env.metric("twoway_ocsp_checks_total", {"answer": "revoked"}) >= 1


def test_revocation_after_good_answer_cuts_live_connection(closed_env):
    env = closed_env
    alice = ctx_for(env.pki, env.alice)
    assert allowed(env.port, alice), env.gw.output()
    live = tls_connect(env.port, alice)
    live.sendall(b"a")
    assert recv_exact(live, 1) == b"a"
    t0 = time.monotonic()
    env.pki.revoke("alice")
    assert closed_by_peer(live, 10), env.gw.output()
    print(f"\nrevoke -> live connection cut (OCSP refresh, crl-refresh 1s): "
          f"{time.monotonic() - t0:.2f}s")
    assert refused(env.port, alice)
    env.gw.wait_line(rf"refused: .*OCSP: serial 0*{env.alice.serial.lstrip('0')}: revoked", 5)
    assert env.metric("twoway_revoked_closed_total") >= 1


def test_responder_down_fail_closed(closed_env):
    env = closed_env
    env.ca.stop()
    alice = ctx_for(env.pki, env.alice)
    for _ in range(3):
        t0 = time.monotonic()
        assert refused(env.port, alice)
        assert time.monotonic() - t0 < 5  # refused once the fetch failed, not at a timeout
    env.gw.wait_line(r"OCSP: serial \S+: the responder gave no usable answer", 5)
    assert env.metric("twoway_ocsp_fetch_total", {"result": "failed"}) >= 1


def test_responder_down_fail_open(open_env):
    env = open_env
    env.ca.stop()
    alice = ctx_for(env.pki, env.alice)
    assert allowed(env.port, alice)
    env.gw.wait_line(r"OCSP has no answer for serial \S+; allowed \(ocsp-fail = open\)", 5)
    assert env.metric("twoway_ocsp_checks_total", {"answer": "none"}) >= 1


def test_many_clients_wait_for_one_answer(closed_env):
    # 24 connections of one new client at once: all wait for the same single OCSP request and
    # all get through; nothing is refused and the cache holds one entry.
    import concurrent.futures
    env = closed_env
    alice = ctx_for(env.pki, env.alice)
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda _: allowed(env.port, alice), range(24)))
    assert all(results), env.gw.output()
    assert env.metric("twoway_ocsp_cache_entries") == 1
    assert env.metric("twoway_ocsp_fetch_total", {"result": "ok"}) <= 2


def test_resumed_session_checked_too(closed_env):
    env = closed_env
    alice = ctx_for(env.pki, env.alice)
    with tls_connect(env.port, alice) as s:
        s.sendall(b"ping")
        assert recv_exact(s, 4) == b"ping"
        session = s.session
    with tls_connect(env.port, alice, session=session) as s:
        s.sendall(b"ping")
        assert recv_exact(s, 4) == b"ping"
        assert s.session_reused
        session = s.session
    env.pki.revoke("alice")
    env.gw.wait_line(r"ocsp \S+: a client certificate of service default is revoked", 10)
    assert refused(env.port, alice, session=session)
    env.gw.wait_line(r"refused \(resumed\): .*OCSP: serial \S+: revoked", 5)
