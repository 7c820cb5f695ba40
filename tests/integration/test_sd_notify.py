"""systemd's notify protocol (Type=notify): the gateway, the tunnel and `ca serve` send READY=1
once listening, RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload (a broken one
included: the unit stays active, the old generation serves), STATUS= lines with the
generation and open connections, WATCHDOG=1 at half of WATCHDOG_USEC, and STOPPING=1 on
SIGTERM. The test plays systemd: a datagram socket named by NOTIFY_SOCKET (a path, or '@' for
the abstract namespace)."""

import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from backends import TcpEchoBackend
from est_helpers import CaServer
from gateway_helpers import Gateway, MiniPki, client_context, echo_roundtrip, tls_connect
from twoway_testlib import Pki, free_port, twoway_bin, wait_for_line


class Manager:
    """The service manager's end: collects notify datagrams as dicts of their assignments."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"twoway-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
            self.dir = None
        else:  # sun_path holds 108 bytes: a short directory, not pytest's tmp_path
            self.dir = tempfile.mkdtemp(prefix="tw-notify-", dir="/tmp")
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.messages = []

    def env(self, **extra):
        return {"NOTIFY_SOCKET": self.address, **extra}

    def next(self, key, timeout=20):
        """The first message not yet returned that assigns key; earlier ones are kept."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.messages):
                if key in m:
                    return self.messages.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key}= from the daemon; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            msg = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append(msg)

    def drain(self, seconds):
        """Collect every message that arrives within seconds."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            self.messages.append(
                dict(line.split("=", 1) for line in data.decode().split("\n") if line))
        return self.messages

    def close(self):
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def manager():
    m = Manager()
    yield m
    m.close()


@pytest.fixture
def setup(tmp_path):
    ca = MiniPki(tmp_path / "ca")
    e = {"dir": tmp_path, "ca": ca, "server": ca.server(), "alice": ca.issue("alice"),
         "port": free_port(), "backend": TcpEchoBackend()}
    yield e
    e["backend"].close()


def write_config(e, extra=""):
    path = e["dir"] / "gw.conf"
    tmp = path.with_name("gw.conf.tmp")
    tmp.write_text(f"""
[global]
workers = 2
access-log = off
{extra}

