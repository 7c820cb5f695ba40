"""A real two-way handshake with certificates from `twoway ca`: `openssl s_server -Verify 1
-verify_return_error` with a twoway server certificate accepts `openssl s_client` with a twoway
client certificate, and rejects it once it is revoked (s_server -CRL -crl_check)."""
import pytest

from twoway_testlib import Pki
from x509_checks import mtls_handshake


def handshake(pki, server, client, crl=None):
    """The server trusts chain.pem for clients (what docs/commands/ca.md says to install) and
    sends its intermediate; the client trusts only the root and sends its intermediate."""
    return mtls_handshake(server.cert, server.key, pki.chain, client.cert, client.key,
                          pki.root, client_chain=pki.intermediate,
                          server_chain=pki.intermediate, crl=crl)


@pytest.mark.parametrize("key", ["ec:P-256", "rsa:2048", "ed25519"])
def test_handshake_accepts_then_rejects_revoked(tmp_path, key):
    pki = Pki(tmp_path, key=key)
    server = pki.issue_server("localhost", san="ip:127.0.0.1", key=key)
    alice = pki.issue_client("alice", key=key)
    bob = pki.issue_client("bob", key=key)

    ok, srv, cli = handshake(pki, server, alice)
    assert ok, f"server:\n{srv}\nclient:\n{cli}"
    assert "CN = alice" in srv or "CN=alice" in srv

    pki.revoke("alice", reason="keyCompromise")
    ok, srv, cli = handshake(pki, server, alice, crl=pki.crl)
    assert not ok, f"server:\n{srv}\nclient:\n{cli}"
    assert "certificate revoked" in srv, srv

    # The CRL does not lock out everyone: bob still gets in.
    ok, srv, cli = handshake(pki, server, bob, crl=pki.crl)
    assert ok, f"server:\n{srv}\nclient:\n{cli}"


def test_server_rejects_client_of_another_ca(tmp_path):
    ours = Pki(tmp_path / "ours")
    theirs = Pki(tmp_path / "theirs", name="Other CA")
    server = ours.issue_server("localhost")
    stranger = theirs.issue_client("mallory")
    ok, srv, cli = mtls_handshake(server.cert, server.key, ours.chain, stranger.cert,
                                  stranger.key, ours.root, client_chain=theirs.intermediate,
                                  server_chain=ours.intermediate)
    assert not ok
    assert "verify error" in srv


def test_server_rejects_server_cert_used_as_client(tmp_path):
    pki = Pki(tmp_path)
    server = pki.issue_server("localhost")
    other = pki.issue_server("not-a-client.example.test", san=None, out=tmp_path / "o")
    ok, srv, cli = handshake(pki, server, other)
    assert not ok
    assert "unsupported certificate purpose" in srv or "verify error" in srv
