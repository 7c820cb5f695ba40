"""`twoway ca init`: the CA hierarchy it creates, checked with python3-cryptography and openssl;
file modes; refusing to overwrite; passphrase-protected keys; key types."""
import os
import sqlite3
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from twoway_testlib import Pki, run, run_cmd
from x509_checks import (OCSP_NOCHECK_OID, assert_aki_matches, cn, ext, fingerprint, has_ext,
                         key_type, load_cert, load_certs, load_crl, utcnow)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_init_makes_root_intermediate_ocsp_and_chain(shared_pki):
    pki = shared_pki
    root, inter, ocsp = load_cert(pki.root), load_cert(pki.intermediate), load_cert(pki.ocsp)
    assert cn(root) == "Test CA Root"
    assert cn(inter) == "Test CA Intermediate"
    assert cn(ocsp) == "Test CA OCSP Signer"
    assert root.issuer == root.subject
    assert inter.issuer == root.subject
    assert ocsp.issuer == inter.subject

    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert has_ext(root, x509.SubjectKeyIdentifier)

    bc = ext(inter, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(inter, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert_aki_matches(inter, root)
    assert inter.not_valid_after <= root.not_valid_after

    bc = ext(ocsp, x509.BasicConstraints)
    assert not bc.value.ca
    assert list(ext(ocsp, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert ext(ocsp, x509.KeyUsage).value.digital_signature
    ocsp.extensions.get_extension_for_oid(OCSP_NOCHECK_OID)  # id-pkix-ocsp-nocheck present
    assert_aki_matches(ocsp, inter)

    # chain.pem: intermediate then root, what a server installs to verify clients.
    chain = load_certs(pki.chain)
    assert [c.subject for c in chain] == [inter.subject, root.subject]


def test_init_chain_verifies_with_openssl(shared_pki):
    pki = shared_pki
    r = run_cmd(["openssl", "verify", "-x509_strict", "-CAfile", pki.root, pki.intermediate])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cmd(["openssl", "verify", "-x509_strict", "-purpose", "ocsphelper", "-CAfile",
                 pki.root, "-untrusted", pki.intermediate, pki.ocsp])
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_prints_root_fingerprint(shared_pki):
    pki = shared_pki
    root = load_cert(pki.root)
    assert pki.root_sha256 == fingerprint(root)
    colon = ":".join(f"{b:02X}" for b in bytes.fromhex(fingerprint(root)))
    assert f"SHA256 fingerprint: {colon}" in pki.init_result.stdout
    assert str(pki.root) in pki.init_result.stdout or "root.crt" in pki.init_result.stdout


def test_init_modes_dirs_0700_keys_0600(shared_pki):
    pki = shared_pki
    assert mode(pki.dir) == 0o700
    assert mode(pki.ca_dir) == 0o700
    for key in ("root.key", "intermediate.key", "ocsp.key"):
        assert mode(pki.ca_dir / key) == 0o600, key
        assert b"PRIVATE KEY" in (pki.ca_dir / key).read_bytes()
        assert b"ENCRYPTED" not in (pki.ca_dir / key).read_bytes()
    assert mode(pki.db) == 0o600


def test_init_writes_first_empty_crl(shared_pki):
    pki = shared_pki
    crl = load_crl(pki.crl)
    assert len(list(crl)) == 0
    assert crl.issuer == load_cert(pki.intermediate).subject
    r = run_cmd(["openssl", "crl", "-in", pki.crl, "-noout", "-CAfile", pki.chain, "-verify"])
    assert r.returncode == 0 and "verify OK" in (r.stdout + r.stderr), r.stderr
    der = load_crl(pki.ca_dir / "crl.der")
    assert der.fingerprint(hashes.SHA256()) == crl.fingerprint(hashes.SHA256())


def test_init_records_ca_certs_and_audit(shared_pki):
    pki = shared_pki
    db = sqlite3.connect(f"file:{pki.db}?mode=ro", uri=True)
    try:
        profiles = sorted(p for (p,) in db.execute("SELECT profile FROM certs"))
        assert profiles == ["intermediate", "ocsp", "root"]
        actions = [(a, r) for a, r in db.execute("SELECT action, result FROM audit")]
        assert ("init", "ok") in actions
        version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        assert version >= 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_init_refuses_to_overwrite(tmp_path):
    pki = Pki(tmp_path)
    before = pki.root.read_bytes()
    r = run(["ca", "init", "--dir", pki.dir])
    assert r.returncode == 1
    assert "already exists" in r.stderr and str(pki.ca_dir) in r.stderr
    assert r.stderr.count("\n") == 1 and r.stdout == ""
    assert pki.root.read_bytes() == before


def test_init_uses_twoway_dir_env(tmp_path):
    d = tmp_path / "from-env"
    r = run(["ca", "init"], env={"TWOWAY_DIR": d})
    assert r.returncode == 0, r.stderr
    assert (d / "ca" / "root.crt").exists()


def test_init_default_dir_is_twoway_data(tmp_path):
    r = run(["ca", "init"], cwd=tmp_path, env={"TWOWAY_DIR": None})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "twoway-data" / "ca" / "root.crt").exists()


@pytest.mark.parametrize("key", ["ec:P-256", "ec:P-384", "ed25519", "rsa:2048"])
def test_init_key_types(tmp_path, key):
    pki = Pki(tmp_path, key=key)
    for path in (pki.root, pki.intermediate, pki.ocsp):
        assert key_type(load_cert(path).public_key()) == key
    leaf = pki.issue_client("alice")
    r = run_cmd(["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile",
                 pki.root, "-untrusted", pki.intermediate, leaf.cert])
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_days_and_name(tmp_path):
    pki = Pki(tmp_path, name="Example Corp", extra_args=["--root-days", "400",
                                                        "--int-days", "200"])
    root, inter = load_cert(pki.root), load_cert(pki.intermediate)
    assert cn(root) == "Example Corp Root"
    assert 399 <= (root.not_valid_after - utcnow()).days <= 400
    assert 199 <= (inter.not_valid_after - utcnow()).days <= 200


def test_init_int_days_capped_at_root(tmp_path):
    pki = Pki(tmp_path, extra_args=["--root-days", "30", "--int-days", "400"])
    assert load_cert(pki.intermediate).not_valid_after <= load_cert(pki.root).not_valid_after


def test_init_with_passphrase_encrypts_keys(tmp_path):
    pki = Pki(tmp_path, passphrase="correct horse battery")
    for key in ("root.key", "intermediate.key", "ocsp.key"):
        assert b"BEGIN ENCRYPTED PRIVATE KEY" in (pki.ca_dir / key).read_bytes()
    # openssl can open it with the passphrase: PKCS#8, standard encryption.
    r = run_cmd(["openssl", "pkey", "-in", pki.ca_dir / "intermediate.key", "-noout",
                 "-passin", f"file:{pki.passphrase_file}"])
    assert r.returncode == 0, r.stderr
    r = run_cmd(["openssl", "asn1parse", "-in", pki.ca_dir / "intermediate.key"])
    assert "aes-256-cbc" in r.stdout.lower()
    assert "scrypt" in r.stdout.lower() or "pbkdf2" in r.stdout.lower()
    pki.issue_client("alice")  # Pki passes --passphrase-file to signing commands


def test_passphrase_missing_or_wrong_is_exit_1(tmp_path):
    pki = Pki(tmp_path, passphrase="correct horse battery")
    r = run(["ca", "issue", "client", "bob", "--dir", pki.dir, "--out", tmp_path / "o"],
            env={"TWOWAY_PASSPHRASE_FILE": None})
    assert r.returncode == 1
    assert "encrypted" in r.stderr and "intermediate.key" in r.stderr
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    r = pki.ca("issue", "client", "bob", "--out", tmp_path / "o", "--passphrase-file", wrong)
    assert r.returncode == 1
    assert "wrong passphrase" in r.stderr and "intermediate.key" in r.stderr
    assert not (tmp_path / "o" / "bob.crt").exists()
    # env variable works in place of the flag
    r = run(["ca", "issue", "client", "bob", "--dir", pki.dir, "--out", tmp_path / "o"],
            env={"TWOWAY_PASSPHRASE_FILE": pki.passphrase_file})
    assert r.returncode == 0, r.stderr


def test_init_short_passphrase_is_refused(tmp_path):
    pw = tmp_path / "short.txt"
    pw.write_text("short\n")
    r = run(["ca", "init", "--dir", tmp_path / "d", "--passphrase-file", pw])
    assert r.returncode in (1, 2)
    assert "passphrase" in r.stderr
    assert not (tmp_path / "d" / "ca").exists()


@pytest.mark.parametrize("args, word", [
    (["--key", "dsa:1024"], "dsa:1024"),
    (["--key", "rsa:1024"], "rsa:1024"),
    (["--base-url", "ftp://ca.example"], "ftp://ca.example"),
    (["--root-days", "zero"], "zero"),
    (["--bogus-flag"], "--bogus-flag"),
])
def test_init_usage_errors_exit_2(tmp_path, args, word):
    r = run(["ca", "init", "--dir", tmp_path / "d"] + args)
    assert r.returncode == 2, r.stderr
    assert word in r.stderr
    assert not (tmp_path / "d" / "ca").exists()


def test_help_exits_0_with_examples():
    r = run(["ca", "init", "--help"])
    assert r.returncode == 0
    assert "--passphrase-file" in r.stdout + r.stderr
