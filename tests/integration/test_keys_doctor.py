"""`twoway doctor HOST:PORT` with the client key in hardware: a SoftHSM2 token (pkcs11: URI
in the key file) and a TPM 2.0 (swtpm, a TSS2 blob) both complete the two-way handshake with a
gateway whose client-ca holds only the root, and doctor explains the success and where the key
is; a wrong PIN is reported in plain words once, never retried."""

import json
import os

import pytest

from backends import HttpEchoBackend
from est_helpers import CaServer, enroll, token
from gateway_helpers import Gateway
from keystores import SoftHsm, Swtpm
from twoway_testlib import Pki, free_port, run, run_cmd


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    return SoftHsm(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="module")
def tpm(tmp_path_factory):
    t = Swtpm(tmp_path_factory.mktemp("swtpm"))
    os.environ.update(t.env)
    yield t
    t.stop()


@pytest.fixture(scope="module")
def site(hsm, tpm, tmp_path_factory):
    """A file-key CA serving EST, and a gateway that trusts only its root for clients."""
    d = tmp_path_factory.mktemp("doctor-hw")
    pki = Pki(d / "ca", name="Doctor HW CA")
    backend = HttpEchoBackend()
    server = pki.issue_server("localhost", san="ip:127.0.0.1", out=d / "srv")
    port = free_port()
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend.port}",
                 "--cert", server.chain, "--key", server.key, "--client-ca", pki.root,
                 "--workers", "1"])
    with CaServer(pki) as srv:
        yield pki, srv, port
    assert g.stop() == 0
    backend.close()


def enroll_device(site, name, out, store):
    pki, srv, _ = site
    tok, _ = token(pki, name)
    r = enroll(srv, name, tok, out, "--key-store", store)
    assert r.returncode == 0, r.stderr
    return out / f"{name}.key", out / f"{name}.chain.pem"


def doctor(site, chain, key, *extra):
    pki, _, port = site
    return run(["doctor", f"127.0.0.1:{port}", "--cert", chain, "--key", key, "--ca", pki.root,
                *extra])


def test_doctor_with_a_token_key(hsm, site, tmp_path):
    key, chain = enroll_device(site, "doc-p11", tmp_path, hsm.uri())
    assert key.read_text().startswith("pkcs11:")
    r = doctor(site, chain, key)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "held     in PKCS#11 token 'twoway' (object 'doc-p11 " in out, out
    assert "The client's handshake signature (CertificateVerify) was made in PKCS#11 token " \
        "'twoway'" in out, out
    assert "Result: two-way TLS handshake OK" in out, out
    j = json.loads(doctor(site, chain, key, "--json").stdout)
    assert j["certificate"]["key_store"].startswith("in PKCS#11 token 'twoway'"), j


def test_doctor_with_a_tpm_key(tpm, site, tmp_path):
    key, chain = enroll_device(site, "doc-tpm", tmp_path, "tpm2:")
    assert key.read_text().startswith("-----BEGIN TSS2 PRIVATE KEY-----")
    r = doctor(site, chain, key)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "held     in the TPM (a TSS2 key blob only that TPM can load)" in out, out
    assert "signature (CertificateVerify) was made in the TPM" in out, out
    assert "Result: two-way TLS handshake OK" in out, out


def test_doctor_wrong_pin_is_said_plainly_and_not_retried(hsm, site, tmp_path):
    key, chain = enroll_device(site, "doc-pin", tmp_path, hsm.uri())
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("0000\n")
    wrong.chmod(0o600)
    # The key file names the token's PIN file; point a copy at the wrong one.
    bad_key = tmp_path / "bad.key"
    bad_key.write_text(key.read_text().replace(str(hsm.pin_file), str(wrong)))
    bad_key.chmod(0o600)
    r = doctor(site, chain, bad_key)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert out.count("wrong PIN") == 1, out
    assert f"the key {bad_key} is in PKCS#11 token 'twoway' (object 'doc-pin " in out, out
    assert "the token refused the PIN. Put the token's user PIN on the first line" in out, out
    assert "It was tried once and will not be tried again" in out, out
    assert "token 'twoway': wrong PIN (not retried" in out, out
    # One refusal only: the token still takes the right PIN and is not locked.
    info = run_cmd(["pkcs11-tool", "--module", "/usr/lib/softhsm/libsofthsm2.so", "-T"],
                   check=True).stdout
    assert "locked" not in info.lower(), info
    r = doctor(site, chain, key)
    assert r.returncode == 0, r.stdout + r.stderr
