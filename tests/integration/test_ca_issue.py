"""`twoway ca issue`: client and server profiles checked with openssl verify and
python3-cryptography; validity rules; key types; files and modes."""
import datetime
import ipaddress
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from twoway_testlib import Pki
from x509_checks import (assert_aki_matches, cn, eku, ext, fingerprint, has_ext, key_type,
                         load_cert, load_certs, openssl_verify, sans, utcnow)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def verify_ok(pki, leaf, purpose):
    r = openssl_verify(leaf, pki.root, pki.intermediate, purpose=purpose)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{leaf}: OK" in r.stdout


def common_leaf_checks(pki, cert):
    inter = load_cert(pki.intermediate)
    assert cert.issuer == inter.subject
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert has_ext(cert, x509.SubjectKeyIdentifier)
    assert_aki_matches(cert, inter)
    assert ext(cert, x509.KeyUsage).critical
    # 128-bit random positive serial
    assert 0 < cert.serial_number < 2 ** 128
    # notBefore backdated a few minutes for clock skew, not more than an hour
    skew = utcnow() - cert.not_valid_before
    assert datetime.timedelta(minutes=1) <= skew <= datetime.timedelta(hours=1)
    assert cert.not_valid_after <= inter.not_valid_after
    assert cert.version == x509.Version.v3


def test_client_profile(shared_pki):
    pki = shared_pki
    leaf = pki.issue_client("alice", san="email:alice@example.com,uri:spiffe://example.com/alice")
    cert = load_cert(leaf.cert)
    verify_ok(pki, leaf.cert, "sslclient")
    common_leaf_checks(pki, cert)
    assert cn(cert) == "alice"
    assert eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ku = ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    assert sorted(sans(cert)) == ["email:alice@example.com", "uri:spiffe://example.com/alice"]
    # not usable as a server certificate
    r = openssl_verify(leaf.cert, pki.root, pki.intermediate, purpose="sslserver")
    assert r.returncode != 0
    # default 30 days, P-256
    assert 29 <= (cert.not_valid_after - utcnow()).days <= 30
    assert key_type(cert.public_key()) == "ec:P-256"
    # serial printed is the certificate's, upper-case hex
    assert int(leaf.serial, 16) == cert.serial_number
    assert "Issued client certificate for alice" in leaf.stdout


def test_server_profile_adds_name_as_san(shared_pki):
    pki = shared_pki
    leaf = pki.issue_server("web.example.test", san="dns:www.example.test,ip:127.0.0.1,ip:::1")
    cert = load_cert(leaf.cert)
    verify_ok(pki, leaf.cert, "sslserver")
    common_leaf_checks(pki, cert)
    assert eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert sans(cert)[0] == "dns:web.example.test"  # NAME first
    assert set(sans(cert)) == {"dns:web.example.test", "dns:www.example.test", "ip:127.0.0.1",
                               "ip:::1"}
    assert 89 <= (cert.not_valid_after - utcnow()).days <= 90
    r = openssl_verify(leaf.cert, pki.root, pki.intermediate, purpose="sslclient")
    assert r.returncode != 0


def test_server_named_by_ip_gets_ip_san(shared_pki):
    leaf = shared_pki.issue("server", "127.0.0.2")
    assert sans(load_cert(leaf.cert)) == ["ip:127.0.0.2"]
    verify_ok(shared_pki, leaf.cert, "sslserver")


def test_files_written_with_modes(shared_pki, tmp_path):
    out = tmp_path / "newdir" / "certs"
    leaf = shared_pki.issue_client("files", out=out)
    assert leaf.cert == out / "files.crt" or leaf.cert.resolve() == (out / "files.crt").resolve()
    assert mode(out) == 0o700
    assert mode(leaf.key) == 0o600
    key = serialization.load_pem_private_key(leaf.key.read_bytes(), password=None)
    cert = load_cert(leaf.cert)
    assert key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == \
        cert.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    chain = load_certs(leaf.chain)
    assert [c.subject for c in chain] == [cert.subject, load_cert(shared_pki.intermediate).subject]
    assert f"sha256: {fingerprint(cert)}" in leaf.stdout


