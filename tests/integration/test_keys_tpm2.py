"""Keys in a TPM 2.0 (swtpm, a simulator started by the test on free loopback ports, reached by
Debian's tpm2-openssl provider through $TPM2OPENSSL_TCTI): a device key made inside the TPM
enrolls, serves mTLS through `twoway tunnel`, renews with --rekey, and is useless without the
TPM; a persistent handle works as a key reference."""

import os
import socket
import ssl

import pytest

from backends import HttpEchoBackend
from est_helpers import CaServer, enroll, token
from gateway_helpers import Gateway
from hwkey_helpers import curl_tls13_and_tls12, enroll_server
from keystores import Swtpm, check_ca_signs
from test_tunnel import Tunnel, client_cert_cn, http_get
from twoway_testlib import Pki, free_port, run, run_cmd


@pytest.fixture(scope="module")
def tpm(tmp_path_factory):
    t = Swtpm(tmp_path_factory.mktemp("swtpm"))
    os.environ.update(t.env)  # every twoway started below reaches this TPM
    yield t
    t.stop()


@pytest.fixture(scope="module")
def ca(tpm, tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("tpm-ca"), name="TPM Test CA")
    with CaServer(pki) as srv:
        yield pki, srv


@pytest.fixture(scope="module")
def backend():
    b = HttpEchoBackend()
    yield b
    b.close()


def test_device_key_in_tpm_enrolls_tunnels_and_renews(tpm, ca, backend, tmp_path):
    pki, srv = ca
    tok, _ = token(pki, "dev1")
    r = enroll(srv, "dev1", tok, tmp_path, "--key-store", "tpm2:")
    assert r.returncode == 0, r.stderr
    key, crt, chain = tmp_path / "dev1.key", tmp_path / "dev1.crt", tmp_path / "dev1.chain.pem"
    blob = key.read_text()
    # A TPM-wrapped blob, not a private key: no software can load it without this TPM.
    assert blob.startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    assert run_cmd(["openssl", "pkey", "-in", key, "-noout"]).returncode != 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"

    server = pki.issue_server("localhost", san="ip:127.0.0.1", out=tmp_path / "srv")
    port = free_port()
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend.port}",
                 "--cert", server.chain, "--key", server.key, "--client-ca", pki.chain,
                 "--workers", "1"])
    try:
        def through_tunnel():
            listen = free_port()
            with Tunnel(["--listen", f"127.0.0.1:{listen}", "--target", f"127.0.0.1:{port}",
                         "--cert", chain, "--key", key, "--ca", pki.chain, "--workers", "1",
                         "--access-log", "off"]):
                status, resp = http_get(listen)
                assert status is not None and " 200 " in status + " ", status
                return client_cert_cn(resp)

        subject, serial1 = through_tunnel()
        assert subject == "CN=dev1"

        (tmp_path / "ca.pem").write_bytes(pki.root.read_bytes())
        r = run(["renew", "--cert", crt, "--key", key, "--server", srv.url, "--rekey"])
        assert r.returncode == 0, r.stderr
        assert key.read_text() != blob and key.read_text().startswith("-----BEGIN TSS2")
        subject, serial2 = through_tunnel()
        assert subject == "CN=dev1" and serial2 != serial1
    finally:
        assert g.stop() == 0


def test_persistent_handle_is_a_key_reference(tpm, ca, backend, tmp_path):
    pki, _ = ca
    env = dict(tpm.env)
    primary, child = tmp_path / "primary.ctx", tmp_path / "key.ctx"
    # Without a resource manager every tool leaves its objects loaded: flush after each, as
    # the simulator has room for only a few.
    steps = [
        ["tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc", "-c", primary],
        ["tpm2_create", "-C", primary, "-G", "ecc256:ecdsa", "-u", tmp_path / "k.pub", "-r",
         tmp_path / "k.priv"],
        ["tpm2_load", "-C", primary, "-u", tmp_path / "k.pub", "-r", tmp_path / "k.priv", "-c",
         child],
        ["tpm2_evictcontrol", "-C", "o", "-c", child, "0x81000010"],
    ]
    for step in steps:
        run_cmd(["tpm2_flushcontext", "-t"], env=env, check=True)
        run_cmd(step, env=env, check=True)
    run_cmd(["tpm2_flushcontext", "-t"], env=env, check=True)
    r = run(["gateway", "--check", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
             "--cert", pki.root, "--key", "tpm2:handle:0x81000010", "--client-ca", pki.chain])
    # The handle loads (the TPM answered); the key is not the root's, and --check says so.
    assert r.returncode == 1 and "does not match the certificate" in r.stdout + r.stderr, \
        r.stdout + r.stderr


def test_missing_handle_and_foreign_blob_are_named(tpm, ca, tmp_path):
    pki, _ = ca
    r = run(["gateway", "--check", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
             "--cert", pki.root, "--key", "tpm2:handle:0x81000099", "--client-ca", pki.chain])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "tpm2:handle:0x81000099: no private key at this handle" in out or \
        "tpm2:handle:0x81000099: cannot open the TPM object" in out, out
    r = run(["gateway", "--check", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
             "--cert", pki.root, "--key", "tpm2:file.pem", "--client-ca", pki.chain])
    assert r.returncode == 1 and "use tpm2:handle:0x81XXXXXX" in r.stdout + r.stderr


