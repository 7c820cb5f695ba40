"""The PIN and the PKCS#11 module of a token key from flags and config keys instead of the
URI: `--pin-file` / `--pkcs11-module` on the CA, enroll, doctor and gateway commands,
`pin-file =` / `pkcs11-module =` in a gateway or tunnel config. A group-readable PIN file is
refused like a key file; a URI that names a different PIN file or module than the flag is
refused (neither silently wins)."""

import json
import socket
import ssl

import pytest

from backends import HttpEchoBackend
from gateway_helpers import Gateway
from keystores import SOFTHSM_MODULE, SoftHsm
from test_tunnel import Tunnel, client_cert_cn, http_get
from twoway_testlib import Pki, free_port, run, run_cmd


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    return SoftHsm(tmp_path_factory.mktemp("softhsm-pin"), label="pins")


def bare(**attrs):
    """A URI naming only the token (and key): neither pin-source= nor module-path=."""
    return ";".join(["pkcs11:token=pins"] + [f"{k}={v}" for k, v in attrs.items()])


@pytest.fixture(scope="module")
def flags(hsm):
    return ["--pin-file", str(hsm.pin_file), "--pkcs11-module", SOFTHSM_MODULE]


@pytest.fixture(scope="module")
def ca(hsm, flags, tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pin-ca"), name="Pin CA",
               extra_args=["--key-store", bare(), *flags])


@pytest.fixture(scope="module")
def backend():
    b = HttpEchoBackend()
    yield b
    b.close()


def test_ca_made_and_used_with_flags_only(hsm, ca, flags, tmp_path):
    text = (ca.ca_dir / "root.key").read_text()
    assert text.startswith("pkcs11:token=pins;object=Pin%20CA%20Root")
    assert "pin-source" not in text and "module-path" not in text
    got = ca.issue_client("flag-alice", out=tmp_path, extra=flags)
    r = run_cmd(["openssl", "verify", "-CAfile", ca.root, "-untrusted", ca.intermediate,
                 got.cert], check=True)
    assert f"{got.cert}: OK" in r.stdout
    ca.ca("revoke", got.serial, *flags, check=True)
    ca.ca("crl", *flags, check=True)
    r = run_cmd(["openssl", "crl", "-in", ca.crl, "-CAfile", ca.chain, "-noout", "-text"],
                check=True)
    assert "verify OK" in r.stdout + r.stderr and got.serial.upper() in r.stdout.upper()
    # Without the flags the key cannot be reached, and the error says how to give them.
    r = ca.ca("issue", "client", "no-flags", "--out", tmp_path)
    assert r.returncode == 1 and "--pkcs11-module" in r.stderr, r.stderr
    r = ca.ca("issue", "client", "no-pin", "--out", tmp_path, "--pkcs11-module", SOFTHSM_MODULE)
    assert r.returncode == 1 and "needs a PIN" in r.stderr and "--pin-file" in r.stderr


def test_group_readable_pin_file_is_refused(hsm, ca, tmp_path):
    loose = tmp_path / "pin"
    loose.write_text(hsm.pin + "\n")
    loose.chmod(0o640)
    r = ca.ca("issue", "client", "loose", "--out", tmp_path, "--pin-file", loose,
              "--pkcs11-module", SOFTHSM_MODULE)
    assert r.returncode == 2, r.stderr
    assert f"key {loose} is accessible by group or others (mode 0640)" in r.stderr
    assert hsm.pin not in r.stderr + r.stdout
    r = ca.ca("issue", "client", "missing", "--out", tmp_path, "--pin-file", tmp_path / "none",
              "--pkcs11-module", SOFTHSM_MODULE)
    assert r.returncode == 2 and "cannot open key" in r.stderr
    r = ca.ca("issue", "client", "nomod", "--out", tmp_path, "--pkcs11-module",
              tmp_path / "no.so")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_uri_and_flag_that_disagree_are_refused(hsm, ca, tmp_path):
    other = tmp_path / "other-pin"
    other.write_text(hsm.pin + "\n")
    other.chmod(0o600)
    r = run(["ca", "init", "--dir", tmp_path / "x", "--key-store", hsm.uri(), "--pin-file",
             other])
    assert r.returncode == 1
    assert (f"the URI's pin-source={hsm.pin_file} and --pin-file {other} disagree"
            in r.stderr), r.stderr
    # The same file given twice is no conflict.
    r = run(["ca", "init", "--dir", tmp_path / "y", "--name", "Twice CA", "--key-store",
             hsm.uri(), "--pin-file", hsm.pin_file])
    assert r.returncode == 0, r.stderr


