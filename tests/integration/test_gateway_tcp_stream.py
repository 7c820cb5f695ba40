"""TCP mode bulk streams (the fast relay, src/gateway/relay_fast.c): large downloads and
uploads arrive intact (sha256 end to end), a client that stops reading bounds what the gateway
holds, half-closes pass through both ways, and client bytes sent in the same flight as the
client's Finished reach the backend (the handover from the handshake bufferevent)."""

import hashlib
import os
import socket
import ssl
import threading
import time

import pytest

from gateway_helpers import (Gateway, MiniPki, access_lines, client_context, free_port,
                             gateway_flags)

BIG = 32 * 1024 * 1024

# Under AddressSanitizer freed memory sits in a quarantine and counts as resident: keep it
# small so RSS still shows what the gateway buffers. Ignored by a normal build.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=1"]))}


def payload(n, seed=b"twoway-stream"):
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(2048))
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Backend:
    """One-connection-at-a-time plaintext backend running handler(conn) per connection."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.handler(conn)
            except OSError as e:
                self.errors.append(e)
            finally:
                conn.close()

    def close(self):
        self.sock.close()


def read_all(conn):
    h, n = hashlib.sha256(), 0
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return h.hexdigest(), n
        h.update(chunk)
        n += len(chunk)


class BioClient:
    """TLS client over memory BIOs: it decides when its bytes leave (the same flight as its
    Finished) and sends close_notify as a half-close, keeping on reading afterwards."""

    def __init__(self, port, ctx, first=b""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        if first:
            self.obj.write(first)  # leaves with the client's Finished, in one send
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()

    def send(self, data):
        view = memoryview(data)
        for i in range(0, len(view), 1 << 20):
            self.obj.write(view[i:i + (1 << 20)])
            self._flush()

    def recv(self):
        """Next plaintext bytes; b"" at close_notify or EOF."""
        while True:
            try:
                return self.obj.read(1 << 20)
            except ssl.SSLWantReadError:
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent; the gateway's close_notify comes later
        self._flush()

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-stream")
    ca = MiniPki(d / "ca")
    return {"ca": ca, "server": ca.server(), "alice": ca.issue("alice"), "dir": d}


def start_gateway(pki, backend, extra=()):
    port = free_port()
    log = pki["dir"] / f"access-{port}.log"
    gw = Gateway(gateway_flags(pki["ca"], pki["server"], port, f"127.0.0.1:{backend.port}",
                               extra=["--access-log", log, "--drain-timeout", "5"] + list(extra)),
                 env=ASAN_ENV)
    return gw, port, log


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_large_download_and_upload_intact(pki, version):
    data = payload(BIG)
    digest = hashlib.sha256(data).hexdigest()

    def handler(conn):
        cmd = conn.recv(4)
        if cmd == b"down":
            conn.sendall(data)
        else:  # "up..": everything until the client's half-close, then the digest back
            got, n = read_all(conn)
            conn.sendall(f"{got} {n}".encode())

    backend = Backend(handler)
    gw, port, log = start_gateway(pki, backend)
    ctx = client_context(pki["ca"], pki["alice"], version=version)
    try:
        c = BioClient(port, ctx, first=b"down")
        h, n = hashlib.sha256(), 0
        while True:
            chunk = c.recv()
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        c.close()
        assert n == BIG and h.hexdigest() == digest

        c = BioClient(port, ctx, first=b"up..")
        c.send(data)
        c.close_notify()  # half-close: the backend sees EOF and answers afterwards
        answer = b""
        while True:
            chunk = c.recv()
            if not chunk:
                break
            answer += chunk
        c.close()
        assert answer.decode() == f"{digest} {BIG}"

        lines = access_lines(log, n=2)
        assert lines[0]["bytes_out"] == BIG and lines[0]["bytes_in"] == 4, lines[0]
        assert lines[1]["bytes_in"] == BIG + 4, lines[1]
        assert lines[1]["bytes_out"] == len(answer), lines[1]
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()
    assert not backend.errors


def test_bytes_in_the_finished_flight_reach_the_backend(pki):
    """The client's first bytes travel with its Finished, before the gateway has even
    connected the backend: the handshake bufferevent holds them and must hand them over. A
    megabyte of them also fills what it holds, so the rest waits in the SSL and the socket."""
    got = {}
    done = threading.Event()

    def handler(conn):
        got["first"] = read_all(conn)
        conn.sendall(b"ok")
        done.set()

    backend = Backend(handler)
    gw, port, _ = start_gateway(pki, backend)
    ctx = client_context(pki["ca"], pki["alice"])
    first = payload(1 << 20, seed=b"first")
    try:
        for size in (5, len(first)):
            done.clear()
            c = BioClient(port, ctx, first=first[:size])
            c.close_notify()
            assert c.recv() == b"ok"
            assert c.recv() == b""
            c.close()
            assert done.wait(10)
            assert got["first"] == (hashlib.sha256(first[:size]).hexdigest(), size)
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_slow_reader_bounds_memory_then_gets_everything(pki):
    data = payload(BIG, seed=b"slow")

    def handler(conn):
        conn.recv(2)
        conn.sendall(data)

    backend = Backend(handler)
    gw, port, _ = start_gateway(pki, backend)
    try:
        base = rss_kb(gw.proc.pid)
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s = client_context(pki["ca"], pki["alice"]).wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"go")
        time.sleep(1.5)  # not reading: the gateway must stop reading the backend
        grown = rss_kb(gw.proc.pid) - base
        assert grown < 8 * 1024, f"gateway grew by {grown} kB while the client did not read"
        h, n = hashlib.sha256(), 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        s.close()
        assert n == BIG and h.digest() == hashlib.sha256(data).digest()
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_half_close_both_ways(pki):
    """Client close_notify -> FIN to the backend, whose answer still arrives; backend FIN ->
    close_notify to the client after everything was written, even to a client that was
    slow to read it."""
    answer = payload(4 << 20, seed=b"answer")

    def handler(conn):
        got, n = read_all(conn)  # until the gateway passes the client's half-close on
        conn.sendall(f"{got} {n}\n".encode() + answer)
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)

    backend = Backend(handler)
    gw, port, log = start_gateway(pki, backend)
    ctx = client_context(pki["ca"], pki["alice"])
    try:
        c = BioClient(port, ctx, first=b"question")
        c.close_notify()
        time.sleep(0.5)  # the backend's answer and FIN arrive while nobody reads
        buf = b""
        while True:
            chunk = c.recv()
            if not chunk:
                break
            buf += chunk
        c.close()
        head, _, rest = buf.partition(b"\n")
        assert head.decode() == f"{hashlib.sha256(b'question').hexdigest()} 8"
        assert rest == answer
        line = access_lines(log)[0]
        assert line["close"] == "backend closed" and line["bytes_out"] == len(buf), line
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_bulk_then_quiet_then_bulk_again(pki):
    """A bulk burst makes the connection keep its TLS record buffers and read ahead; a quiet
    second releases them again. Bursts on both sides of that stay intact."""
    def echo_whole(conn):  # 8-byte length, the bytes; then all of them back
        while True:
            head = b""
            while len(head) < 8:
                chunk = conn.recv(8 - len(head))
                if not chunk:
                    return
                head += chunk
            n = int.from_bytes(head, "big")
            body = bytearray()
            while len(body) < n:
                chunk = conn.recv(min(1 << 20, n - len(body)))
                if not chunk:
                    return
                body += chunk
            conn.sendall(body)

    backend = Backend(echo_whole)
    gw, port, _ = start_gateway(pki, backend)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        s = client_context(pki["ca"], pki["alice"]).wrap_socket(raw, server_hostname="localhost")
        for i in range(3):
            for size in (4 << 20, 5):  # a bulk burst both ways, then a small exchange
                data = payload(size, seed=b"burst%d" % i)
                s.sendall(len(data).to_bytes(8, "big") + data)
                got = bytearray()
                while len(got) < len(data):
                    chunk = s.recv(1 << 20)
                    assert chunk, "connection closed mid-burst"
                    got += chunk
                assert bytes(got) == data
                if size > 5:
                    time.sleep(1.3)  # quiet: the gateway releases the buffers
        s.close()
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()
