"""Lifecycle: SIGTERM drains open connections and exits 0, a slow handshake is timed out,
backend failures are counted, max-connections refuses the excess, /metrics and /healthz."""

import signal
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest

from backends import TcpEchoBackend, unused_port
from gateway_helpers import (Gateway, MiniPki, access_lines, client_context, echo_roundtrip,
                             fetch_metrics,
                             free_port, gateway_flags, metric, recv_exact, refused,
                             tls_connect)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-life")
    ca = MiniPki(d / "ca")
    return {"dir": d, "ca": ca, "server": ca.server(), "alice": ca.issue("alice")}


@pytest.fixture
def backend():
    b = TcpEchoBackend()
    yield b
    b.close()


def test_sigterm_drains_then_exits_zero(pki, backend):
    port, mport = free_port(), free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address,
                               extra=["--drain-timeout", "10", "--metrics",
                                      f"127.0.0.1:{mport}"]))
    live = tls_connect(port, client_context(pki["ca"], pki["alice"]))
    live.sendall(b"before\n")
    assert recv_exact(live, 7) == b"before\n"
    gw.signal(signal.SIGTERM)
    gw.wait_line(r"no longer accepting", timeout=5)
    with pytest.raises(urllib.error.HTTPError) as draining:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=5)
    assert draining.value.code == 503
    # New connections are refused while the open one keeps working.
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() < deadline, "listener still open while draining"
        time.sleep(0.05)
    live.sendall(b"during\n")
    assert recv_exact(live, 7) == b"during\n"
    assert gw.proc.poll() is None
    live.close()
    assert gw.proc.wait(timeout=10) == 0, gw.output()


def test_drain_timeout_closes_stragglers(pki, backend):
    port = free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address,
                               extra=["--drain-timeout", "1"]))
    live = tls_connect(port, client_context(pki["ca"], pki["alice"]))
    live.sendall(b"x")
    assert recv_exact(live, 1) == b"x"
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.proc.wait(timeout=10) == 0, gw.output()
    assert time.monotonic() - t0 < 5
    live.close()


def test_slow_handshake_timed_out(pki, backend):
    port, mport = free_port(), free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address,
                               extra=["--handshake-timeout", "1", "--metrics",
                                      f"127.0.0.1:{mport}"]))
    try:
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        assert s.recv(100) == b""
        assert 0.5 < time.monotonic() - t0 < 5
        s.close()
        gw.wait_line(r"handshake from .* timed out", timeout=5)
        assert metric(fetch_metrics(mport), "twoway_handshakes_total",
                      {"reason": "timeout"}) == 1
    finally:
        assert gw.stop() == 0


def test_garbage_is_refused_and_gateway_survives(pki, backend):
    port = free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address))
    try:
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"A" * 300,
                     b"\x00" * 5000, b""):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                s.sendall(junk)
                # The gateway may already have refused and reset the connection: then there
                # is nothing left to half-close or read, which is the behaviour under test.
                s.shutdown(socket.SHUT_WR)
                s.settimeout(10)
                while s.recv(4096):
                    pass
            except OSError:
                pass
            s.close()
        assert echo_roundtrip(port, client_context(pki["ca"], pki["alice"])) == b"ping\n"
    finally:
        assert gw.stop() == 0, gw.output()


def test_backend_down_counts_error(pki):
    port, mport = free_port(), free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, f"127.0.0.1:{unused_port()}",
                               extra=["--metrics", f"127.0.0.1:{mport}"]))
    try:
        assert refused(port, client_context(pki["ca"], pki["alice"]))
        deadline = time.monotonic() + 5
        while metric(fetch_metrics(mport), "twoway_backend_errors_total") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        gw.wait_line(r"Connection refused", timeout=5)
    finally:
        assert gw.stop() == 0


def test_max_connections(pki, backend):
    port, mport = free_port(), free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address,
                               extra=["--max-connections", "2", "--metrics",
                                      f"127.0.0.1:{mport}"]))
    try:
        ctx = client_context(pki["ca"], pki["alice"])
        a, b = tls_connect(port, ctx), tls_connect(port, ctx)
        for s in (a, b):
            s.sendall(b"k")
            assert recv_exact(s, 1) == b"k"
        assert refused(port, ctx)
        assert metric(fetch_metrics(mport), "twoway_handshakes_total",
                      {"reason": "max-connections"}) == 1
        a.close()
        deadline = time.monotonic() + 5
        while metric(fetch_metrics(mport), "twoway_active_connections") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert echo_roundtrip(port, ctx) == b"ping\n"
        b.close()
    finally:
        assert gw.stop() == 0


def test_metrics_and_healthz(pki, backend):
    port, mport = free_port(), free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address,
                               extra=["--metrics", f"127.0.0.1:{mport}"]))
    try:
        assert echo_roundtrip(port, client_context(pki["ca"], pki["alice"]), b"abc") == b"abc"
        assert refused(port, client_context(pki["ca"]))
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=5) as r:
            assert r.status == 200 and r.read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/nope", timeout=5)
        # The refused connection counts until its lingering close ends (at most 1 s).
        deadline = time.monotonic() + 5
        while True:
            text = fetch_metrics(mport)
            if (metric(text, "twoway_bytes_total", {"direction": "in"}) == 3 and
                    metric(text, "twoway_active_connections") == 0):
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
        assert metric(text, "twoway_bytes_total", {"direction": "out"}) == 3
        assert metric(text, "twoway_handshakes_total", {"result": "ok"}) == 1
        assert metric(text, "twoway_handshakes_total", {"reason": "no-certificate"}) == 1
        assert metric(text, "twoway_active_connections") == 0
        server = metric(text, "twoway_cert_expiry_seconds", {"kind": "server"})
        assert 8 * 86400 < server < 11 * 86400
        ca = metric(text, "twoway_cert_expiry_seconds", {"kind": "client-ca"})
        assert 28 * 86400 < ca < 31 * 86400
        assert "# TYPE twoway_handshakes_total counter" in text
    finally:
        assert gw.stop() == 0


