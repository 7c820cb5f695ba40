"""Several tokens in one process: a gateway with two services whose keys were made in two
different SoftHSM2 tokens with different PINs, each key's URI naming its own PIN file
(pin-source=), serves both; a process-wide pin-file that disagrees with one URI is refused
rather than sent to the wrong token."""

import json
import socket
import ssl

import pytest

from backends import HttpEchoBackend
from est_helpers import CaServer
from gateway_helpers import Gateway
from hwkey_helpers import enroll_server
from keystores import SoftHsm
from twoway_testlib import Pki, free_port, run, run_cmd


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    a = SoftHsm(tmp_path_factory.mktemp("tok-a"), label="tok-a", pin="1111")
    b = SoftHsm(tmp_path_factory.mktemp("tok-b"), label="tok-b", pin="222222", beside=a)
    return a, b


@pytest.fixture(scope="module")
def ca(tokens, tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("two-tokens-ca"), name="Two Tokens CA")
    with CaServer(pki) as srv:
        yield pki, srv


def server_key_in(hsm, ca, name, out):
    """A server certificate for 127.0.0.1 whose key `enroll --key-store` made in hsm's token."""
    key, chain = enroll_server(ca[1], name, out, hsm.uri())
    assert key.read_text().startswith(f"pkcs11:token={hsm.label};object={name}%20")
    assert f"pin-source=file:{hsm.pin_file}" in key.read_text()
    return key, chain


def served_by(port, pki, client):
    """The CN of the certificate the gateway on port presents, after a two-way handshake
    and one HTTP request answered by the backend."""
    ctx = ssl.create_default_context(cafile=str(pki.root))
    ctx.load_cert_chain(str(client.chain), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            cn = dict(x[0] for x in t.getpeercert()["subject"])["commonName"]
            t.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert t.recv(64).startswith(b"HTTP/1.1 200")
    return cn


def test_two_services_with_keys_in_two_tokens(tokens, ca, tmp_path):
    tok_a, tok_b = tokens
    pki, _ = ca
    key_a, chain_a = server_key_in(tok_a, ca, "svc-a", tmp_path)
    key_b, chain_b = server_key_in(tok_b, ca, "svc-b", tmp_path)
    # Each key is in its own token only.
    assert [k for k in tok_a.private_keys() if k.startswith("svc-")][0].startswith("svc-a ")
    assert [k for k in tok_b.private_keys() if k.startswith("svc-")][0].startswith("svc-b ")
    alice = pki.issue_client("two-alice", out=tmp_path)
    backend = HttpEchoBackend()
    port_a, port_b = free_port(), free_port()
    cfg = tmp_path / "gw.conf"
    cfg.write_text("[global]\nworkers = 2\n\n"
                   f"[service a]\nlisten = 127.0.0.1:{port_a}\n"
                   f"backend = 127.0.0.1:{backend.port}\ncert = {chain_a}\nkey = {key_a}\n"
                   f"client-ca = {pki.root}\n\n"
                   f"[service b]\nlisten = 127.0.0.1:{port_b}\n"
                   f"backend = 127.0.0.1:{backend.port}\ncert = {chain_b}\nkey = {key_b}\n"
                   f"client-ca = {pki.root}\n")
    r = run(["gateway", "--config", cfg, "--check"])
    assert r.returncode == 0, r.stdout + r.stderr
    g = Gateway(["--config", cfg])
    try:
        for _ in range(2):  # alternating: both tokens stay logged in, side by side
            assert served_by(port_a, pki, alice) == "svc-a"
            assert served_by(port_b, pki, alice) == "svc-b"
        r = run_cmd(["curl", "-sS", "--fail", "--cacert", pki.root, "--cert", alice.chain,
                     "--key", alice.key, f"https://127.0.0.1:{port_b}/c"], check=True)
        assert json.loads(r.stdout)["path"] == "/c"
    finally:
        assert g.stop() == 0
        backend.close()

    # A process-wide pin-file (here token A's) would send A's PIN to token B: refused, and
    # the message names both files.
    cfg.write_text(cfg.read_text().replace("[global]\n", f"[global]\npin-file = {tok_a.pin_file}\n"))
    r = run(["gateway", "--config", cfg, "--check"])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"pin-source={tok_b.pin_file}" in out and "disagree" in out, out
