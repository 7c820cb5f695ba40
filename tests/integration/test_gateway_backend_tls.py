"""End-to-end TLS to the backend: the gateway verifies the backend's certificate (chain and
name) and presents its own client certificate, so the backend can require mTLS too."""

import ssl

import pytest

from backends import TcpEchoBackend
from gateway_helpers import (Gateway, MiniPki, client_context, echo_roundtrip, free_port,
                             gateway_flags, refused)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-btls")
    front = MiniPki(d / "front", name="Front CA")
    back = MiniPki(d / "back", name="Backend CA")
    rogue = MiniPki(d / "rogue", name="Rogue CA")
    return {"front": front, "back": back, "server": front.server(),
            "alice": front.issue("alice"), "gw_client": back.issue("gateway"),
            "backend_server": back.issue("backend.internal", kind="server",
                                         dns=["backend.internal"], ips=["127.0.0.1"]),
            "rogue_server": rogue.issue("backend.internal", kind="server",
                                        dns=["backend.internal"], ips=["127.0.0.1"])}


def backend_ctx(pki, server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(server.cert_path), str(server.key_path))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(pki["back"].ca_path))
    return ctx


def run_gateway(pki, backend, name=None):
    port = free_port()
    extra = ["--backend-cert", pki["gw_client"].cert_path, "--backend-key",
             pki["gw_client"].key_path, "--backend-ca", pki["back"].ca_path]
    if name:
        extra += ["--backend-server-name", name]
    gw = Gateway(gateway_flags(pki["front"], pki["server"], port,
                               f"tls://127.0.0.1:{backend.port}", extra=extra))
    return gw, port


def test_backend_mtls_verified(pki):
    backend = TcpEchoBackend(ssl_context=backend_ctx(pki, pki["backend_server"]))
    gw, port = run_gateway(pki, backend, name="backend.internal")
    try:
        ctx = client_context(pki["front"], pki["alice"])
        assert echo_roundtrip(port, ctx, b"end to end\n") == b"end to end\n"
        assert backend.peer_certs and backend.peer_certs[0] == pki["gw_client"].der
        # By IP address too: the backend certificate carries IP:127.0.0.1.
        gw2, port2 = run_gateway(pki, backend)
        try:
            assert echo_roundtrip(port2, ctx) == b"ping\n"
        finally:
            assert gw2.stop() == 0
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_backend_with_untrusted_certificate_refused(pki):
    backend = TcpEchoBackend(ssl_context=backend_ctx(pki, pki["rogue_server"]))
    gw, port = run_gateway(pki, backend, name="backend.internal")
    try:
        assert refused(port, client_context(pki["front"], pki["alice"]))
        gw.wait_line(r"backend certificate rejected: unable to get local issuer", timeout=5)
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()


def test_backend_name_mismatch_refused(pki):
    backend = TcpEchoBackend(ssl_context=backend_ctx(pki, pki["backend_server"]))
    gw, port = run_gateway(pki, backend, name="other.internal")
    try:
        assert refused(port, client_context(pki["front"], pki["alice"]))
        gw.wait_line(r"backend certificate rejected: hostname mismatch", timeout=5)
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()
