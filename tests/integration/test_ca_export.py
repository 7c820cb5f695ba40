"""`twoway ca export`: PEM bundles and PKCS#12 (modern and legacy) loaded by python3-cryptography
and `openssl pkcs12`."""
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from x509_checks import load_cert, load_certs, run_cmd

PASS = "export-pass-123"


@pytest.fixture
def leaf(pki, tmp_path):
    issued = pki.issue_client("alice")
    pw = tmp_path / "p12pass.txt"
    pw.write_text(PASS + "\n")
    return issued, pw


def test_export_pem_to_stdout_with_key(pki, leaf):
    issued, _ = leaf
    r = pki.ca("export", "alice", "--pem", "--key", issued.key, "--out", "-")
    assert r.returncode == 0, r.stderr
    assert r.stdout.index("PRIVATE KEY") < r.stdout.index("BEGIN CERTIFICATE")
    path = issued.cert.parent / "bundle.pem"
    path.write_text(r.stdout)
    certs = load_certs(path)
    assert [c.subject for c in certs] == [load_cert(issued.cert).subject,
                                         load_cert(pki.intermediate).subject,
                                         load_cert(pki.root).subject]
    serialization.load_pem_private_key(path.read_bytes(), password=None)


def test_export_pem_without_key_to_default_file(pki, leaf, tmp_path):
    r = pki.ca("export", "alice", "--pem", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "alice.pem"
    assert "exported: " in r.stdout
    assert "PRIVATE KEY" not in out.read_text()
    assert len(load_certs(out)) == 3


def p12_info(path, *extra):
    return run_cmd(["openssl", "pkcs12", "-info", "-in", path, "-noout", "-passin",
                    f"pass:{PASS}"] + list(extra))


def test_export_p12_modern(pki, leaf, tmp_path):
    issued, pw = leaf
    out = tmp_path / "alice.p12"
    r = pki.ca("export", "alice", "--p12", "--key", issued.key, "--p12-pass-file", pw,
               "--out", out)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    key, cert, extra = pkcs12.load_key_and_certificates(out.read_bytes(), PASS.encode())
    assert cert == load_cert(issued.cert)
    assert [c.subject for c in extra] == [load_cert(pki.intermediate).subject,
                                         load_cert(pki.root).subject] or \
        sorted(c.subject.rfc4514_string() for c in extra) == sorted(
            [load_cert(pki.intermediate).subject.rfc4514_string(),
             load_cert(pki.root).subject.rfc4514_string()])
    info = p12_info(out)
    assert info.returncode == 0, info.stderr
    text = (info.stdout + info.stderr).lower()
    assert "mac: sha256" in text
    assert "aes-256-cbc" in text and "pbkdf2" in text
    # friendly name is NAME
    p12 = pkcs12.load_pkcs12(out.read_bytes(), PASS.encode())
    assert p12.cert.friendly_name == b"alice"


def test_export_p12_legacy(pki, leaf, tmp_path):
    issued, pw = leaf
    out = tmp_path / "legacy.p12"
    r = pki.ca("export", "alice", "--p12", "--p12-legacy", "--key", issued.key,
               "--p12-pass-file", pw, "--out", out)
    assert r.returncode == 0, r.stderr
    key, cert, extra = pkcs12.load_key_and_certificates(out.read_bytes(), PASS.encode())
    assert cert == load_cert(issued.cert)
    for flags in ([], ["-legacy"]):
        info = p12_info(out, *flags)
        assert info.returncode == 0, info.stderr
        text = info.stdout + info.stderr
        assert "MAC: sha1" in text
        assert "pbeWithSHA1And3-KeyTripleDES-CBC" in text


def test_export_p12_wrong_password_fails_in_openssl(pki, leaf, tmp_path):
    issued, pw = leaf
    out = tmp_path / "alice.p12"
    pki.ca("export", "alice", "--p12", "--key", issued.key, "--p12-pass-file", pw,
           "--out", out, check=True)
    r = run_cmd(["openssl", "pkcs12", "-info", "-in", out, "-noout", "-passin", "pass:wrong"])
    assert r.returncode != 0


def test_export_p12_needs_password_file(pki, leaf, tmp_path):
    issued, _ = leaf
    r = pki.ca("export", "alice", "--p12", "--key", issued.key, "--out", tmp_path / "x.p12",
               env={"TWOWAY_P12_PASS_FILE": None})
    assert r.returncode == 2
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = pki.ca("export", "alice", "--p12", "--key", issued.key, "--p12-pass-file", empty,
               "--out", tmp_path / "x.p12")
    assert r.returncode == 1
    assert not (tmp_path / "x.p12").exists()


def test_export_refuses_mismatched_or_loose_key(pki, leaf, tmp_path):
    issued, pw = leaf
    other = pki.issue_client("other", out=tmp_path / "other")
    r = pki.ca("export", "alice", "--p12", "--key", other.key, "--p12-pass-file", pw,
               "--out", tmp_path / "m.p12")
    assert r.returncode == 1
    assert str(other.key) in r.stderr or "other.key" in r.stderr
    os.chmod(issued.key, 0o644)
    r = pki.ca("export", "alice", "--p12", "--key", issued.key, "--p12-pass-file", pw,
               "--out", tmp_path / "l.p12")
    assert r.returncode == 1
    assert "alice.key" in r.stderr
    assert not (tmp_path / "l.p12").exists()


def test_export_refuses_existing_output(pki, leaf, tmp_path):
    out = tmp_path / "exists.pem"
    out.write_text("keep me")
    r = pki.ca("export", "alice", "--pem", "--out", out)
    assert r.returncode == 1
    assert "exists.pem" in r.stderr
    assert out.read_text() == "keep me"
    r = pki.ca("export", "alice", "--pem", "--out", out, "--force")
    assert r.returncode == 0
    assert len(load_certs(out)) == 3


def test_export_unknown_name(pki, tmp_path):
    r = pki.ca("export", "nobody", "--pem", "--out", tmp_path / "n.pem")
    assert r.returncode == 1
    assert "nobody" in r.stderr


def test_export_needs_a_format(pki, leaf):
    r = pki.ca("export", "alice")
    assert r.returncode == 2