def test_serials_are_random_and_distinct(shared_pki, tmp_path):
    serials = {load_cert(shared_pki.issue_client(f"s{i}", out=tmp_path).cert).serial_number
               for i in range(4)}
    assert len(serials) == 4
    assert max(s.bit_length() for s in serials) > 100  # random, not a counter


def test_days_and_cap_at_issuer(shared_pki, tmp_path):
    leaf = shared_pki.issue_client("short", days=7, out=tmp_path)
    assert 6 <= (load_cert(leaf.cert).not_valid_after - utcnow()).days <= 7
    leaf = shared_pki.issue_client("forever", days=100000, out=tmp_path)
    assert load_cert(leaf.cert).not_valid_after == \
        load_cert(shared_pki.intermediate).not_valid_after


@pytest.mark.parametrize("key", ["ec:P-384", "ed25519", "rsa:2048", "rsa:3072", "rsa:4096"])
def test_leaf_key_types(shared_pki, tmp_path, key):
    leaf = shared_pki.issue_client(f"k-{key.replace(':', '-')}", key=key, out=tmp_path)
    cert = load_cert(leaf.cert)
    assert key_type(cert.public_key()) == key
    verify_ok(shared_pki, leaf.cert, "sslclient")


def test_rsa_server_has_key_encipherment(shared_pki, tmp_path):
    leaf = shared_pki.issue_server("rsa.example.test", san=None, key="rsa:2048", out=tmp_path)
    ku = ext(load_cert(leaf.cert), x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    verify_ok(shared_pki, leaf.cert, "sslserver")


def test_base_url_adds_crl_dp_ocsp_and_ca_issuers_aia(tmp_path):
    pki = Pki(tmp_path, base_url="https://ca.example.test:8443")
    cert = load_cert(pki.issue_client("alice").cert)
    dp = ext(cert, x509.CRLDistributionPoints).value
    urls = [n.value for p in dp for n in p.full_name]
    assert urls == ["https://ca.example.test:8443/crl"]
    aia = ext(cert, x509.AuthorityInformationAccess).value
    ocsp = [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP]
    assert ocsp == ["https://ca.example.test:8443/ocsp"]
    issuers = [d.access_location.value for d in aia
               if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    assert issuers == ["https://ca.example.test:8443/ca.crt"]


def test_no_base_url_no_crl_dp(shared_pki, tmp_path):
    cert = load_cert(shared_pki.issue_client("plain", out=tmp_path).cert)
    assert not has_ext(cert, x509.CRLDistributionPoints)
    assert not has_ext(cert, x509.AuthorityInformationAccess)


def test_issue_with_p12(shared_pki, tmp_path):
    leaf = shared_pki.issue_client("p12user", out=tmp_path, p12_pass="s3cret-pass")
    assert leaf.p12 is not None and mode(leaf.p12) == 0o600
    from cryptography.hazmat.primitives.serialization import pkcs12
    key, cert, extra = pkcs12.load_key_and_certificates(leaf.p12.read_bytes(), b"s3cret-pass")
    assert cert == load_cert(leaf.cert)
    assert key is not None


def test_existing_output_refused_unless_force(shared_pki, tmp_path):
    first = shared_pki.issue_client("twice", out=tmp_path)
    before = first.cert.read_bytes()
    r = shared_pki.ca("issue", "client", "twice", "--out", tmp_path)
    assert r.returncode == 1
    assert "twice" in r.stderr and "exist" in r.stderr
    assert first.cert.read_bytes() == before
    r = shared_pki.ca("issue", "client", "twice", "--out", tmp_path, "--force")
    assert r.returncode == 0, r.stderr
    assert first.cert.read_bytes() != before


def test_ipv6_and_uri_sans_round_trip(shared_pki, tmp_path):
    leaf = shared_pki.issue_client("v6", san="ip:2001:db8::1,dns:v6.example.test", out=tmp_path)
    cert = load_cert(leaf.cert)
    ips = ext(cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert ips == [ipaddress.ip_address("2001:db8::1")]
