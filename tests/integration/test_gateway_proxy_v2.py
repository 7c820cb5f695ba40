"""TCP mode with `forward = proxy-v2`: the backend reads a PROXY protocol v2 header before any
client byte, parsed here by backends.ProxyV2Backend: addresses, PP2_TYPE_SSL with its client
flags, verify result and sub-TLVs, the authority (SNI), and with proxy-v2-cert the client's DER
certificate in TLV 0x28."""

import socket
import ssl

import pytest

from backends import ProxyV2Backend
from gateway_helpers import Gateway, MiniPki, client_context, free_port, recv_exact, tls_connect

PP2_CLIENT_SSL, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS = 0x01, 0x02, 0x04


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-pp2")
    pki = MiniPki(d)
    e = type("Env", (), {})()
    e.pki, e.server = pki, pki.server()
    e.alice = pki.issue("alice")
    e.backends, e.gateways = [], []

    def gateway(*extra, listen="127.0.0.1"):
        backend = ProxyV2Backend()
        e.backends.append(backend)
        port = free_port(listen)
        addr = f"[{listen}]:{port}" if ":" in listen else f"{listen}:{port}"
        gw = Gateway(["--listen", addr, "--backend", f"127.0.0.1:{backend.port}",
                      "--mode", "tcp", "--forward", "proxy-v2",
                      "--cert", e.server.cert_path, "--key", e.server.key_path,
                      "--client-ca", pki.ca_path, "--workers", "1"] + list(extra))
        e.gateways.append(gw)
        return port, backend

    e.gateway = gateway
    yield e
    codes = [gw.stop() for gw in e.gateways]
    for b in e.backends:
        b.close()
    # A clean exit (0) also means no sanitizer report in a sanitizer build.
    for gw, rc in zip(e.gateways, codes):
        assert rc == 0, gw.output()


def roundtrip(port, ctx, host="127.0.0.1", payload=b"hello through PROXY v2\n", session=None):
    """Send payload, read its echo; return (client's local address, session)."""
    with tls_connect(port, ctx, host=host, session=session) as s:
        local = s.getsockname()
        s.sendall(payload)
        assert recv_exact(s, len(payload)) == payload
        return local, s.session, s.version(), s.cipher()[0]


def test_header_with_ssl_tlvs(env):
    port, backend = env.gateway()
    ctx = client_context(env.pki, env.alice)
    local, _, version, cipher = roundtrip(port, ctx)
    [h] = backend.wait_headers(1)
    assert "error" not in h, h
    assert h["command"] == "PROXY" and h["family"] == "TCP4"
    assert h["src"] == (local[0], local[1])  # the client's own address and port
    assert h["dst"] == ("127.0.0.1", port)    # the gateway's listening address
    assert h["authority"] == "localhost"      # SNI
    ssl_info = h["ssl"]
    assert ssl_info["client"] == PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS
    assert ssl_info["verify"] == 0
    assert ssl_info["version"] == version
    assert ssl_info["cipher"] == cipher
    assert ssl_info["cn"] == "alice"
    assert ssl_info["sig_alg"] == "ecdsa-with-SHA256"  # MiniPki signs with P-256/SHA-256
    assert ssl_info["key_alg"] == "EC256"
    assert h["cert_der"] is None  # not asked for


def test_client_certificate_tlv_when_asked(env):
    port, backend = env.gateway("--proxy-v2-cert")
    ctx = client_context(env.pki, env.alice)
    roundtrip(port, ctx)
    [h] = backend.wait_headers(1)
    assert h["cert_der"] == env.alice.der
    assert h["ssl"]["cn"] == "alice"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_resumed_session_flags(env, version):
    port, backend = env.gateway()
    ctx = client_context(env.pki, env.alice, version=version)
    _, session, got_version, _ = roundtrip(port, ctx)
    assert session is not None
    roundtrip(port, ctx, session=session)
    first, second = backend.wait_headers(2)
    assert first["ssl"]["version"] == got_version
    assert first["ssl"]["client"] == PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS
    # Resumed: the certificate was presented in the session, not on this connection.
    assert second["ssl"]["client"] == PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS
    assert second["ssl"]["cn"] == "alice"
    assert second["ssl"]["verify"] == 0


def test_ipv6_listener(env):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    port, backend = env.gateway(listen="::1")
    ctx = client_context(env.pki, env.alice)
    local, *_ = roundtrip(port, ctx, host="::1")
    [h] = backend.wait_headers(1)
    assert h["family"] == "TCP6"
    assert h["src"] == ("::1", local[1])
    assert h["dst"] == ("::1", port)
    assert h["ssl"]["cn"] == "alice"


def test_stream_after_header_is_untouched(env):
    port, backend = env.gateway()
    ctx = client_context(env.pki, env.alice)
    payload = bytes(range(256)) * 2048  # 512 KiB, every byte value, PROXY signature included
    payload = b"\r\n\r\n\x00\r\nQUIT\n" + payload
    got = b""
    with tls_connect(port, ctx) as s:
        # Chunk by chunk, reading each echo back, so neither side's buffers can fill up.
        for i in range(0, len(payload), 65536):
            chunk = payload[i:i + 65536]
            s.sendall(chunk)
            got += recv_exact(s, len(chunk), timeout=30)
    assert got == payload
    [h] = backend.wait_headers(1)
    assert h["ssl"]["cn"] == "alice"