def https_get(port, ca, client):
    r = run_cmd(["curl", "-sS", "--fail", "--cacert", ca.root, "--cert", client.cert, "--key",
                 client.key, f"https://127.0.0.1:{port}/p"], check=True)
    assert json.loads(r.stdout)["path"] == "/p"
    ctx = ssl.create_default_context(cafile=str(ca.root))
    ctx.load_cert_chain(str(client.chain), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert dict(x[0] for x in t.getpeercert()["subject"])["commonName"] == "pin-gw"




def test_gateway_and_tunnel_take_them_from_config_and_flags(hsm, ca, flags, backend, tmp_path):
    r = run(["enroll", "--help"])
    assert "--pin-file" in r.stdout and "--pkcs11-module" in r.stdout
    alice = ca.issue_client("pin-alice", out=tmp_path, extra=flags)
    out = tmp_path / "gw"
    r = run(["ca", "issue", "server", "pin-gw", "--san", "ip:127.0.0.1", "--out", out,
             "--dir", ca.dir, *flags])
    assert r.returncode == 0, r.stderr
    # Move the server's key into the token as a non-extractable object, then forget the file.
    pem = out / "pin-gw.key"
    der = tmp_path / "gw.der"
    run_cmd(["openssl", "pkey", "-in", pem, "-outform", "DER", "-out", der], check=True)
    hsm.tool("--write-object", der, "--type", "privkey", "--label", "pin-gw", "--id", "77",
             "--usage-sign", "--sensitive")
    pub = tmp_path / "gw.pub"
    run_cmd(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER", "-out", pub],
            check=True)
    hsm.tool("--write-object", pub, "--type", "pubkey", "--label", "pin-gw", "--id", "77")
    pem.unlink()
    key = tmp_path / "gw.key"
    key.write_text(bare(object="pin-gw") + "\n")
    key.chmod(0o600)

    port = free_port()
    cfg = tmp_path / "gw.conf"
    cfg.write_text(f"[global]\npin-file = {hsm.pin_file}\npkcs11-module = {SOFTHSM_MODULE}\n"
                   "workers = 1\n\n[service web]\n"
                   f"listen = 127.0.0.1:{port}\nbackend = 127.0.0.1:{backend.port}\n"
                   f"cert = {out / 'pin-gw.chain.pem'}\nkey = {key}\n"
                   f"client-ca = {ca.chain}\n")
    r = run(["gateway", "--config", cfg, "--check"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["doctor", "--cert", out / "pin-gw.crt", "--key", key, "--ca", ca.chain, *flags])
    assert "pin-gw" in r.stdout + r.stderr
    g = Gateway(["--config", cfg])
    try:
        https_get(port, ca, alice)
        # A tunnel whose client key is in the token, PIN and module from its config.
        tkey = tmp_path / "alice-token.key"
        apem = alice.key
        der = tmp_path / "alice.der"
        run_cmd(["openssl", "pkey", "-in", apem, "-outform", "DER", "-out", der], check=True)
        hsm.tool("--write-object", der, "--type", "privkey", "--label", "pin-alice", "--id",
                 "78", "--usage-sign", "--sensitive")
        run_cmd(["openssl", "pkey", "-in", apem, "-pubout", "-outform", "DER", "-out", der],
                check=True)
        hsm.tool("--write-object", der, "--type", "pubkey", "--label", "pin-alice", "--id",
                 "78")
        tkey.write_text(bare(object="pin-alice") + "\n")
        tkey.chmod(0o600)
        listen = free_port()
        with Tunnel(["--listen", f"127.0.0.1:{listen}", "--target", f"127.0.0.1:{port}",
                     "--server-name", "127.0.0.1", "--cert", alice.chain, "--key", tkey,
                     "--ca", ca.chain, "--workers", "1", "--access-log", "off", *flags]):
            status, resp = http_get(listen)
            assert status is not None and " 200 " in status + " ", status
            assert client_cert_cn(resp)[0] == "CN=pin-alice"
    finally:
        assert g.stop() == 0
    # The same gateway from flags only.
    port2 = free_port()
    g = Gateway(["--listen", f"127.0.0.1:{port2}", "--backend", f"127.0.0.1:{backend.port}",
                 "--cert", out / "pin-gw.chain.pem", "--key", key, "--client-ca", ca.chain,
                 "--workers", "1", *flags])
    try:
        https_get(port2, ca, alice)
    finally:
        assert g.stop() == 0
    # A config without pin-file: the gateway refuses to start and says why.
    cfg.write_text(cfg.read_text().replace(f"pin-file = {hsm.pin_file}\n", ""))
    r = run(["gateway", "--config", cfg, "--check"])
    assert r.returncode == 1 and "needs a PIN" in r.stdout + r.stderr
