"""backend-protocol = auto: the gateway offers "h2,http/1.1" by ALPN to a tls:// backend and
speaks what the backend chose; over plaintext auto means HTTP/1.1. Backends: a Python ssl
server with the h2 package that offers h2 (or only http/1.1) and requires the gateway's client
certificate; it records, per request, the protocol it was spoken to in and the forwarded
identity. Clients: curl --http2 and the python h2 client (with a request body that waits for
the backend's ALPN choice)."""

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from backends import HttpEchoBackend
from gateway_helpers import Gateway, MiniPki, free_port

pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
from h2_helpers import H2Client  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


class AlpnBackend:
    """TLS backend offering `protos` by ALPN; answers every request with a JSON description
    (protocol, path, body length, client-cert) and counts its TCP accepts."""

    def __init__(self, pki, server, protos):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(server.cert_path), str(server.key_path))
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(cafile=str(pki.ca_path))
        self.ctx.set_alpn_protocols(protos)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.accepts = 0
        self.alpn = []
        self.stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def close(self):
        self.stop = True
        self.sock.close()

    def _loop(self):
        while not self.stop:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            self.accepts += 1
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _answer(self, proto, method, path, headers, body, trailers=()):
        desc = {"proto": proto, "method": method, "path": path, "body_len": len(body),
                "client_cert": [v for n, v in headers if n.lower() == "client-cert"],
                "trailers": [[n.lower(), v] for n, v in trailers]}
        self.requests.append(desc)
        return json.dumps(desc).encode()

    def _serve(self, raw):
        raw.settimeout(30)
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        proto = conn.selected_alpn_protocol()
        self.alpn.append(proto)
        try:
            if proto == "h2":
                self._serve_h2(conn)
            else:
                self._serve_h1(conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            conn.close()

    def _serve_h1(self, conn):
        f = conn.makefile("rb")
        for _ in range(1000):
            line = f.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            headers = []
            while True:
                h = f.readline().decode().rstrip("\r\n")
                if not h:
                    break
                n, _, v = h.partition(":")
                headers.append((n.strip(), v.strip()))
            get = {n.lower(): v for n, v in headers}
            body = b""
            trailers = []
            if "content-length" in get:
                body = f.read(int(get["content-length"]))
            elif get.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int(f.readline().split(b";")[0], 16)
                    if size == 0:
                        while (t := f.readline()) not in (b"\r\n", b""):
                            n, _, v = t.decode().rstrip("\r\n").partition(":")
                            trailers.append((n.strip(), v.strip()))
                        break
                    body += f.read(size)
                    f.readline()
            out = self._answer("http/1.1", method, path, headers, body, trailers)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n" % len(out) + out)

    def _serve_h2(self, conn):
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        c = h2.connection.H2Connection(config=cfg)
        c.initiate_connection()
        conn.sendall(c.data_to_send())
        streams = {}
        for _ in range(100000):
            data = conn.recv(65536)
            if not data:
                return
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = [ev.headers, b"", []]
                elif isinstance(ev, h2.events.TrailersReceived):
                    streams[ev.stream_id][2] = ev.headers
                elif isinstance(ev, h2.events.DataReceived):
                    streams[ev.stream_id][1] += ev.data
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.StreamEnded):
                    headers, body, trailers = streams.pop(ev.stream_id)
                    hd = dict(headers)
                    out = self._answer("h2", hd[":method"], hd[":path"],
                                       [(n, v) for n, v in headers if not n.startswith(":")],
                                       body, trailers)
                    c.send_headers(ev.stream_id, [(":status", "200"),
                                                  ("content-length", str(len(out)))])
                    c.send_data(ev.stream_id, out, end_stream=True)
            conn.sendall(c.data_to_send())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-auto")
    root = MiniPki(d / "root")
    inter = MiniPki(d / "inter", name="Gateway Test Intermediate", parent=root)
    back = MiniPki(d / "back", name="Backend CA")
    e = type("Env", (), {})()
    e.dir, e.root, e.inter, e.back = d, root, inter, back
    e.server = root.server()
    e.alice = inter.issue("alice")
    e.gw_client = back.issue("gateway")
    e.backend_server = back.issue("backend.internal", kind="server",
                                  dns=["backend.internal"], ips=["127.0.0.1"])
    e.gateways = []
    yield e
    codes = [gw.stop() for gw in e.gateways]
    for gw, rc in zip(e.gateways, codes):
        assert rc == 0, gw.output()


