"""HTTP/2 on the client side of an HTTP-mode gateway, against the real binary: ALPN (h2 and
http/1.1 offered by default, per service `alpn`, none in TCP mode), every stream of a
connection forwarded to an HTTP/1.1 backend with the verified identity (client copies
stripped), request bodies (sized and of unknown length), chunked responses, the 421 rule on
:authority, 431 on a big header list, 502/504 as HTTP/2 responses, and one access-log line per
stream. Peers: curl --http2 (libcurl + nghttp2), nghttp (nghttp2-client) and the python h2
package over an ssl socket."""

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization

from backends import HttpEchoBackend, unused_port
from gateway_helpers import Gateway, MiniPki, access_lines, free_port
from twoway_testlib import twoway_bin

pytest.importorskip("h2.connection")
import h2.settings  # noqa: E402
from h2_helpers import H2Client  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp not installed")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-h2")
    root = MiniPki(d / "root")
    inter = MiniPki(d / "inter", name="Gateway Test Intermediate", parent=root)
    server = root.server()
    alice = inter.issue("alice", uris=["spiffe://example.org/ns/a/sa/alice"])
    backend = HttpEchoBackend()
    gateways = []

    def gateway(*extra, backend_addr=None, log=None):
        port = free_port()
        args = ["--listen", f"127.0.0.1:{port}",
                "--backend", backend_addr or f"127.0.0.1:{backend.port}",
                "--mode", "http", "--cert", server.cert_path, "--key", server.key_path,
                # client-ca holds only the root: clients send their intermediate
                "--client-ca", root.ca_path, "--workers", "1"]
        if log is not None:
            args += ["--access-log", log]
        gw = Gateway(args + list(extra))
        gateways.append(gw)
        return port

    e = type("Env", (), {})()
    e.gateways = gateways
    e.dir, e.root, e.inter, e.server, e.alice, e.backend = d, root, inter, server, alice, backend
    e.gateway = gateway
    e.log = d / "access.log"
    e.port = gateway("--forward", "rfc9440", log=e.log)
    yield e
    codes = [gw.stop() for gw in gateways]
    backend.close()
    for gw, rc in zip(gateways, codes):
        assert rc == 0, gw.output()


def leaf_b64(cert):
    return base64.b64encode(cert.cert.public_bytes(serialization.Encoding.DER)).decode()


def curl(env, port, *args, path="/", timeout=30):
    cmd = ["curl", "-sS", "--http2", "--cacert", str(env.root.ca_path),
           "--cert", str(env.alice.cert_path), "--key", str(env.alice.key_path),
           "--resolve", f"localhost:{port}:127.0.0.1", "-w", "\n%{http_version} %{http_code}"]
    cmd += list(args)
    if not any(a.startswith("https://") for a in args):
        cmd.append(f"https://localhost:{port}{path}")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    body, _, tail = p.stdout.rpartition("\n")
    version, code = tail.split()
    return version, int(code), body


def env_gateways_last(env):
    return env.gateways[-1]


def hdr(desc, name):
    return [v for n, v in desc["headers"] if n.lower() == name.lower()]


# ---- ALPN ------------------------------------------------------------------------------------

def test_alpn_offers_h2_then_http11(env):
    c = H2Client(env, env.port, alpn=("h2", "http/1.1"))
    assert c.alpn == "h2"
    c.close()
    c = H2Client(env, env.port, alpn=("http/1.1",))
    assert c.alpn == "http/1.1"
    c.close()


def test_alpn_http11_only_service_refuses_h2_only_client(env):
    port = env.gateway("--alpn", "http/1.1")
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        H2Client(env, port, alpn=("h2",))
    # curl falls back to HTTP/1.1 and still gets the identity
    version, code, body = curl(env, port)
    assert (version, code) == ("1.1", 200)
    assert hdr(json.loads(body), "client-cert") == [f":{leaf_b64(env.alice)}:"]


