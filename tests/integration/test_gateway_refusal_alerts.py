"""A refusal reaches the client as its TLS alert: the gateway, `ca serve` and the tunnel close a
refused connection with a lingering close (shutdown(SHUT_WR), read and discard for at most 1 s
or 64 KiB, then close) instead of a close() that the kernel turns into a RST while the
client's bytes are unread.

The detector is a raw client (python ssl over a MemoryBIO and a plain socket) that, like curl
or a browser, keeps writing after its Finished (its first request) and only then reads. On
Linux a RST does not throw away bytes the client already received, but it fails the client's
next write, and clients give up there: curl says "getpeername() failed errno 107" (16 of 20 on
the old code), this client says "reset-write". Before the change this file failed in most of
its 100 tries; now every try must read the exact alert. Three trust layouts: client-ca holding
only the root while clients send their intermediate, intermediate + root with CRLs, and two
roots (several CAs)."""

import select
import socket
import ssl
import subprocess
import time
from collections import Counter

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from backends import TcpEchoBackend
from est_helpers import CaServer, https
from gateway_helpers import (DAY, NOW, Gateway, MiniPki, access_lines, client_context,
                             echo_roundtrip, free_port, gateway_flags, refused)
from twoway_testlib import Pki, twoway_bin, wait_for_line

TRIES = 100
V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3

# What OpenSSL (the gateway's TLS) sends for each refusal, as python's ssl names it.
EXPECTED = {
    "none": {V12: "SSLV3_ALERT_HANDSHAKE_FAILURE", V13: "TLSV13_ALERT_CERTIFICATE_REQUIRED"},
    "bob": "SSLV3_ALERT_HANDSHAKE_FAILURE",  # allow-policy
    "mallory": "TLSV1_ALERT_UNKNOWN_CA",
    "expired": "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "eku": "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "revoked": "SSLV3_ALERT_CERTIFICATE_REVOKED",
}


def expected(who, version):
    e = EXPECTED[who]
    return e[version] if isinstance(e, dict) else e


# ---------------------------------------------------------------------------- the raw client

def _handshake_until(sock, tls, inc, out, flights):
    """Drive the client handshake until it sent `flights` flights (1: ClientHello; 2: the one
    with its Certificate and Finished) or finished."""
    sent = 0
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        data = out.read()
        if data:
            sock.sendall(data)
            sent += 1
        if done or sent >= flights:
            return
        got = sock.recv(65536)
        if not got:
            raise EOFError
        inc.write(got)


def _keep_writing(sock, tls, out, chunks, chunk):
    """What a client does after its Finished: send its request, in pieces, giving the server
    time to answer between them (well under the 64 KiB the server discards)."""
    for _ in range(chunks):
        select.select([sock], [], [], 0.25)
        if tls.version() is not None:  # TLS 1.3, finished on our side: application data
            tls.write(b"x" * chunk)
            sock.sendall(out.read())
        else:  # mid-handshake: records the server never gets to
            sock.sendall(b"\x17\x03\x03" + chunk.to_bytes(2, "big") + b"x" * chunk)


def _read_answer(sock, tls, inc):
    while True:
        try:
            got = sock.recv(65536)
        except ConnectionResetError:
            return "reset-read"
        if got:
            inc.write(got)
        else:
            inc.write_eof()
        try:
            if tls.version() is None:
                tls.do_handshake()
            if tls.read(65536):
                return "ok"
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return "eof"
        except ssl.SSLError as e:
            return f"alert:{e.reason}"
        if not got:
            return "eof"


