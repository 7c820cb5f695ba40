"""`twoway ca issue --csr`: only the public key and allowed SANs are taken; the CSR's signature is
verified; malformed and mis-signed requests get a one-line error naming the file."""
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from x509_checks import cn, eku, ext, load_cert, make_csr, openssl_verify, sans

DATA = Path(__file__).resolve().parents[1] / "data"


def spki(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def test_csr_public_key_and_sans_only(shared_pki, tmp_path):
    sneaky = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                       crl_sign=True, encipher_only=False, decipher_only=False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
    ]
    csr, key = make_csr(tmp_path, "bob", cn_value="evil root",
                        sans_list=[x509.DNSName("bob.example.test"),
                                   x509.RFC822Name("bob@example.test")],
                        extensions=sneaky)
    leaf = shared_pki.issue_client("bob", csr=csr, out=tmp_path)
    assert leaf.key is None and not (tmp_path / "bob.key").exists()
    assert "key:" not in leaf.stdout
    cert = load_cert(leaf.cert)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert cn(cert) == "bob"  # the CSR's subject is ignored
    assert sorted(sans(cert)) == ["dns:bob.example.test", "email:bob@example.test"]
    assert not ext(cert, x509.BasicConstraints).value.ca
    ku = ext(cert, x509.KeyUsage).value
    assert not ku.key_cert_sign and not ku.crl_sign
    assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    r = openssl_verify(leaf.cert, shared_pki.root, shared_pki.intermediate, purpose="sslclient")
    assert r.returncode == 0, r.stdout + r.stderr


def test_csr_der_and_key_types(shared_pki, tmp_path):
    for i, key in enumerate([ec.generate_private_key(ec.SECP384R1()),
                             ed25519.Ed25519PrivateKey.generate(),
                             rsa.generate_private_key(public_exponent=65537, key_size=2048)]):
        path, _ = make_csr(tmp_path, f"k{i}", key=key)
        der = tmp_path / f"k{i}.der"
        der.write_bytes(x509.load_pem_x509_csr(path.read_bytes())
                        .public_bytes(serialization.Encoding.DER))
        leaf = shared_pki.issue_client(f"k{i}", csr=der, out=tmp_path)
        assert spki(load_cert(leaf.cert).public_key()) == spki(key.public_key())


def test_server_csr_with_email_san_is_refused(shared_pki, tmp_path):
    csr, _ = make_csr(tmp_path, "srv", sans_list=[x509.RFC822Name("x@example.test")])
    r = shared_pki.ca("issue", "server", "srv.example.test", "--csr", csr, "--out", tmp_path)
    assert r.returncode == 1
    assert "email" in r.stderr
    assert not (tmp_path / "srv.example.test.crt").exists()


def test_mis_signed_csr_made_now_is_refused(shared_pki, tmp_path):
    csr, _ = make_csr(tmp_path, "forged", corrupt_signature=True)
    r = shared_pki.ca("issue", "client", "forged", "--csr", csr, "--out", tmp_path)
    assert r.returncode == 1
    assert str(csr) in r.stderr or csr.name in r.stderr
    assert "signature" in r.stderr.lower()
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "forged.crt").exists()


@pytest.mark.parametrize("fixture, words", [
    ("csr_bad_signature.pem", ["signature"]),
    ("csr_truncated.pem", []),
    ("csr_garbage.pem", []),
    ("csr_empty.pem", []),
    ("csr_der_garbage.der", []),
    ("csr_is_a_certificate.pem", []),
    ("csr_rsa1024.pem", ["1024"]),
])
def test_malformed_csr_fixtures_are_refused(shared_pki, tmp_path, fixture, words):
    r = shared_pki.ca("issue", "client", "mallory", "--csr", DATA / fixture, "--out", tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.startswith("twoway: ")
    assert fixture in r.stderr  # the message names the file at fault
    assert r.stderr.count("\n") == 1
    for w in words:
        assert w in r.stderr.lower()
    assert r.stdout == ""
    assert not (tmp_path / "mallory.crt").exists()


def test_oversized_csr_is_refused(shared_pki, tmp_path):
    big = tmp_path / "big.csr"
    big.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * 70000 +
                    b"\n-----END CERTIFICATE REQUEST-----\n")
    r = shared_pki.ca("issue", "client", "big", "--csr", big, "--out", tmp_path)
    assert r.returncode == 1
    assert "big.csr" in r.stderr


def test_missing_csr_file(shared_pki, tmp_path):
    r = shared_pki.ca("issue", "client", "nobody", "--csr", tmp_path / "nope.csr",
                      "--out", tmp_path)
    assert r.returncode == 1
    assert "nope.csr" in r.stderr


def test_csr_with_p12_is_usage_error(shared_pki, tmp_path):
    csr, _ = make_csr(tmp_path, "p")
    pw = tmp_path / "pw"
    pw.write_text("password\n")
    r = shared_pki.ca("issue", "client", "p", "--csr", csr, "--p12", "--p12-pass-file", pw,
                      "--out", tmp_path)
    assert r.returncode == 2


def test_csr_failures_leave_no_inventory_row(shared_pki, tmp_path):
    before = shared_pki.ca("list", "--json", check=True).stdout
    shared_pki.ca("issue", "client", "ghost", "--csr", DATA / "csr_bad_signature.pem",
                  "--out", tmp_path)
    r = shared_pki.ca("show", "ghost")
    assert r.returncode == 1
    assert shared_pki.ca("list", "--json", check=True).stdout == before