def test_tcp_mode_offers_no_alpn(env):
    port = free_port()
    from backends import TcpEchoBackend
    with TcpEchoBackend() as echo:
        gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{echo.port}",
                      "--mode", "tcp", "--cert", env.server.cert_path, "--key",
                      env.server.key_path, "--client-ca", env.root.ca_path, "--workers", "1"])
        try:
            c = H2Client(env, port, alpn=("h2", "http/1.1"))
            assert c.alpn is None
            c.close()
        finally:
            assert gw.stop() == 0


def test_h2_over_tls12_with_aead_cipher(env):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(env.root.ca_path))
    ctx.load_cert_chain(str(env.alice.cert_path), str(env.alice.key_path))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", env.port), timeout=10),
                         server_hostname="localhost") as s:
        assert s.version() == "TLSv1.2"
        assert s.selected_alpn_protocol() == "h2"


# ---- identity on every stream ----------------------------------------------------------------

def test_curl_http2_gets_identity_and_spoof_is_stripped(env):
    version, code, body = curl(env, env.port, "-H", "Client-Cert: :c3Bvb2Y=:",
                               "-H", "X-Forwarded-Client-Cert: Hash=evil", path="/who?x=1")
    assert (version, code) == ("2", 200)
    desc = json.loads(body)
    assert desc["path"] == "/who?x=1" and desc["version"] == "HTTP/1.1"
    assert hdr(desc, "client-cert") == [f":{leaf_b64(env.alice)}:"]
    assert hdr(desc, "x-forwarded-client-cert") == []
    assert hdr(desc, "host") == [f"localhost:{env.port}"]


