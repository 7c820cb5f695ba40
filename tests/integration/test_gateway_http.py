"""HTTP mode against the real binary: identity headers (RFC 9440, XFCC) injected into every
request and never spoofable, framing passed through (keep-alive, pipelining, Content-Length,
chunked, 100-continue, WebSocket tunnel), and the error statuses (400, 421, 431, 502, 504).

Clients are raw Python ssl sockets so each test controls the exact bytes; the backend is
backends.HttpEchoBackend, which answers every request with the method, path, headers and body
it received."""

import base64
import datetime
import hashlib
import json
import socket
import ssl
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backends import HttpEchoBackend, header_values, unused_port
from gateway_helpers import Gateway, MiniPki, client_context, free_port, tls_connect

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


# ---- PKI: a root, an intermediate, and a client certificate issued by the intermediate -----

def _intermediate_and_leaf(pki, dir):
    """Client leaf issued by an intermediate CA under pki's root; the client sends both."""
    ikey = ec.generate_private_key(ec.SECP256R1())
    iname = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Gateway Test Intermediate")])
    inter = (x509.CertificateBuilder().subject_name(iname).issuer_name(pki.cert.subject)
             .public_key(ikey.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - DAY).not_valid_after(NOW + 20 * DAY)
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                          False, False), True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(ikey.public_key()), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 pki.key.public_key()), False)
             .sign(pki.key, hashes.SHA256()))
    lkey = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carol"),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                        "Example, Inc.")]))
            .issuer_name(iname).public_key(lkey.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 10 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier("spiffe://example.org/ns/pay/sa/carol"),
                x509.DNSName("carol.example.org")]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ikey.public_key()), False)
            .sign(ikey, hashes.SHA256()))
    cert_path, key_path = dir / "carol-chain.crt", dir / "carol.key"
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) +
                          inter.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(lkey.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    key_path.chmod(0o600)
    return leaf, inter, cert_path, key_path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-http")
    pki = MiniPki(d)
    server = pki.server()
    alice = pki.issue("alice", uris=["spiffe://example.org/ns/a/sa/alice"],
                      dns=["alice.example.org"])
    leaf, inter, chain_path, chain_key = _intermediate_and_leaf(pki, d)
    ctx = client_context(pki, alice)
    chain_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    chain_ctx.load_verify_locations(cafile=str(pki.ca_path))
    chain_ctx.load_cert_chain(str(chain_path), str(chain_key))
    backend = HttpEchoBackend()
    gateways = []

    def gateway(*extra, backend_addr=None):
        port = free_port()
        args = ["--listen", f"127.0.0.1:{port}",
                "--backend", backend_addr or f"127.0.0.1:{backend.port}",
                "--mode", "http", "--cert", server.cert_path, "--key", server.key_path,
                "--client-ca", pki.ca_path, "--workers", "1"] + list(extra)
        gw = Gateway(args)
        gateways.append(gw)
        return port

    e = type("Env", (), {})()
    e.pki, e.alice, e.ctx, e.chain_ctx, e.backend = pki, alice, ctx, chain_ctx, backend
    e.leaf, e.inter = leaf, inter
    e.gateway = gateway
    e.port = gateway("--forward", "rfc9440", "--forward-chain")
    yield e
    codes = [gw.stop() for gw in gateways]
    backend.close()
    # A clean exit (0) also means no sanitizer report in a sanitizer build.
    for gw, rc in zip(gateways, codes):
        assert rc == 0, gw.output()


# ---- a minimal HTTP/1.1 client over one TLS socket -------------------------------------------

class Conn:
    def __init__(self, port, ctx):
        self.s = tls_connect(port, ctx)
        self.s.settimeout(15)
        self.buf = b""

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n")
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return out.decode("latin-1")

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """(status, headers dict lower-case, body bytes); 1xx responses are returned too."""
        status = int(self.line().split(" ")[1])
        headers = {}
        while True:
            ln = self.line()
            if ln == "":
                break
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if "content-length" in headers:
            body = self.exact(int(headers["content-length"]))
        return status, headers, body

    def json(self):
        status, headers, body = self.response()
        assert status == 200, (status, body)
        return json.loads(body)

    def closed(self):
        """True when the gateway closes the connection (EOF or reset) before more data."""
        try:
            while True:
                data = self.s.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionError, ssl.SSLError):
            return True


