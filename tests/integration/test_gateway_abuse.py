"""Nothing a client sends crashes the gateway or leaks: random bytes before and after the
handshake, abrupt resets at every stage, in TCP and HTTP mode; the gateway keeps serving and
exits 0 (under ASan: with no leak reports)."""

import random
import socket
import ssl
import struct
import threading

import pytest

from backends import HttpEchoBackend, TcpEchoBackend
from gateway_helpers import (Gateway, MiniPki, client_context, echo_roundtrip, free_port,
                             gateway_flags, tls_connect)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-abuse")
    ca = MiniPki(d / "ca")
    return {"ca": ca, "server": ca.server(), "alice": ca.issue("alice")}


def reset(sock):
    """Close with RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def abuse(port, ctx, rng, mode):
    kind = rng.randrange(6)
    try:
        if kind == 0:  # connect and vanish
            reset(socket.create_connection(("127.0.0.1", port), timeout=5))
        elif kind == 1:  # random bytes instead of a ClientHello
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(rng.randbytes(rng.randrange(1, 4000)))
            reset(s)
        elif kind == 2:  # a TLS record header promising a huge handshake, then garbage
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x16\x03\x01\x40\x00\x01\xff\xff\xff" + rng.randbytes(500))
            reset(s)
        else:  # a full handshake, then random application bytes, then RST or FIN
            s = tls_connect(port, ctx, timeout=5)
            junk = rng.randbytes(rng.randrange(1, 20000))
            if mode == "http" and kind == 3:
                junk = b"GET / HTTP/1.1\r\nHost: localhost\r\n" + junk
            if mode == "http" and kind == 4:
                junk = b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked" \
                       b"\r\n\r\n" + b"%x\r\n" % len(junk) + junk
            s.sendall(junk)
            if kind == 5:
                s.settimeout(0.2)
                try:
                    s.recv(100)
                except (OSError, ssl.SSLError):
                    pass
            reset(s)
    except (OSError, ssl.SSLError):
        pass


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_abuse_does_not_hurt(pki, mode):
    backend = HttpEchoBackend() if mode == "http" else TcpEchoBackend()
    port = free_port()
    args = gateway_flags(pki["ca"], pki["server"], port, backend.address,
                         extra=["--log-level", "warn", "--access-log", "off",
                                "--drain-timeout", "5"])
    args[args.index("--mode") + 1] = mode
    gw = Gateway(args)
    try:
        ctx = client_context(pki["ca"], pki["alice"])
        rng = random.Random(20261127)
        seeds = [rng.randrange(1 << 30) for _ in range(8)]

        def worker(seed):
            r = random.Random(seed)
            for _ in range(100):
                abuse(port, ctx, r, mode)

        threads = [threading.Thread(target=worker, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert gw.proc.poll() is None, gw.output()[-3000:]
        if mode == "tcp":
            assert echo_roundtrip(port, ctx) == b"ping\n"
        else:
            with tls_connect(port, ctx) as s:
                s.sendall(b"GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                s.settimeout(10)
                assert s.recv(12).startswith(b"HTTP/1.1 200")
    finally:
        assert gw.stop() == 0, gw.output()[-3000:]
        backend.close()