def test_nghttp_many_parallel_streams_each_carry_identity(env):
    before = len(env.backend.requests)
    n = 40
    p = subprocess.run(["nghttp", "-n", "-s", "-m", str(n), "--cert", str(env.alice.cert_path),
                        "--key", str(env.alice.key_path),
                        "-H", "client-cert: :c3Bvb2Y=:",
                        f"https://127.0.0.1:{env.port}/parallel"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    reqs = [r for r in env.backend.requests[before:] if r["path"] == "/parallel"]
    assert len(reqs) == n
    for r in reqs:
        assert hdr(r, "client-cert") == [f":{leaf_b64(env.alice)}:"]
    # the h2 client used one connection; the gateway answered every stream
    assert p.stdout.count("200") >= 1 or "responseEnd" in p.stdout


def test_parallel_streams_on_one_connection_python(env):
    c = H2Client(env, env.port)
    sids = [c.request(f"/p{i}", headers=[("client-cert", ":c3Bvb2Y=:")]) for i in range(20)]
    for i, sid in enumerate(sids):
        status, headers, body, _ = c.response(sid)
        assert status == 200
        desc = json.loads(body)
        assert desc["path"] == f"/p{i}"
        assert hdr(desc, "client-cert") == [f":{leaf_b64(env.alice)}:"]
    c.close()


def test_request_bodies_sized_and_unsized(env):
    c = H2Client(env, env.port)
    sized = c.request("/up", method="POST", body=b"x" * 100000,
                      headers=[("content-length", "100000")])
    status, _, body, _ = c.response(sized, timeout=30)
    desc = json.loads(body)
    assert status == 200 and desc["body_len"] == 100000 and not desc["chunked"]
    unsized = c.request("/up2", method="POST", body=b"hello h2")
    status, _, body, _ = c.response(unsized)
    desc = json.loads(body)
    assert status == 200 and desc["body"] == "hello h2" and desc["chunked"]
    c.close()


def test_cookie_crumbs_joined_and_te_dropped(env):
    c = H2Client(env, env.port)
    sid = c.request("/c", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("te", "trailers")])
    status, _, body, _ = c.response(sid)
    desc = json.loads(body)
    assert hdr(desc, "cookie") == ["a=1; b=2"]
    assert hdr(desc, "te") == []
    c.close()


def test_reused_stream_carries_nothing_of_the_last_request(env):
    """The gateway keeps a closed stream's storage for the next one: one request after another
    on a connection (each in the storage the last one left), none sees the last one's head."""
    c = H2Client(env, env.port)
    sid = c.request("/first/with/a/longer/path", method="POST", body=b"abc",
                    headers=[("cookie", "a=1"), ("x-first", "1"), ("host", "localhost")])
    status, _, body, _ = c.response(sid)
    desc = json.loads(body)
    assert status == 200 and hdr(desc, "x-first") == ["1"] and desc["chunked"]
    sid = c.request("/second", authority="localhost")
    status, _, body, _ = c.response(sid)
    desc = json.loads(body)
    assert status == 200 and desc["method"] == "GET" and desc["path"] == "/second"
    assert hdr(desc, "cookie") == [] and hdr(desc, "x-first") == []
    assert hdr(desc, "host") == ["localhost"] and desc["body_len"] == 0 and not desc["chunked"]
    sid = c.request("/third", method="HEAD", headers=[("x-third", "3")])
    status, headers, body, _ = c.response(sid)
    assert status == 200 and body == b""
    sid = c.request("/fourth", headers=[("cookie", "b=2")])
    status, _, body, _ = c.response(sid)
    desc = json.loads(body)
    assert desc["path"] == "/fourth" and hdr(desc, "cookie") == ["b=2"]
    assert hdr(desc, "x-third") == [] and desc["method"] == "GET"
    # :path long enough to move the storage the earlier pseudo-header fields were kept in
    long_path = "/long/" + "p" * 2000
    sid = c.request(long_path, method="DELETE", authority="localhost",
                    headers=[("host", "localhost")])
    status, _, body, _ = c.response(sid)
    desc = json.loads(body)
    assert status == 200 and desc["method"] == "DELETE" and desc["path"] == long_path
    assert hdr(desc, "host") == ["localhost"]
    c.close()


# ---- responses -------------------------------------------------------------------------------

class RawBackend:
    """A loopback HTTP/1.1 backend written by hand: serve(conn, n) answers the n-th connection
    (each in a thread of its own)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(conn, self.conns), daemon=True).start()

    def _serve(self, conn, n):
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = conn.recv(4096)
                if not d:
                    return
                buf += d
            self.serve(conn, n)

    def close(self):
        self.sock.close()


class ChunkedBackend(RawBackend):
    """Answers a request with a chunked body in several pieces, plus a trailer."""

    def serve(self, conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"
                     b"Keep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\n")
        for piece in (b"one-", b"two-", b"three"):
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.01)
        conn.sendall(b"0\r\nX-Checksum: abc\r\n\r\n")


def test_chunked_response_with_trailer_and_hop_headers_removed(env):
    b = ChunkedBackend()
    try:
        port = env.gateway(backend_addr=f"127.0.0.1:{b.port}")
        c = H2Client(env, port)
        sid = c.request("/chunks")
        status, headers, body, trailers = c.response(sid)
        assert status == 200 and body == b"one-two-three"
        assert headers.get("x-kept") == "yes"
        for name in ("connection", "keep-alive", "transfer-encoding", "x-hop"):
            assert name not in headers
        assert trailers == {"x-checksum": "abc"}
        c.close()
        version, code, text = curl(env, port)
        assert (version, code, text) == ("2", 200, "one-two-three")
    finally:
        b.close()


def test_misdirected_authority_gets_421_on_shared_listener(env):
    other = env.root.issue("other.example", kind="server", dns=["other.example"])
    port = free_port()
    cfg = env.dir / "two.conf"
    cfg.write_text(f"""
[service main]
listen = 127.0.0.1:{port}
backend = 127.0.0.1:{env.backend.port}
cert = {env.server.cert_path}
key = {env.server.key_path}
client-ca = {env.root.ca_path}
server-name = localhost
[service other]
listen = 127.0.0.1:{port}
backend = 127.0.0.1:{env.backend.port}
cert = {other.cert_path}
key = {other.key_path}
client-ca = {env.root.ca_path}
server-name = other.example
""")
    gw = Gateway(["--config", cfg])
    try:
        c = H2Client(env, port)
        ok = c.request("/", authority=f"localhost:{port}")
        bad = c.request("/", authority="other.example")
        assert c.response(ok)[0] == 200
        status, _, body, _ = c.response(bad)
        assert status == 421 and b"Misdirected" in body
        # the connection stays usable: the refusal was per request
        again = c.request("/again", authority="localhost")
        assert c.response(again)[0] == 200
        c.close()
    finally:
        assert gw.stop() == 0


def test_big_header_list_gets_431_and_connection_survives(env):
    port = env.gateway("--max-header-bytes", "4096")
    c = H2Client(env, port)
    sid = c.request("/", headers=[(f"x-big-{i}", "v" * 200) for i in range(40)])
    status, _, body, _ = c.response(sid)
    assert status == 431
    sid = c.request("/small")
    assert c.response(sid)[0] == 200
    c.close()


def test_name_that_http_parser_takes_for_transfer_encoding_gets_400(env):
    # A field named transfer-encoding<anything> is read as Transfer-Encoding by http-parser 2.9
    # backends: refused on both sides (the HTTP/1.1 cases in tests/unit/gateway/test_http.c).
    c = H2Client(env, env.port)
    sid = c.request("/", headers=[("transfer-encodingx", "y")])
    assert c.response(sid)[0] == 400
    assert c.response(c.request("/after"))[0] == 200
    c.close()
    assert curl(env, env.port, "-H", "Transfer-Encodingx: y")[:2] == ("2", 400)
    assert curl(env, env.port, "--http1.1", "-H", "Transfer-Encoding-X: y")[:2] == ("1.1", 400)


def test_backend_down_is_502_and_slow_backend_504(env):
    port = env.gateway(backend_addr=f"127.0.0.1:{unused_port()}")
    version, code, _ = curl(env, port)
    assert (version, code) == ("2", 502)
    slow = HttpEchoBackend(delay=4)
    try:
        port = env.gateway("--backend-timeout", "1s", backend_addr=f"127.0.0.1:{slow.port}")
        version, code, _ = curl(env, port)
        assert (version, code) == ("2", 504)
    finally:
        slow.close()


def test_access_log_has_a_line_per_stream_and_the_connection(env):
    c = H2Client(env, env.port)
    sids = [c.request(f"/log{i}") for i in range(3)]
    for sid in sids:
        assert c.response(sid)[0] == 200
    c.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = access_lines(env.log, n=1)
        streams = [l for l in lines if l.get("path", "").startswith("/log")]
        conns = [l for l in lines if l.get("protocol") == "h2" and "stream" not in l
                 and l.get("requests") == 3]
        if len(streams) == 3 and conns:
            break
        time.sleep(0.1)
    assert len(streams) == 3
    for l in streams:
        assert l["status"] == 200 and l["method"] == "GET"
        assert "CN=alice" in l["subject"]
    assert conns and conns[0]["verdict"] == "allow"


# ---- reload, revocation cut, drain -----------------------------------------------------------

def test_reload_keeps_h2_connection_and_revocation_cuts_it_with_goaway(env):
    import signal
    bob = env.root.issue("bob")
    crl = env.dir / "root.crl"
    env.root.write_crl(crl)
    port = env.gateway("--crl", crl)
    gw = env_gateways_last(env)
    c = H2Client(env, port, cert=bob)
    assert c.response(c.request("/before"))[0] == 200
    # a reload that revokes nothing keeps the connection and its streams working
    gw.signal(signal.SIGHUP)
    gw.wait_line(r"reload: generation 2 serving", timeout=10)
    assert c.response(c.request("/after-reload"))[0] == 200
    # revoking bob: GOAWAY first (debug data says why), then the close
    env.root.write_crl(crl, [bob.serial])
    gw.wait_line(r"reload: generation 3 serving", timeout=10)
    ev = c.wait_goaway(timeout=10)
    assert ev is not None and ev.additional_data == b"revoked"
    with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
        for _ in range(50):
            c.pump(1)
    c.close()


def test_drain_answers_streams_in_flight_after_goaway(env):
    slow = HttpEchoBackend(delay=2)
    try:
        port = env.gateway(backend_addr=f"127.0.0.1:{slow.port}")
        gw = env_gateways_last(env)
        c = H2Client(env, port)
        sid = c.request("/in-flight")
        time.sleep(0.5)
        gw.signal(__import__("signal").SIGTERM)
        ev = c.wait_goaway(timeout=10)
        assert ev is not None and ev.error_code == 0 and ev.last_stream_id == sid
        # the h2 package closes its state machine on GOAWAY: read the rest raw
        data = b""
        c.s.settimeout(10)
        while True:
            try:
                chunk = c.s.recv(65536)
            except (ConnectionError, ssl.SSLError):
                break
            if not chunk:
                break
            data += chunk
        assert b"/in-flight" in data  # the echo body of the answered stream
        assert gw.proc.wait(15) == 0
    finally:
        slow.close()


# ---- twoway bench --h2 ------------------------------------------------------------------------

def test_bench_h2_streams_through_the_gateway(env):
    gw = env.gateways[0]  # the module's main gateway, serving env.port
    p = subprocess.run([twoway_bin(), "bench", f"127.0.0.1:{env.port}", "--h2", "--streams", "8",
                        "--conns", "2", "--count", "200", "--cert", str(env.alice.cert_path),
                        "--key", str(env.alice.key_path), "--ca", str(env.root.ca_path),
                        "--server-name", "localhost", "--pid", str(gw.proc.pid), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert r["mode"] == "h2" and r["h2_streams"] == 8
    assert (r["ok"], r["failed"], r["full"]) == (200, 0, 2)
    assert r["requests_per_s"] > 0 and r["server"]["cpu_us_per_conn"] is not None
    # a server that ends connections with GOAWAY (h2-max-streams) gets new ones
    port = env.gateway("--h2-max-streams", "50")
    p = subprocess.run([twoway_bin(), "bench", f"127.0.0.1:{port}", "--h2", "--streams", "4",
                        "--conns", "2", "--count", "300", "--cert", str(env.alice.cert_path),
                        "--key", str(env.alice.key_path), "--ca", str(env.root.ca_path),
                        "--server-name", "localhost", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(p.stdout)
    assert (r["ok"], r["failed"]) == (300, 0) and r["full"] >= 6
    # the refusal of a server that does not speak h2 is counted, not hidden
    port = env.gateway("--alpn", "http/1.1")
    p = subprocess.run([twoway_bin(), "bench", f"127.0.0.1:{port}", "--h2", "--conns", "1",
                        "--count", "5", "--cert", str(env.alice.cert_path),
                        "--key", str(env.alice.key_path), "--ca", str(env.root.ca_path),
                        "--server-name", "localhost", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert json.loads(p.stdout)["ok"] == 0


# ---- backend connection reuse -----------------------------------------------------------------

class OneShotBackend(RawBackend):
    """Answers the first request of each connection with keep-alive, then closes the
    connection without answering when a second request arrives on it (a backend that timed
    out an idle connection just as the gateway reused it)."""

    def serve(self, conn, n):
        body = b"conn %d" % n
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.recv(4096)  # the second request: closed unanswered


def test_backend_connections_are_reused_across_streams(env):
    c = H2Client(env, env.port)
    seen = set()
    for i in range(5):
        status, _, body, _ = c.response(c.request(f"/reuse{i}"))
        assert status == 200
        seen.add(json.loads(body)["conn"])
    assert len(seen) == 1  # one backend connection served the five sequential streams
    c.close()


def test_reused_connection_closed_by_backend_is_replaced_for_a_bodyless_request(env):
    b = OneShotBackend()
    try:
        port = env.gateway(backend_addr=f"127.0.0.1:{b.port}")
        c = H2Client(env, port)
        bodies = []
        for i in range(3):
            status, _, body, _ = c.response(c.request(f"/one{i}"))
            assert status == 200
            bodies.append(body)
        assert bodies == [b"conn 1", b"conn 2", b"conn 3"]
        c.close()
    finally:
        b.close()


class KeepAliveBackend(RawBackend):
    """Answers every request of a connection with keep-alive ("conn N" in the body) and records
    when the gateway closes a connection (with how long it had been idle)."""

    def __init__(self):
        super().__init__()
        self.closed = threading.Event()
        self.idle_before_close = []

    def serve(self, conn, n):
        buf = b""
        for _ in range(1000):
            body = b"conn %d" % n
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            idle_from = time.monotonic()
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = conn.recv(4096)
                if not d:
                    self.idle_before_close.append(time.monotonic() - idle_from)
                    self.closed.set()
                    return
                buf += d


def one_request(env, port, path, peer):
    if peer == "curl":
        version, code, body = curl(env, port, path=path)
        assert (version, code) == ("2", 200)
        return body
    c = H2Client(env, port)
    status, _, body, _ = c.response(c.request(path))
    c.close()
    assert status == 200
    return body.decode()


def test_backend_connections_are_pooled_across_client_connections(env):
    b = KeepAliveBackend()
    try:
        port = env.gateway(backend_addr=f"127.0.0.1:{b.port}")
        n = 20
        bodies = [one_request(env, port, f"/pool{i}", "curl" if i % 2 else "python")
                  for i in range(n)]
        # Sequential client connections, each its own TLS connection to the gateway: one
        # backend connection served them all.
        assert b.conns == 1 and set(bodies) == {"conn 1"}
    finally:
        b.close()


def test_big_response_on_a_pooled_connection_to_a_slow_client(env):
    """A pooled connection's response is read without its bufferevent (h2_h1.c direct reads):
    reads stop while buffer-size bytes wait for the client's window and resume as it opens, and
    the connection is pooled again afterwards."""
    port = env.gateway("--buffer-size", "4k")
    c = H2Client(env, port, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
    status, _, body, _ = c.response(c.request("/warm"))
    first = json.loads(body)["conn"]
    payload = bytes(range(256)) * 1024  # 256 kB, echoed back in the JSON description
    sid = c.request("/big", method="POST", body=payload,
                    headers=[("content-length", str(len(payload)))])
    status, _, body, _ = c.response(sid, timeout=60)
    desc = json.loads(body)
    assert status == 200 and desc["conn"] == first and desc["body_len"] == len(payload)
    assert desc["body"] == payload.decode("utf-8", "replace")
    status, _, body, _ = c.response(c.request("/after"))
    assert status == 200 and json.loads(body)["conn"] == first
    c.close()


def test_backend_keepalive_zero_turns_the_pool_off(env):
    b = KeepAliveBackend()
    try:
        port = env.gateway("--backend-keepalive", "0", backend_addr=f"127.0.0.1:{b.port}")
        bodies = [one_request(env, port, f"/nopool{i}", "python") for i in range(4)]
        assert b.conns == 4 and bodies == ["conn 1", "conn 2", "conn 3", "conn 4"]
    finally:
        b.close()


def test_pooled_connection_closed_after_backend_idle_timeout(env):
    b = KeepAliveBackend()
    try:
        port = env.gateway("--backend-idle-timeout", "1s", backend_addr=f"127.0.0.1:{b.port}")
        assert one_request(env, port, "/idle", "curl") == "conn 1"
        assert b.closed.wait(20), "the gateway never closed its idle pooled connection"
        assert b.idle_before_close[0] >= 0.9
        assert one_request(env, port, "/idle2", "python") == "conn 2"
    finally:
        b.close()


def test_pooled_connection_closed_by_backend_is_replaced_for_a_new_client(env):
    b = OneShotBackend()
    try:
        port = env.gateway(backend_addr=f"127.0.0.1:{b.port}")
        # Client 1 leaves a connection in the worker's pool; the backend closes it unanswered
        # when client 2's request arrives on it: the gateway sends it again on a fresh one.
        assert one_request(env, port, "/a", "python") == "conn 1"
        assert one_request(env, port, "/b", "curl") == "conn 2"
        assert one_request(env, port, "/c", "python") == "conn 3"
    finally:
        b.close()
