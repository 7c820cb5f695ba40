"""The gateway remembers client chains it verified (issue 6): a client seen before is admitted
again without its chain being verified anew, but never where a full verification would refuse
it: after `ca revoke` + a reloaded CRL, after the client CA was replaced, for a look-alike
certificate from an untrusted CA, or for a cached certificate presented with the wrong key."""

import os
import shutil
import ssl

import pytest

from backends import TcpEchoBackend
from gateway_helpers import Gateway, MiniPki, echo_roundtrip, free_port, refused
from twoway_testlib import Pki

VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


def client(ca_file, cert, key, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca_file))
    ctx.load_cert_chain(str(cert), str(key))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def admitted_twice(port, ctx_of):
    """The first handshake verifies and caches the chain, the second is served from the
    cache; both must be admitted and relay data, over TLS 1.2 and 1.3."""
    for v in VERSIONS:
        for _ in range(2):
            assert echo_roundtrip(port, ctx_of(v)) == b"ping\n"


def replace(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def backend():
    b = TcpEchoBackend()
    yield b
    b.close()


def start(server_chain, server_key, client_ca, backend, crl=None):
    port = free_port()
    args = ["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode", "tcp",
            "--cert", server_chain, "--key", server_key, "--client-ca", client_ca,
            "--workers", "2", "--access-log", "off"]
    if crl is not None:
        args += ["--crl", crl]
    return Gateway(args), port


def test_cached_client_refused_after_revoke_and_crl_reload(tmp_path, backend):
    pki = Pki(tmp_path)
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    alice, bob = pki.issue_client("alice"), pki.issue_client("bob")
    pki.write_crl()
    gw, port = start(server.chain, server.key, pki.chain, backend, crl=pki.crl)
    try:
        def alice_ctx(v=None):
            return client(pki.root, alice.chain, alice.key, v)
        admitted_twice(port, alice_ctx)
        pki.revoke("alice", reason="keyCompromise")
        pki.write_crl()
        gw.wait_line(r"reload: generation \d+ serving", timeout=10)
        for v in VERSIONS:
            assert refused(port, alice_ctx(v)), gw.output()
        admitted_twice(port, lambda v: client(pki.root, bob.chain, bob.key, v))
    finally:
        assert gw.stop() == 0, gw.output()


def test_cached_client_refused_after_client_ca_replaced(tmp_path, backend):
    ca1 = MiniPki(tmp_path / "ca1", name="First Client CA")
    ca2 = MiniPki(tmp_path / "ca2", name="Second Client CA")
    server = ca1.server()
    alice, carol = ca1.issue("alice"), ca2.issue("carol")
    client_ca = tmp_path / "client-ca.pem"
    shutil.copy(ca1.ca_path, client_ca)
    gw, port = start(server.cert_path, server.key_path, client_ca, backend)
    try:
        def alice_ctx(v=None):
            return client(ca1.ca_path, alice.cert_path, alice.key_path, v)
        admitted_twice(port, alice_ctx)
        replace(client_ca, ca2.ca_path.read_bytes())
        gw.wait_line(r"reload: generation \d+ serving", timeout=10)
        for v in VERSIONS:
            assert refused(port, alice_ctx(v)), gw.output()
        admitted_twice(port, lambda v: client(ca1.ca_path, carol.cert_path, carol.key_path, v))
    finally:
        assert gw.stop() == 0, gw.output()


def test_same_subject_from_untrusted_ca_refused(tmp_path, backend):
    trusted = MiniPki(tmp_path / "trusted", name="Look Alike CA")
    evil = MiniPki(tmp_path / "evil", name="Look Alike CA")  # same name, other key
    server = trusted.server()
    alice, fake = trusted.issue("alice"), evil.issue("alice")
    gw, port = start(server.cert_path, server.key_path, trusted.ca_path, backend)
    try:
        admitted_twice(port,
                       lambda v: client(trusted.ca_path, alice.cert_path, alice.key_path, v))
        for v in VERSIONS:
            for _ in range(2):
                assert refused(port, client(trusted.ca_path, fake.cert_path, fake.key_path, v))
        # The look-alike sent with its CA's certificate as chain is no better.
        bundle = tmp_path / "fake-with-ca.pem"
        bundle.write_bytes(fake.cert_path.read_bytes() + evil.ca_path.read_bytes())
        for v in VERSIONS:
            assert refused(port, client(trusted.ca_path, bundle, fake.key_path, v))
    finally:
        assert gw.stop() == 0, gw.output()


def _der_len(n):
    return bytes([n]) if n < 0x80 else bytes([0x81, n])


def impostor_key_pem(victim, other):
    """An EC private key file holding victim's public key next to other's private scalar
    (RFC 5915 ECPrivateKey, built by hand: key libraries check that the halves agree): it
    passes the key-matches-certificate check of a TLS client, but its signatures are not
    victim's."""
    from cryptography.hazmat.primitives import serialization
    import base64
    priv = other.key.private_numbers().private_value.to_bytes(32, "big")
    pub = victim.key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
    p256 = bytes.fromhex("06082a8648ce3d030107")
    body = (b"\x02\x01\x01" + b"\x04\x20" + priv
            + b"\xa0" + _der_len(len(p256)) + p256
            + b"\xa1" + _der_len(len(pub) + 3) + b"\x03" + _der_len(len(pub) + 1) + b"\x00"
            + pub)
    der = b"\x30" + _der_len(len(body)) + body
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END EC PRIVATE KEY-----\n")


def test_cached_certificate_with_wrong_key_refused(tmp_path, backend):
    ca = MiniPki(tmp_path / "ca")
    server = ca.server()
    alice, bob = ca.issue("alice"), ca.issue("bob")
    wrong_key = tmp_path / "alice-wrong.key"
    wrong_key.write_text(impostor_key_pem(alice, bob))
    os.chmod(wrong_key, 0o600)
    gw, port = start(server.cert_path, server.key_path, ca.ca_path, backend)
    try:
        def alice_ctx(v=None, key=alice.key_path):
            return client(ca.ca_path, alice.cert_path, key, v)
        admitted_twice(port, alice_ctx)
        for v in VERSIONS:
            # The client library accepts the key as alice's: the refusal is the server's.
            assert refused(port, alice_ctx(v, key=wrong_key)), gw.output()
        admitted_twice(port, alice_ctx)
    finally:
        assert gw.stop() == 0, gw.output()
