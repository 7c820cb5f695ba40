"""The gateway follows `twoway ca serve`'s revocation feed (GET /revocations, a long poll).

With `crl = https://CA/crl` the CA's answer names the feed and the gateway follows it
(revocation-feed = auto): a `ca revoke` refuses the revoked client's new handshakes and cuts its
live connection although crl-refresh is an hour, and no polling happens while the feed is up.
When the CA goes away the gateway falls back to polling the CRL URL and follows the feed again
once the CA is back. revocation-feed = URL names the feed; off keeps plain polling."""

import re

import pytest

from backends import TcpEchoBackend
from est_helpers import CaServer
from gateway_helpers import ctx_for, wait_until
from gateway_helpers import (Gateway, closed_by_peer, echo_roundtrip, fetch_metrics, free_port,
                             metric, recv_exact, refused, s_client_output, tls_connect)
from twoway_testlib import Pki, run


def feed_metric(mport, name, labels=None):
    return metric(fetch_metrics(mport), name, labels)


def start(tmp_path, feed_args=(), refresh="1h"):
    ca_port = free_port()
    pki = Pki(tmp_path, base_url=f"https://127.0.0.1:{ca_port}")
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    env = {"pki": pki, "alice": pki.issue_client("alice"), "bob": pki.issue_client("bob"),
           "ca_port": ca_port, "ca": CaServer(pki, listen=f"127.0.0.1:{ca_port}"),
           "backend": TcpEchoBackend(), "port": free_port(), "mport": free_port()}
    env["gw"] = Gateway(["--listen", f"127.0.0.1:{env['port']}", "--backend",
                         env["backend"].address, "--mode", "tcp", "--cert", server.chain,
                         "--key", server.key, "--client-ca", pki.chain,
                         "--crl", f"{env['ca'].url}/crl", "--crl-refresh", refresh,
                         *[a.format(ca_port=ca_port) for a in feed_args], "--workers", "2", "--metrics", f"127.0.0.1:{env['mport']}"])
    return env


def stop(env):
    rc = env["gw"].stop()
    out = env["gw"].output()
    assert rc == 0, out
    assert "Sanitizer" not in out and "runtime error:" not in out, out
    if env["ca"].proc.poll() is None:
        env["ca"].stop()
    env["backend"].close()


@pytest.fixture
def auto(tmp_path):
    env = start(tmp_path)
    yield env
    stop(env)


def revoke_applied_at_once(env, name):
    """Revoke name: its live connection is cut and new handshakes refused (Python ssl and
    openssl s_client) although crl-refresh is an hour: only the feed can have told."""
    pki, port = env["pki"], env["port"]
    ctx = ctx_for(pki, env[name])
    live = tls_connect(port, ctx)
    live.sendall(b"a")
    assert recv_exact(live, 1) == b"a"
    pki.revoke(name, reason="keyCompromise")
    assert closed_by_peer(live, 15), env["gw"].output()
    live.close()
    assert wait_until(lambda: refused(port, ctx), 5), env["gw"].output()
    issued = env[name]
    out = s_client_output(["-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.root),
                           "-cert", str(issued.cert), "-key", str(issued.key)])
    assert not re.search(r"^hi$", out, re.M), out


def test_feed_followed_revocation_applied_without_polling(auto):
    env = auto
    mport = env["mport"]
    assert wait_until(lambda: feed_metric(mport, "twoway_revocation_feed_up") == 1, 15), \
        env["gw"].output()
    polls = feed_metric(mport, "twoway_crl_fetch_total", {"result": "ok"})
    revoke_applied_at_once(env, "alice")
    assert env["gw"].wait_line(r"reload \(revocation feed for crl https://\S+: a new CRL\)")
    text = fetch_metrics(mport)
    assert metric(text, "twoway_revocation_feed_total", {"result": "news"}) >= 2
    assert metric(text, "twoway_revocation_feed_lag_seconds") >= 0
    assert metric(text, "twoway_revoked_closed_total") >= 1
    # The fetch counter moved by the feed's CRLs only; the URL itself was not polled again.
    assert metric(text, "twoway_crl_fetch_total", {"result": "not-modified"}) == 0
    assert echo_roundtrip(env["port"], ctx_for(env["pki"], env["bob"])) == b"ping\n"
    assert polls >= 1


def test_feed_down_falls_back_to_polling_then_resumes(tmp_path):
    env = start(tmp_path, refresh="1s")
    try:
        mport, pki = env["mport"], env["pki"]
        assert wait_until(lambda: feed_metric(mport, "twoway_revocation_feed_up") == 1, 15)
        env["ca"].stop()
        assert wait_until(lambda: feed_metric(mport, "twoway_revocation_feed_up") == 0, 15)
        # Polling resumed: its failures are counted while the CA is away.
        assert wait_until(lambda: (feed_metric(mport, "twoway_crl_fetch_total",
                                               {"result": "failed"}) or 0) >= 2, 15)
        assert env["gw"].wait_line(r"revocation feed \S+: .*polling the CRL until it is back")
        # A revocation made while the CA server is down reaches the gateway once it is back.
        pki.revoke("bob")
        env["ca"] = CaServer(pki, listen=f"127.0.0.1:{env['ca_port']}")
        bob = ctx_for(pki, env["bob"])
        assert wait_until(lambda: refused(env["port"], bob), 40), env["gw"].output()
        assert wait_until(lambda: feed_metric(mport, "twoway_revocation_feed_up") == 1, 40)
        assert echo_roundtrip(env["port"], ctx_for(pki, env["alice"])) == b"ping\n"
    finally:
        stop(env)


def test_feed_named_explicitly(tmp_path):
    env = start(tmp_path, feed_args=("--revocation-feed",
                                     "https://127.0.0.1:{ca_port}/revocations"))
    try:
        assert wait_until(lambda: feed_metric(env["mport"], "twoway_revocation_feed_up") == 1, 15)
        revoke_applied_at_once(env, "bob")
        assert echo_roundtrip(env["port"], ctx_for(env["pki"], env["alice"])) == b"ping\n"
    finally:
        stop(env)


def test_feed_off_keeps_polling(tmp_path):
    env = start(tmp_path, feed_args=("--revocation-feed", "off"), refresh="1s")
    try:
        mport = env["mport"]
        assert wait_until(lambda: (feed_metric(mport, "twoway_crl_fetch_total",
                                               {"result": "not-modified"}) or 0) >= 2, 15)
        assert feed_metric(mport, "twoway_revocation_feed_up") is None
    finally:
        stop(env)


@pytest.mark.parametrize("value", ["http://127.0.0.1:1/revocations", "sometimes"])
def test_bad_feed_value_refused(tmp_path, value):
    r = run(["gateway", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:9", "--cert", "x",
             "--key", "y", "--client-ca", "z", "--revocation-feed", value], timeout=30)
    assert r.returncode != 0
    assert "revocation-feed" in r.stderr and "auto, off or the feed's https:// URL" in r.stderr, \
        r.stderr