def raw_client(port, ctx, after_flight=2, chunks=4, chunk=4096, timeout=10, keep=False):
    """One connection: handshake, keep writing after the client's flight `after_flight`, then
    read. "alert:<reason>" when the server's alert was read; "reset-write" when a write
    failed on the server's RST; "reset-read", "eof", or "ok" when the server answered.
    keep: return (outcome, socket) with the socket still open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        try:
            _handshake_until(sock, tls, inc, out, after_flight)
            _keep_writing(sock, tls, out, chunks, chunk)
            outcome = _read_answer(sock, tls, inc)
        except ssl.SSLError as e:
            outcome = f"alert:{e.reason}"
        except (ConnectionResetError, BrokenPipeError):
            outcome = "reset-write"
        except EOFError:
            outcome = "eof"
    except BaseException:
        sock.close()
        raise
    if keep:
        return outcome, sock
    sock.close()
    return outcome


def tally(port, ctx, n=TRIES, **kw):
    return Counter(raw_client(port, ctx, **kw) for _ in range(n))


# ------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("refusal")
    root = MiniPki(d / "root", name="Refusal Root")
    inter = MiniPki(d / "inter", name="Refusal Intermediate", parent=root)
    other = MiniPki(d / "other", name="Other CA")
    p = {
        "d": d, "root": root, "inter": inter, "server": root.server(),
        "none": None,
        "alice": inter.issue("alice"),
        "bob": inter.issue("bob"),
        "mallory": other.issue("mallory"),
        "expired": inter.issue("expired", not_before=NOW - 10 * DAY, not_after=NOW - DAY),
        "eku": inter.issue("eku", eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
        "revoked": inter.issue("revoked"),
    }
    both = d / "inter+root.pem"
    both.write_bytes(inter.ca_path.read_bytes() + root.ca_path.read_bytes())
    partner = MiniPki(d / "partner", name="Partner Root")
    two_roots = d / "two-roots.pem"
    two_roots.write_bytes(partner.ca_path.read_bytes() + root.ca_path.read_bytes())
    crl = d / "crls.pem"
    crl.write_bytes(root.crl_bytes() + inter.crl_bytes([p["revoked"].serial]))
    p.update(both=both, two_roots=two_roots, crl=crl)
    return p


class _CaFile:
    def __init__(self, path):
        self.ca_path = path


def start_gateway(pki, layout, extra=()):
    backend = TcpEchoBackend()
    port = free_port()
    log = pki["d"] / f"access-{layout}-{port}.log"
    if layout == "root-only":  # trust the root; clients send their intermediate
        args = gateway_flags(pki["root"], pki["server"], port, backend.address)
    elif layout == "two-roots":  # several CAs, one of them ours
        args = gateway_flags(_CaFile(pki["two_roots"]), pki["server"], port, backend.address)
    else:  # intermediate + root, with CRLs
        args = gateway_flags(_CaFile(pki["both"]), pki["server"], port, backend.address,
                             crl=pki["crl"])
    gw = Gateway(args + ["--allow", "cn:alice", "--access-log", log] + list(extra))
    return gw, backend, port, log


@pytest.fixture(scope="module", params=["root-only", "chain+crl", "two-roots"])
def gateway(request, pki):
    gw, backend, port, log = start_gateway(pki, request.param)
    yield {"layout": request.param, "gw": gw, "backend": backend, "port": port, "log": log}
    assert gw.stop() == 0, gw.output()
    backend.close()


# ----------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("version", [V12, V13], ids=["tls12", "tls13"])
@pytest.mark.parametrize("who", ["none", "bob", "mallory", "expired", "eku", "revoked"])
def test_raw_client_reads_the_alert(pki, gateway, who, version):
    if who == "revoked" and gateway["layout"] != "chain+crl":
        pytest.skip("revocation needs the layout with CRLs")
    before = gateway["backend"].connections
    got = tally(gateway["port"], client_context(pki["root"], pki[who], version))
    assert got == Counter({f"alert:{expected(who, version)}": TRIES}), got
    assert gateway["backend"].connections == before, "a refused client reached the backend"


@pytest.mark.parametrize("version", [V12, V13], ids=["tls12", "tls13"])
def test_admitted_client_unchanged(pki, gateway, version):
    ctx = client_context(pki["root"], pki["alice"], version)
    assert echo_roundtrip(gateway["port"], ctx, b"still fine\n") == b"still fine\n"


def run_peer(cmd, stdin="GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def test_curl_prints_the_alert(pki):
    gw, backend, port, _ = start_gateway(pki, "root-only")
    try:
        url = f"https://localhost:{port}/"
        base = ["curl", "-sS", "--max-time", "20", "--cacert", str(pki["root"].ca_path)]
        no_cert = [run_peer(base + ["--tlsv1.3", url]) for _ in range(20)]
        assert all("alert certificate required" in o for o in no_cert), Counter(no_cert)
        m = pki["mallory"]
        unknown = [run_peer(base + ["--tlsv1.2", "--tls-max", "1.2", "--cert", str(m.cert_path),
                                    "--key", str(m.key_path), url]) for _ in range(20)]
        assert all("alert unknown ca" in o for o in unknown), Counter(unknown)
        assert backend.connections == 0
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_openssl_and_gnutls_print_the_alert(pki):
    gw, backend, port, _ = start_gateway(pki, "chain+crl")
    try:
        r = pki["revoked"]
        for _ in range(5):
            out = run_peer(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                            "-servername", "localhost", "-CAfile", str(pki["root"].ca_path),
                            "-tls1_3", "-ign_eof", "-cert", str(r.cert_path), "-key",
                            str(r.key_path)])
            assert "alert certificate revoked" in out, out
            out = run_peer(["gnutls-cli", "--x509cafile", str(pki["root"].ca_path), "-p",
                            str(port), "localhost"])
            assert "Received alert [116]" in out, out  # certificate_required
            e = pki["expired"]
            out = run_peer(["gnutls-cli", "--x509cafile", str(pki["root"].ca_path), "-p",
                            str(port), "--x509certfile", str(e.cert_path), "--x509keyfile",
                            str(e.key_path), "--priority", "NORMAL:-VERS-TLS1.3", "localhost"])
            assert "Received alert [45]" in out, out  # certificate_expired, TLS 1.2
        assert backend.connections == 0
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def _trickle_until_closed(socks, limit=6.0):
    """Send one byte every 50 ms on each socket until the server is gone (our write is
    answered by a RST once it closed); when each one ended, or None."""
    ended = [None] * len(socks)
    deadline = time.monotonic() + limit
    while None in ended and time.monotonic() < deadline:
        for i, s in enumerate(socks):
            if ended[i] is not None:
                continue
            try:
                s.send(b".")
                s.setblocking(False)
                try:
                    s.recv(4096)
                except BlockingIOError:
                    pass
            except (ConnectionResetError, BrokenPipeError):
                ended[i] = time.monotonic()
        time.sleep(0.05)
    return ended


def test_lingering_holds_a_slot_for_a_bounded_time(pki):
    """Refused clients that neither close nor stop writing: each holds its max-connections
    slot while it lingers, for 1 s and no longer; then a good client gets in."""
    gw, backend, port, log = start_gateway(pki, "root-only",
                                           extra=["--max-connections", "4"])
    try:
        no_cert = client_context(pki["root"], None, V13)
        good = client_context(pki["root"], pki["alice"], V13)
        for attempt in range(3):  # the 1 s window is real time: retry when the host stalled
            held, started = [], []
            for _ in range(4):
                outcome, s = raw_client(port, no_cert, keep=True)
                assert outcome == f"alert:{expected('none', V13)}", outcome
                held.append(s)
                started.append(time.monotonic())
            shut_out = refused(port, good)
            in_window = time.monotonic() - started[0] < 0.8
            ended = _trickle_until_closed(held)
            for s in held:
                s.close()
            assert None not in ended, "a lingering connection was never closed"
            spans = [e - s for s, e in zip(started, ended)]
            assert all(0.9 <= d <= 3.0 for d in spans), spans
            if in_window:
                assert shut_out, "a lingering connection did not count against max-connections"
                break
        else:
            pytest.fail("the host never ran the check inside the 1 s linger window")
        assert echo_roundtrip(port, good, b"in\n") == b"in\n"
        assert backend.connections == 1
        reasons = Counter(e["reason"] for e in access_lines(log, n=5))
        assert reasons["no-certificate"] >= 4 and reasons["max-connections"] >= 1, reasons
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_handshake_timeout_closes_after_a_bounded_linger(pki):
    gw, backend, port, log = start_gateway(pki, "root-only", extra=["--handshake-timeout", "1"])
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t0 = time.monotonic()
        s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
        assert s.recv(100) == b""  # our FIN when the timeout struck
        fin = time.monotonic() - t0
        assert 0.9 <= fin <= 4.0, fin
        ended = _trickle_until_closed([s])[0]
        s.close()
        assert ended is not None and ended - t0 <= fin + 3.0, (fin, ended and ended - t0)
        line = access_lines(log, n=1)[-1]
        assert line["reason"] == "timeout" and line["close"] == "handshake timeout", line
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_ca_serve_refused_handshake_reads_the_alert(tmp_path):
    """`ca serve` refuses client certificates with an HTTP 403 on a working connection; what
    it refuses with an alert is the handshake itself (here: no cipher in common)."""
    pki = Pki(tmp_path / "pki")
    with CaServer(pki) as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(pki.chain))
        ctx.maximum_version = V12
        ctx.set_ciphers("AES128-SHA")  # RSA key exchange: never in twoway's list
        got = tally(srv.port, ctx, after_flight=1)
        assert got == Counter({"alert:SSLV3_ALERT_HANDSHAKE_FAILURE": TRIES}), got
        out = run_peer(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-tls1_2",
                        "-cipher", "AES128-SHA", "-ign_eof"])
        assert "alert handshake failure" in out, out
        status, _, _ = https(srv, "GET", "/.well-known/est/cacerts")
        assert status == 200


def test_tunnel_names_the_targets_refusal(pki, tmp_path):
    """The tunnel is the TLS client: a TLS 1.3 target refuses its certificate after the
    tunnel's side of the handshake is over, while the tunnel already relays the local
    client's bytes. The target's alert now arrives (the gateway lingers) and the tunnel says
    which it was, in its log and access log, every time."""
    gw, backend, port, _ = start_gateway(pki, "root-only")
    listen = free_port()
    alog = tmp_path / "tunnel-access.log"
    m = pki["mallory"]
    tun = subprocess.Popen(
        [twoway_bin(), "tunnel", "--listen", f"127.0.0.1:{listen}", "--target",
         f"127.0.0.1:{port}", "--server-name", "localhost", "--cert", str(m.cert_path), "--key",
         str(m.key_path), "--ca", str(pki["root"].ca_path), "--workers", "1", "--access-log",
         str(alog), "--tls-min", "1.3"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        wait_for_line(tun, r"twoway tunnel: ready", 20)
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", listen), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
                try:
                    assert s.recv(10) == b""
                except ConnectionResetError:
                    pass
        lines = access_lines(alog, n=20)
        assert len(lines) == 20, lines
        for e in lines:
            assert e["verdict"] == "deny" and e["reason"] == "unknown-ca", e
            assert "refused us: alert unknown CA" in e["detail"], e
        wait_for_line(tun, r"refused us: alert unknown CA", 5)
        assert backend.connections == 0
    finally:
        tun.terminate()
        tun.wait(20)
        assert gw.stop() == 0, gw.output()
        backend.close()