def test_ipv6_listener(pki, backend):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    port = free_port("::1")
    args = gateway_flags(pki["ca"], pki["server"], port, backend.address)
    args[1] = f"[::1]:{port}"
    gw = Gateway(args)
    try:
        assert echo_roundtrip(port, client_context(pki["ca"], pki["alice"]),
                              host="::1") == b"ping\n"
    finally:
        assert gw.stop() == 0


def test_startup_error_names_the_problem(pki, tmp_path):
    import subprocess
    from twoway_testlib import twoway_bin
    port = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", port))
    busy.listen(1)
    try:
        p = subprocess.run([twoway_bin(), "gateway"] +
                           [str(a) for a in gateway_flags(pki["ca"], pki["server"], port,
                                                          "127.0.0.1:9")],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 1, p.stderr
        assert f"127.0.0.1:{port}" in p.stderr
    finally:
        busy.close()
    p = subprocess.run([twoway_bin(), "gateway"] +
                       [str(a) for a in gateway_flags(pki["ca"], pki["server"], free_port(),
                                                      "127.0.0.1:9")][:-0 or None] +
                       ["--crl", str(tmp_path / "missing.crl")],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "missing.crl" in p.stderr, p.stderr


def test_drain_closes_idle_http_keepalive_quickly(pki):
    import http.client
    from backends import HttpEchoBackend
    backend = HttpEchoBackend()
    port = free_port()
    args = gateway_flags(pki["ca"], pki["server"], port, backend.address,
                         extra=["--drain-timeout", "20"])
    args[args.index("--mode") + 1] = "http"
    gw = Gateway(args)
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                           context=client_context(pki["ca"], pki["alice"]))
        conn.request("GET", "/one", headers={"Host": "localhost"})
        assert conn.getresponse().read()
        t0 = time.monotonic()
        gw.signal(signal.SIGTERM)
        assert gw.proc.wait(timeout=10) == 0, gw.output()
        assert time.monotonic() - t0 < 5
        conn.close()
    finally:
        gw.kill()
        backend.close()


def test_service_max_connections(pki, backend, tmp_path):
    port, mport = free_port(), free_port()
    cfg = tmp_path / "twoway.conf"
    cfg.write_text(f"""
[global]
metrics = 127.0.0.1:{mport}
max-connections = 100

[service capped]
listen = 127.0.0.1:{port}
backend = {backend.address}
mode = tcp
cert = {pki['server'].cert_path}
key = {pki['server'].key_path}
client-ca = {pki['ca'].ca_path}
max-connections = 1
""")
    gw = Gateway(["--config", cfg])
    try:
        ctx = client_context(pki["ca"], pki["alice"])
        first = tls_connect(port, ctx)
        first.sendall(b"1")
        assert recv_exact(first, 1) == b"1"
        assert refused(port, ctx)
        assert metric(fetch_metrics(mport), "twoway_handshakes_total",
                      {"reason": "max-connections"}) == 1
        first.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert echo_roundtrip(port, ctx) == b"ping\n"
                break
            except (AssertionError, ssl.SSLError, OSError):
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        assert gw.stop() == 0, gw.output()


@pytest.mark.parametrize("flag,reason", [("--idle-timeout", "idle timeout"),
                                         ("--max-lifetime", "max lifetime")])
def test_idle_and_lifetime_limits(pki, backend, tmp_path, flag, reason):
    port = free_port()
    log = tmp_path / "access.log"
    extra = [flag, "1", "--access-log", log]
    if flag == "--max-lifetime":
        extra += ["--idle-timeout", "60"]
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address, extra=extra))
    try:
        s = tls_connect(port, client_context(pki["ca"], pki["alice"]))
        t0 = time.monotonic()
        if flag == "--max-lifetime":
            # Busy, never idle: only the lifetime can end it.
            s.settimeout(0.2)
            ended = False
            while time.monotonic() - t0 < 5 and not ended:
                try:
                    s.sendall(b"x")
                    ended = s.recv(1) == b""
                except (ssl.SSLError, OSError):
                    ended = True
                time.sleep(0.05)
        else:
            s.settimeout(5)
            try:
                ended = s.recv(1) == b""
            except (ssl.SSLError, ConnectionError):
                ended = True
        assert ended and 0.8 < time.monotonic() - t0 < 4
        s.close()
        entries = access_lines(log, n=1)
        assert entries and entries[-1]["close"] == reason, entries
    finally:
        assert gw.stop() == 0


def test_second_gateway_on_the_same_address_is_refused(pki, backend):
    import subprocess
    from twoway_testlib import twoway_bin
    port = free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, backend.address))
    try:
        p = subprocess.run([twoway_bin(), "gateway"] +
                           [str(a) for a in gateway_flags(pki["ca"], pki["server"], port,
                                                          backend.address)],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 1, p.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in p.stderr
        assert echo_roundtrip(port, client_context(pki["ca"], pki["alice"])) == b"ping\n"
    finally:
        assert gw.stop() == 0
