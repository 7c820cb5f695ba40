"""The whole product path: a PKI made with `twoway ca` (root + intermediate), a gateway
trusting it, and `twoway ca revoke` + `twoway ca crl` cutting a client off without a restart."""

import ssl
import time

import pytest

from backends import TcpEchoBackend
from gateway_helpers import ctx_for
from gateway_helpers import Gateway, echo_roundtrip, free_port, recv_exact, refused, tls_connect
from twoway_testlib import Pki


@pytest.fixture
def env(tmp_path):
    pki = Pki(tmp_path)
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    alice, bob = pki.issue_client("alice"), pki.issue_client("bob")
    pki.write_crl()
    backend = TcpEchoBackend()
    port = free_port()
    gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode", "tcp",
                  "--cert", server.chain, "--key", server.key, "--client-ca", pki.chain,
                  "--crl", pki.crl, "--allow", "cn:alice", "--allow", "cn:bob"])
    yield {"pki": pki, "alice": alice, "bob": bob, "port": port, "gw": gw}
    assert gw.stop() == 0, gw.output()
    backend.close()


def test_ca_issued_clients_and_revocation(env):
    pki, port = env["pki"], env["port"]
    alice = ctx_for(pki, env["alice"])
    assert echo_roundtrip(port, alice) == b"ping\n"
    live = tls_connect(port, alice)
    live.sendall(b"a")
    assert recv_exact(live, 1) == b"a"

    pki.revoke("alice", reason="keyCompromise")
    pki.write_crl()
    env["gw"].wait_line(r"reload: generation \d+ serving", timeout=5)
    deadline = time.monotonic() + 3
    live.settimeout(0.2)
    closed = False
    while time.monotonic() < deadline and not closed:
        try:
            closed = live.recv(1) == b""
        except (ssl.SSLError, ConnectionError):
            closed = True
        except (TimeoutError, OSError):
            pass
    assert closed, env["gw"].output()
    assert refused(port, alice)
    assert echo_roundtrip(port, ctx_for(pki, env["bob"])) == b"ping\n"