def gateway(env, backend_addr, *extra):
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--backend", backend_addr, "--mode", "http",
            "--cert", env.server.cert_path, "--key", env.server.key_path,
            # client-ca holds only the root: clients send their intermediate
            "--client-ca", env.root.ca_path, "--workers", "1",
            "--backend-protocol", "auto"]
    if backend_addr.startswith("tls://"):
        args += ["--backend-cert", env.gw_client.cert_path, "--backend-key",
                 env.gw_client.key_path, "--backend-ca", env.back.ca_path]
    gw = Gateway(args + list(extra))
    env.gateways.append(gw)
    return port


def curl(env, port, path, *args, http="--http2"):
    cmd = ["curl", "-sS", http, "--cacert", str(env.root.ca_path),
           "--cert", str(env.alice.cert_path), "--key", str(env.alice.key_path),
           "--resolve", f"localhost:{port}:127.0.0.1", "-w", "\n%{http_version} %{http_code}",
           *args, f"https://localhost:{port}{path}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    body, _, tail = p.stdout.rpartition("\n")
    version, code = tail.split()
    return version, int(code), body


def leaf(cert):
    return ":" + base64.b64encode(cert.cert.public_bytes(serialization.Encoding.DER)).decode() + ":"


def by_path(backend, path):
    return [r for r in backend.requests if r["path"] == path]


def test_backend_offering_h2_is_spoken_h2(env):
    b = AlpnBackend(env.back, env.backend_server, ["h2", "http/1.1"])
    try:
        port = gateway(env, f"tls://127.0.0.1:{b.port}")
        version, code, body = curl(env, port, "/first")
        assert (version, code) == ("2", 200)
        assert json.loads(body)["proto"] == "h2"
        # Many streams on one client connection, one with a body that waits for the choice.
        c = H2Client(env, port)
        post = c.request("/post", method="POST", body=b"y" * 30000)
        sids = [c.request(f"/s{i}") for i in range(10)]
        status, _, rb, _ = c.response(post, timeout=30)
        assert status == 200 and json.loads(rb)["body_len"] == 30000
        for sid in sids:
            assert c.response(sid)[0] == 200
        c.close()
        # A second client connection: the service remembers the choice, still h2.
        assert curl(env, port, "/again")[1] == 200
        for r in b.requests:
            assert r["proto"] == "h2" and r["client_cert"] == [leaf(env.alice)], r
        assert set(b.alpn) == {"h2"}
        # An HTTP/1.1 client is relayed as HTTP/1.1, never offered h2 on its backend leg.
        version, code, body = curl(env, port, "/h1client", http="--http1.1")
        assert (version, code) == ("1.1", 200)
        assert json.loads(body)["proto"] == "http/1.1"
    finally:
        b.close()


def test_backend_offering_only_http11_is_spoken_http11(env):
    b = AlpnBackend(env.back, env.backend_server, ["http/1.1"])
    try:
        port = gateway(env, f"tls://127.0.0.1:{b.port}")
        c = H2Client(env, port)
        # Request bodies that wait for the ALPN choice: sized and of unknown length.
        sized = c.request("/sized", method="POST", body=b"x" * 20000,
                          headers=[("content-length", "20000")])
        unsized = c.request("/unsized", method="POST", body=b"hello auto")
        plain = c.request("/plain")
        for sid, n in ((sized, 20000), (unsized, 10), (plain, 0)):
            status, _, body, _ = c.response(sid, timeout=30)
            assert status == 200
            assert json.loads(body)["body_len"] == n
        c.close()
        version, code, body = curl(env, port, "/later")
        assert (version, code) == ("2", 200)
        assert len(by_path(b, "/later")) == 1
        for r in b.requests:
            assert r["proto"] == "http/1.1" and r["client_cert"] == [leaf(env.alice)], r
        assert "h2" not in b.alpn
    finally:
        b.close()


@pytest.mark.parametrize("protos", [["h2", "http/1.1"], ["http/1.1"]])
def test_request_trailers_reach_the_backend(env, protos):
    # A client's request trailers: as HTTP/2 trailers to an h2 backend, as chunked trailers to
    # an HTTP/1.1 one; an identity name among them is stripped like in the head.
    b = AlpnBackend(env.back, env.backend_server, protos)
    try:
        port = gateway(env, f"tls://127.0.0.1:{b.port}")
        c = H2Client(env, port)
        trailer = [("x-checksum", "abc123"), ("client-cert", ":c3Bvb2Y=:")]
        with_body = c.request("/tb", method="POST", body=b"z" * 5000, end=False)
        c.c.send_headers(with_body, trailer, end_stream=True)
        no_body = c.request("/tn", method="POST", end=False)
        c.c.send_headers(no_body, trailer, end_stream=True)
        c.flush()
        proto = "h2" if "h2" in protos else "http/1.1"
        for sid, path, n in ((with_body, "/tb", 5000), (no_body, "/tn", 0)):
            status, _, rb, _ = c.response(sid, timeout=30)
            assert status == 200
            desc = json.loads(rb)
            assert (desc["proto"], desc["path"], desc["body_len"]) == (proto, path, n)
            assert desc["trailers"] == [["x-checksum", "abc123"]], desc
            assert desc["client_cert"] == [leaf(env.alice)]
        c.close()
        # A second, independent peer: nghttp sends its trailer after a body from a file.
        data = env.dir / "trailer-body"
        data.write_bytes(b"q" * 3000)
        p = subprocess.run(["nghttp", "--cert", str(env.alice.cert_path),
                            "--key", str(env.alice.key_path), "-d", str(data),
                            "--trailer", "x-checksum: abc123",
                            "--trailer", "client-cert: :c3Bvb2Y=:",
                            f"https://127.0.0.1:{port}/nghttp-trailer"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        desc = json.loads(p.stdout)
        assert (desc["proto"], desc["body_len"]) == (proto, 3000)
        # nghttp also sends content-length: an HTTP/1.1 backend gets the request sized, and a
        # sized HTTP/1.1 message has no place for trailers (docs/commands/gateway.md).
        want = [["x-checksum", "abc123"]] if proto == "h2" else []
        assert desc["trailers"] == want, desc
        assert desc["client_cert"] == [leaf(env.alice)]
    finally:
        b.close()


def test_plaintext_auto_means_http11(env):
    b = HttpEchoBackend()
    try:
        port = gateway(env, f"127.0.0.1:{b.port}")
        version, code, body = curl(env, port, "/plain-auto")
        assert (version, code) == ("2", 200)
        # The echo backend speaks only HTTP/1.1: h2c prior knowledge would have been a 502.
        desc = json.loads(body)
        assert desc["path"] == "/plain-auto"
        assert [v for n, v in desc["headers"] if n.lower() == "client-cert"] == [leaf(env.alice)]
    finally:
        b.close()


def test_auto_in_tcp_mode_is_refused(env, tmp_path):
    conf = tmp_path / "gw.conf"
    conf.write_text(f"""[service tcp]
listen = 127.0.0.1:{free_port()}
backend = 127.0.0.1:1
mode = tcp
backend-protocol = auto
cert = {env.server.cert_path}
key = {env.server.key_path}
client-ca = {env.root.ca_path}
""")
    from twoway_testlib import twoway_bin
    p = subprocess.run([twoway_bin(), "gateway", "--check", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "backend-protocol" in p.stderr and "mode = http" in p.stderr