def request(port, ctx, raw):
    c = Conn(port, ctx)
    try:
        c.send(raw)
        return c.response()
    finally:
        c.close()


def sf_binary(der):
    return ":" + base64.b64encode(der).decode() + ":"


def der_of(cert):
    return cert.public_bytes(serialization.Encoding.DER)


SPOOF = (b"client-cert: :c3Bvb2Y=:\r\nCLIENT-CERT-CHAIN: :c3Bvb2Y=:\r\n"
         b"X-Forwarded-Client-Cert: Hash=deadbeef;Subject=\"CN=root\"\r\n"
         b"Client-Cert: :c3Bvb2Y=:\r\n")


# ---- identity ---------------------------------------------------------------------------------

def test_rfc9440_value_is_the_client_der_and_spoofs_are_stripped(env):
    c = Conn(env.port, env.ctx)
    c.send(b"GET /who?x=1 HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n")
    r = c.json()
    c.close()
    assert r["method"] == "GET" and r["path"] == "/who?x=1"
    values = header_values(r, "Client-Cert")
    assert values == [sf_binary(env.alice.der)]
    # Decode the sf-binary and compare with the DER the client presented.
    decoded = base64.b64decode(values[0].strip(":"), validate=True)
    assert decoded == env.alice.der
    assert x509.load_der_x509_certificate(decoded).subject == env.alice.cert.subject
    # alice's issuer is the root (OpenSSL clients send it along by default).
    assert _chain_ders(r) in ([], [der_of(env.pki.cert)])
    assert header_values(r, "X-Forwarded-Client-Cert") == []


def _chain_ders(resp):
    values = header_values(resp, "Client-Cert-Chain")
    assert len(values) <= 1
    if not values:
        return []
    members = [m.strip() for m in values[0].split(",")]
    for m in members:
        assert m.startswith(":") and m.endswith(":") and len(m) > 2
    return [base64.b64decode(m[1:-1], validate=True) for m in members]


def test_client_cert_chain_lists_the_intermediates(env):
    c = Conn(env.port, env.chain_ctx)
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n")
    r = c.json()
    c.close()
    assert header_values(r, "Client-Cert") == [sf_binary(der_of(env.leaf))]
    # RFC 9440 §2.3: the first member is the leaf's issuer; the trust anchor may follow.
    assert _chain_ders(r) in ([der_of(env.inter)], [der_of(env.inter), der_of(env.pki.cert)])