def test_unreachable_tpm_is_named(tpm, ca, tmp_path):
    pki, srv = ca
    tok, _ = token(pki, "dev9")
    dead = free_port()
    r = run(["enroll", srv.url, "--name", "dev9", "--token", tok, "--ca-fingerprint",
             pki.root_sha256, "--out", tmp_path, "--key-store", "tpm2:"],
            env={"TPM2OPENSSL_TCTI": f"swtpm:host=127.0.0.1,port={dead}"})
    assert r.returncode == 1
    assert "cannot load the tpm2 OpenSSL provider (Debian package tpm2-openssl) or reach the " \
        "TPM" in r.stderr
    assert not (tmp_path / "dev9.key").exists()


def transient_handles(tpm):
    """The TPM's loaded transient objects (swtpm has no resource manager: what a process
    leaves loaded stays loaded after it exits)."""
    out = run_cmd(["tpm2_getcap", "handles-transient"], env=tpm.env, check=True).stdout
    return [line for line in out.splitlines() if line.strip().startswith("- 0x")]


@pytest.fixture(scope="module")
def tpm_ca(tpm, tmp_path_factory):
    """`ca init --key-store tpm2:`: root, intermediate and OCSP signer keys made in the TPM,
    one after the other, although swtpm has only three transient object slots."""
    run_cmd(["tpm2_flushcontext", "-t"], env=tpm.env, check=True)
    pki = Pki(tmp_path_factory.mktemp("tpm-ca3"), name="TPM CA",
              extra_args=["--key-store", "tpm2:"])
    assert transient_handles(tpm) == []  # every key flushed after use
    with CaServer(pki) as srv:
        yield pki, srv


def test_ca_with_all_three_keys_in_the_tpm(tpm, tpm_ca, tmp_path):
    """The key files are TSS2 blobs, no private key in them; the CA issues, revokes, signs a
    CRL and answers OCSP, and openssl accepts each result."""
    pki, srv = tpm_ca
    for f in ("root.key", "intermediate.key", "ocsp.key"):
        text = (pki.ca_dir / f).read_text()
        assert text.startswith("-----BEGIN TSS2 PRIVATE KEY-----") and "BEGIN PRIVATE" not in text
    r = run_cmd(["openssl", "verify", "-CAfile", pki.root, "-untrusted", pki.intermediate,
                 pki.ocsp], check=True)
    assert f"{pki.ocsp}: OK" in r.stdout
    check_ca_signs(pki, srv.port, tmp_path, prefix="tpm-")
    # The blobs are useless without this TPM: another (fresh) TPM cannot load them.
    other = Swtpm(tmp_path / "other-tpm")
    try:
        r = run(["ca", "crl", "--dir", pki.dir], env={**os.environ, **other.env})
        assert r.returncode == 1 and "intermediate.key" in r.stderr, r.stderr
    finally:
        other.stop()


def test_tpm_ca_serves_est_enrollment(tpm_ca, tmp_path):
    """`ca serve` with its keys in the TPM: its TLS, the certificate it issues over EST and
    the chain it hands out are all signed there; openssl accepts the certificate."""
    pki, srv = tpm_ca
    tok, _ = token(pki, "est-dev")
    r = enroll(srv, "est-dev", tok, tmp_path)
    assert r.returncode == 0, r.stderr + srv.output()[-3000:]
    r = run_cmd(["openssl", "verify", "-CAfile", pki.root, "-untrusted", pki.intermediate,
                 tmp_path / "est-dev.crt"], check=True)
    assert "OK" in r.stdout
    r = run_cmd(["curl", "-sS", "--fail", "--cacert", pki.root, "-o", tmp_path / "cacerts.p7",
                 f"{srv.url}/.well-known/est/cacerts"], check=True)
    assert (tmp_path / "cacerts.p7").stat().st_size > 0


def test_gateway_key_in_tpm_serves_curl_and_python_root_only_client_ca(tpm_ca, backend,
                                                                        tmp_path):
    """A gateway whose own key was made in the TPM (enrolled from the TPM CA) serves curl and
    Python's ssl over TLS 1.3 and 1.2; its client-ca holds only the root, and the clients
    send their intermediate."""
    pki, srv = tpm_ca
    key, chain = enroll_server(srv, "tpm-gw", tmp_path, "tpm2:")
    assert key.read_text().startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    alice = pki.issue_client("tpm-alice", out=tmp_path)
    port = free_port()
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend.port}",
                 "--cert", chain, "--key", key, "--client-ca", pki.root, "--workers", "2"])
    try:
        curl_tls13_and_tls12(port, pki.root, alice.chain, alice.key)
        ctx = ssl.create_default_context(cafile=str(pki.root))
        ctx.load_cert_chain(str(alice.chain), str(alice.key))
        for _ in range(3):  # the key is loaded from its blob for each handshake
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                    peer = t.getpeercert()
                    assert dict(x[0] for x in peer["subject"])["commonName"] == "tpm-gw"
                    t.sendall(b"GET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    assert t.recv(64).startswith(b"HTTP/1.1 200")
        # A client without a certificate is refused: the client-ca check is real.
        bare = ssl.create_default_context(cafile=str(pki.root))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                with bare.wrap_socket(s, server_hostname="127.0.0.1") as t:
                    t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not t.recv(64):
                        raise ConnectionError("closed")
    finally:
        assert g.stop() == 0
