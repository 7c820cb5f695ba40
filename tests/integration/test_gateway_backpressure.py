"""Bounded buffers: a client that stops reading (or a backend that stops reading) makes the
gateway stop reading the other side instead of buffering without limit; the data arrives
intact once the slow side reads again."""

import hashlib
import os
import socket
import threading
import time

import pytest

from gateway_helpers import Gateway, MiniPki, client_context, free_port, gateway_flags, tls_connect

TOTAL = 64 * 1024 * 1024  # far more than any buffer the gateway may hold


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pattern(n):
    block = hashlib.sha256(b"twoway").digest() * 2048  # 64 KiB
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


class Firehose:
    """Backend that writes TOTAL bytes to each connection as fast as it is allowed to."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.data = pattern(TOTAL)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        try:
            # Read the client's "go" first: closing with unread input would reset the
            # connection and the kernel would drop what the gateway has not read yet.
            conn.recv(2)
            conn.sendall(self.data)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()

    def close(self):
        self.sock.close()


class Sink:
    """Backend that reads nothing until told to, then counts what it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.go = threading.Event()
        self.received = 0
        self.digest = hashlib.sha256()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.go.wait(30)
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            self.received += len(chunk)
            self.digest.update(chunk)
        conn.close()
        self.done.set()

    def close(self):
        self.sock.close()


# Under AddressSanitizer freed memory sits in a quarantine and counts as resident: keep it
# small so RSS still shows what the gateway buffers. Ignored by a normal build.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=1"]))}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-bp")
    ca = MiniPki(d / "ca")
    return {"ca": ca, "server": ca.server(), "alice": ca.issue("alice")}


def test_slow_client_bounds_gateway_memory(pki):
    backend = Firehose()
    port = free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, f"127.0.0.1:{backend.port}",
                               extra=["--drain-timeout", "5"]), env=ASAN_ENV)
    try:
        base = rss_kb(gw.proc.pid)
        s = tls_connect(port, client_context(pki["ca"], pki["alice"]))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"go")
        time.sleep(1.5)  # the client does not read: what piles up where?
        grown = rss_kb(gw.proc.pid) - base
        assert grown < 16 * 1024, f"gateway grew by {grown} kB while the client did not read"
        got = hashlib.sha256()
        n = 0
        s.settimeout(30)
        while n < TOTAL:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got.update(chunk)
            n += len(chunk)
        assert n == TOTAL
        assert got.digest() == hashlib.sha256(backend.data).digest()
        s.close()
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_slow_backend_bounds_gateway_memory(pki):
    backend = Sink()
    port = free_port()
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, f"127.0.0.1:{backend.port}",
                               extra=["--drain-timeout", "5"]), env=ASAN_ENV)
    try:
        base = rss_kb(gw.proc.pid)
        s = tls_connect(port, client_context(pki["ca"], pki["alice"]))
        data = pattern(TOTAL)
        sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        sender.start()
        sender.join(1.5)
        assert sender.is_alive(), "everything was accepted although the backend reads nothing"
        grown = rss_kb(gw.proc.pid) - base
        assert grown < 16 * 1024, f"gateway grew by {grown} kB while the backend did not read"
        backend.go.set()
        sender.join(30)
        assert not sender.is_alive()
        # Half-close and keep the socket until the backend has everything: closing it with
        # unread session tickets would make the kernel reset the connection.
        s.shutdown(socket.SHUT_WR)
        assert backend.done.wait(30)
        s.close()
        assert backend.received == TOTAL
        assert backend.digest.digest() == hashlib.sha256(data).digest()
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()