def test_keep_alive_and_pipelining_every_request_gets_headers(env):
    c = Conn(env.port, env.ctx)
    want = [sf_binary(env.alice.der)]
    # Three pipelined requests in one write, spoofs in each.
    c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: localhost\r\nclient-CERT: :eA==:\r\n\r\n" % i
                    for i in range(3)))
    conns = set()
    for i in range(3):
        r = c.json()
        assert r["path"] == "/p%d" % i
        assert header_values(r, "Client-Cert") == want
        conns.add(r["conn"])
    # Then more on the same keep-alive connection, one at a time.
    for i in range(3):
        c.send(b"GET /k%d HTTP/1.1\r\nHost: localhost\r\n" % i + SPOOF + b"\r\n")
        r = c.json()
        assert r["path"] == "/k%d" % i
        assert header_values(r, "Client-Cert") == want
        conns.add(r["conn"])
    c.close()
    assert len(conns) == 1  # one backend connection carried all six


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_resumed_session_still_carries_the_identity(env, version):
    ctx = client_context(env.pki, env.alice, version=version)
    c = Conn(env.port, ctx)
    c.send(b"GET /full HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert header_values(c.json(), "Client-Cert") == [sf_binary(env.alice.der)]
    session = c.s.session
    c.close()
    c = Conn.__new__(Conn)
    c.s, c.buf = tls_connect(env.port, ctx, session=session), b""
    c.s.settimeout(15)
    assert c.s.session_reused
    c.send(b"GET /resumed HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n")
    r = c.json()
    c.close()
    assert r["path"] == "/resumed"
    assert header_values(r, "Client-Cert") == [sf_binary(env.alice.der)]


def test_xfcc(env):
    port = env.gateway("--forward", "xfcc")
    c = Conn(port, env.chain_ctx)
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n" + SPOOF + b"\r\n")
    r = c.json()
    c.close()
    assert header_values(r, "Client-Cert") == []
    [xfcc] = header_values(r, "X-Forwarded-Client-Cert")
    fields = _parse_xfcc(xfcc)
    der = der_of(env.leaf)
    assert fields["Hash"] == [hashlib.sha256(der).hexdigest()]
    # RFC 2253 order (last RDN first), as Python's rfc4514_string() writes it too.
    assert fields["Subject"] == [env.leaf.subject.rfc4514_string()]
    assert fields["Subject"] == ["O=Example\\, Inc.,CN=carol"]
    assert fields["URI"] == ["spiffe://example.org/ns/pay/sa/carol"]
    assert fields["DNS"] == ["carol.example.org"]
    pem = urllib.parse.unquote(fields["Cert"][0])
    assert x509.load_pem_x509_certificate(pem.encode()) == env.leaf


def _parse_xfcc(value):
    """Key=Value pairs separated by ';', values optionally quoted with backslash escapes."""
    out = {}
    i = 0
    while i < len(value):
        eq = value.index("=", i)
        key = value[i:eq]
        i = eq + 1
        if value[i] == '"':
            i += 1
            v = ""
            while value[i] != '"':
                if value[i] == "\\":
                    i += 1
                v += value[i]
                i += 1
            i += 1
        else:
            end = value.find(";", i)
            end = len(value) if end < 0 else end
            v = value[i:end]
            i = end
        out.setdefault(key, []).append(v)
        assert i == len(value) or value[i] == ";"
        i += 1
    return out


# ---- framing ----------------------------------------------------------------------------------

def test_content_length_and_chunked_bodies(env):
    c = Conn(env.port, env.ctx)
    c.send(b"POST /cl HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world")
    r = c.json()
    assert r["body"] == "hello world" and header_values(r, "Content-Length") == ["11"]
    assert header_values(r, "Client-Cert") == [sf_binary(env.alice.der)]
    # A body that spells a request with a spoofed header stays body.
    body = b"GET / HTTP/1.1\r\nClient-Cert: :eA==:\r\n\r\n"
    c.send(b"POST /cl2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body)
           + body)
    r = c.json()
    assert r["body"].encode() == body and r["path"] == "/cl2"
    # Chunked, written in pieces, with a trailer that tries to spoof.
    c.send(b"POST /ch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
    c.send(b"5\r\nhello\r\n")
    c.send(b"6;ext=1\r\n world\r\n")
    c.send(b"0\r\nX-Sum: 11\r\nClient-Cert: :eA==:\r\n\r\n")
    r = c.json()
    assert r["chunked"] and r["body"] == "hello world"
    assert r["trailers"] == [["X-Sum", "11"]]
    assert header_values(r, "Client-Cert") == [sf_binary(env.alice.der)]
    # A large body streams through.
    big = b"z" * (1 << 20)
    c.send(b"PUT /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(big))
    c.send(big)
    r = c.json()
    assert r["body_len"] == len(big)
    c.close()


def test_expect_100_continue(env):
    c = Conn(env.port, env.ctx)
    c.send(b"PUT /e HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
           b"Content-Length: 4\r\n\r\n")
    status, _, _ = c.response()
    assert status == 100  # the backend answered it, through the gateway
    c.send(b"data")
    r = c.json()
    assert r["body"] == "data"
    assert header_values(r, "Expect") == ["100-continue"]
    assert header_values(r, "Client-Cert") == [sf_binary(env.alice.der)]
    c.close()


def test_websocket_upgrade_becomes_a_tunnel(env):
    c = Conn(env.port, env.ctx)
    c.send(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + SPOOF + b"\r\n")
    status, headers, _ = c.response()
    assert status == 101 and headers["upgrade"] == "websocket"
    req = env.backend.requests[-1]
    assert req["path"] == "/ws"
    assert header_values(req, "Client-Cert") == [sf_binary(env.alice.der)]
    # Raw bytes both ways now, even ones that look like HTTP.
    for payload in (b"\x81\x05hello", b"GET / HTTP/1.1\r\n\r\n", b"x" * 100000):
        c.send(payload)
        assert c.exact(len(payload)) == payload
    c.close()


def test_refused_upgrade_never_forwards_raw_bytes(tmp_path_factory, env):
    refusing = HttpEchoBackend(refuse_upgrade=True)
    try:
        port = env.gateway("--forward", "rfc9440", backend_addr=f"127.0.0.1:{refusing.port}")
        c = Conn(port, env.ctx)
        c.send(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n"
               b"GET /sneaky HTTP/1.1\r\nHost: localhost\r\nClient-Cert: :eA==:\r\n\r\n")
        status, _, _ = c.response()
        assert status == 426
        assert c.closed()
        c.close()
        assert [r["path"] for r in refusing.requests] == ["/ws"]
    finally:
        refusing.close()


# ---- rejections -------------------------------------------------------------------------------

def _rejected(port, ctx, raw, status):
    c = Conn(port, ctx)
    c.send(raw)
    got, headers, body = c.response()
    assert got == status, body
    assert headers.get("connection") == "close"
    assert c.closed()
    c.close()


def test_malformed_requests_get_400(env):
    before = len(env.backend.requests)
    for raw in (b"GARBAGE\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
                b"Content-Length: 5\r\n\r\nabc",
                b"GET / HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n folded\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Name: 1\r\n\r\n",
                b"GET / HTTP/1.1\r\n\r\n"):
        _rejected(env.port, env.ctx, raw, 400)
    assert len(env.backend.requests) == before


def test_oversized_head_gets_431(env):
    _rejected(env.port, env.ctx,
              b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431)
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    _rejected(env.port, env.ctx, b"GET / HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n", 431)


def test_configured_header_limits(env):
    port = env.gateway("--max-header-bytes", "2048", "--max-headers", "5")
    _rejected(port, env.ctx,
              b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n", 431)
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(6))
    _rejected(port, env.ctx, b"GET / HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n", 431)
    status, _, _ = request(port, env.ctx, b"GET / HTTP/1.1\r\nHost: localhost\r\nX: 1\r\n\r\n")
    assert status == 200


def test_single_service_serves_any_host(env):
    # One service on the listener: no other service a Host could misdirect to, so a tunnel's
    # "Host: 127.0.0.1:7000" or any other name reaches the backend (421 is for several
    # services on one listener: test_gateway_sni.py).
    for host in (b"other.example.com", b"127.0.0.1:7000", b"LocalHost:443"):
        status, _, _ = request(env.port, env.ctx, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        assert status == 200, host


def test_backend_down_gets_502(env):
    port = env.gateway(backend_addr=f"127.0.0.1:{unused_port()}")
    status, headers, _ = request(port, env.ctx, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status == 502 and headers["connection"] == "close"


def test_backend_timeout_gets_504(env):
    slow = HttpEchoBackend(delay=4)
    try:
        port = env.gateway("--backend-timeout", "1s", backend_addr=f"127.0.0.1:{slow.port}")
        status, headers, _ = request(port, env.ctx, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert status == 504 and headers["connection"] == "close"
    finally:
        slow.close()