[service echo]
listen = 127.0.0.1:{e['port']}
backend = {e['backend'].address}
mode = tcp
cert = {e['server'].cert_path}
key = {e['server'].key_path}
client-ca = {e['ca'].ca_path}
""")
    os.replace(tmp, path)
    return path


def test_gateway_ready_reload_status_stopping(setup, manager):
    e = setup
    cfg = write_config(e)
    ctx = client_context(e["ca"], e["alice"])
    with Gateway(["--config", cfg], env=manager.env()) as gw:
        ready = manager.next("READY")
        assert ready["READY"] == "1"
        assert "generation 1 serving" in ready["STATUS"], ready
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"

        # A good reload: RELOADING=1 with CLOCK_MONOTONIC (Python's time.monotonic), READY=1.
        with tls_connect(e["port"], ctx) as held:
            held.sendall(b"x")
            assert held.recv(1) == b"x"
            before = time.monotonic_ns() // 1000
            gw.signal(signal.SIGHUP)
            reloading = manager.next("RELOADING")
            after = time.monotonic_ns() // 1000
            assert reloading["RELOADING"] == "1"
            assert before <= int(reloading["MONOTONIC_USEC"]) <= after
            again = manager.next("READY")
            assert "generation 2 serving" in again["STATUS"], again
            # The held connection counts; the round trip's connection may still be closing
            # (its close travels client -> gateway -> echo backend -> gateway).
            opened = re.search(r"(\d+) connections? open", again["STATUS"])
            assert opened and 1 <= int(opened.group(1)) <= 2, again
            assert "1 reload (0 failed)" in again["STATUS"], again

        # A broken config: the reload is announced and answered with READY=1 all the same
        # (the unit stays active), the status counts the failure, generation 2 still serves.
        cfg.write_text(cfg.read_text().replace("mode = tcp", "mode = sideways"))
        gw.signal(signal.SIGHUP)
        assert manager.next("RELOADING")["RELOADING"] == "1"
        kept = manager.next("READY")
        assert "generation 2 serving" in kept["STATUS"] and "(1 failed)" in kept["STATUS"], kept
        gw.wait_line(r"reload failed, still serving generation 2")
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"

        assert gw.stop() == 0
        assert manager.next("STOPPING")["STOPPING"] == "1"


def test_gateway_watchdog(setup, manager):
    e = setup
    cfg = write_config(e)
    # WATCHDOG_PID names another process: the watchdog is not meant for this one.
    with Gateway(["--config", cfg],
                 env=manager.env(WATCHDOG_USEC="400000", WATCHDOG_PID="1")) as gw:
        manager.next("READY")
        assert not any("WATCHDOG" in m for m in manager.drain(1.2))
        assert gw.stop() == 0
        manager.messages.clear()
    with Gateway(["--config", cfg], env=manager.env(WATCHDOG_USEC="400000")) as gw:
        manager.next("READY")
        t0 = time.monotonic()
        for _ in range(3):
            ping = manager.next("WATCHDOG", timeout=5)
            assert ping["WATCHDOG"] == "1" and "generation 1 serving" in ping["STATUS"]
        # Three keep-alives at 200 ms (half the period) take at least 0.4 s.
        assert time.monotonic() - t0 >= 0.4
        assert gw.stop() == 0


def test_no_notify_socket_changes_nothing(setup):
    """Without NOTIFY_SOCKET the gateway runs and stops as always; a socket nobody listens
    on is not fatal either (the gateway logs it once and serves)."""
    e = setup
    cfg = write_config(e)
    ctx = client_context(e["ca"], e["alice"])
    with Gateway(["--config", cfg], env={"NOTIFY_SOCKET": ""}) as gw:
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"
        assert gw.stop() == 0
    with Gateway(["--config", cfg], env={"NOTIFY_SOCKET": "/nonexistent/notify"}) as gw:
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"
        gw.wait_line(r"cannot notify the service manager")
        assert gw.stop() == 0


def test_tunnel_ready_and_stopping(setup, manager):
    e = setup
    # The tunnel's target is a gateway; the tunnel itself is what systemd watches here.
    with Gateway(["--config", write_config(e)]):
        local = free_port()
        env = dict(os.environ, **manager.env())
        proc = subprocess.Popen(
            [twoway_bin(), "tunnel", "--listen", f"127.0.0.1:{local}",
             "--target", f"localhost:{e['port']}", "--cert", str(e["alice"].cert_path),
             "--key", str(e["alice"].key_path), "--ca", str(e["ca"].ca_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            wait_for_line(proc, r"twoway tunnel: ready", 20)
            assert "generation 1 serving" in manager.next("READY")["STATUS"]
            with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
                s.sendall(b"hi\n")
                assert s.recv(3) == b"hi\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert manager.next("STOPPING")["STOPPING"] == "1"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_ca_serve_ready_watchdog_stopping(tmp_path, monkeypatch):
    pki = Pki(tmp_path)
    m = Manager(abstract=True)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", m.address)
        monkeypatch.setenv("WATCHDOG_USEC", "300000")
        srv = CaServer(pki)
        ready = m.next("READY")
        assert ready["STATUS"] == f"serving EST, CRL and OCSP on {srv.url}"
        assert m.next("WATCHDOG")["WATCHDOG"] == "1"
        assert srv.stop() == 0
        assert m.next("STOPPING")["STOPPING"] == "1"
    finally:
        m.close()


def test_gateway_ready_only_after_first_crl_fetch(setup, manager):
    """With a CRL URL, READY=1 waits for the first fetch: a unit that is active has
    revocation data. The CRL server holds its answer for a second."""
    e = setup
    crl = e["ca"].crl_bytes()
    served = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(1.0)
            served.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", str(len(crl)))
            self.end_headers()
            self.wfile.write(crl)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cfg = write_config(e)
        cfg.write_text(cfg.read_text() +
                       f"crl = http://127.0.0.1:{httpd.server_address[1]}/ca.crl\n")
        with Gateway(["--config", cfg], env=manager.env()) as gw:
            manager.next("READY")
            got_ready = time.monotonic()
            assert served, "READY=1 came before the CRL was fetched"
            assert got_ready >= served[0]
            assert gw.stop() == 0
    finally:
        httpd.shutdown()
