"""`twoway ca revoke` and `ca crl`: the CRL checked with `openssl crl -verify`, `openssl verify
-crl_check` and python3-cryptography (v2, number that only grows, AKI, reasons, nextUpdate)."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from twoway_testlib import Pki
from x509_checks import ext, load_cert, load_crl, openssl_verify, run_cmd, utcnow

REASONS = {
    # name: (code, cryptography flag; None for unspecified: no reasonCode entry extension)
    "unspecified": None,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "removeFromCRL": x509.ReasonFlags.remove_from_crl,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}


def crl_number(path):
    return ext(load_crl(path), x509.CRLNumber).value.crl_number


def crl_verify(pki, path):
    r = run_cmd(["openssl", "crl", "-in", path, "-noout", "-CAfile", pki.chain, "-verify"])
    assert r.returncode == 0 and "verify OK" in r.stdout + r.stderr, r.stdout + r.stderr


def test_revoke_then_crl_check_rejects_only_that_cert(pki):
    alice = pki.issue_client("alice")
    bob = pki.issue_client("bob")
    n0 = crl_number(pki.crl)
    r = pki.revoke("alice", reason="keyCompromise")
    assert f"Revoked {alice.serial} (alice): keyCompromise" in r.stdout
    assert "crl:" in r.stdout
    crl_verify(pki, pki.crl)
    assert crl_number(pki.crl) > n0

    r = openssl_verify(alice.cert, pki.root, pki.intermediate, purpose="sslclient", crl=pki.crl)
    assert r.returncode != 0
    assert "certificate revoked" in r.stdout + r.stderr
    r = openssl_verify(bob.cert, pki.root, pki.intermediate, purpose="sslclient", crl=pki.crl)
    assert r.returncode == 0, r.stdout + r.stderr


def test_crl_structure(pki):
    leaf = pki.issue_client("carol")
    pki.revoke(leaf.serial, reason="superseded")
    crl = load_crl(pki.crl)
    inter = load_cert(pki.intermediate)
    assert crl.issuer == inter.subject
    assert crl.is_signature_valid(inter.public_key())
    aki = ext(crl, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(inter, x509.SubjectKeyIdentifier).value.digest
    # v2: CRL extensions are only allowed in v2; openssl prints the version
    r = run_cmd(["openssl", "crl", "-in", pki.crl, "-noout", "-text"])
    assert "Version 2" in r.stdout
    # default nextUpdate 7 days
    assert abs((crl.next_update - crl.last_update) - datetime.timedelta(days=7)) < \
        datetime.timedelta(minutes=2)
    assert abs(crl.last_update - utcnow()) < datetime.timedelta(minutes=10)
    entry = crl.get_revoked_certificate_by_serial_number(load_cert(leaf.cert).serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.superseded
    # the DER copy is the same CRL
    der = load_crl(pki.ca_dir / "crl.der")
    assert der.fingerprint(hashes.SHA256()) == crl.fingerprint(hashes.SHA256())


def test_every_reason_code(pki):
    serials = {}
    for name in REASONS:
        leaf = pki.issue_client(f"r-{name}")
        pki.revoke(leaf.serial, reason=name)
        serials[name] = load_cert(leaf.cert).serial_number
    crl = load_crl(pki.crl)
    crl_verify(pki, pki.crl)
    for name, flag in REASONS.items():
        entry = crl.get_revoked_certificate_by_serial_number(serials[name])
        assert entry is not None, name
        try:
            got = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            got = None
        assert got == flag, name
    # reason names are case-insensitive
    leaf = pki.issue_client("case")
    pki.revoke(leaf.serial, reason="KEYCOMPROMISE")


def test_crl_number_only_grows_and_days(pki, tmp_path):
    numbers = [crl_number(pki.crl)]
    for days in (1, 30):
        r = pki.write_crl("--days", str(days))
        assert "number" in r.stdout
        numbers.append(crl_number(pki.crl))
        crl = load_crl(pki.crl)
        assert abs((crl.next_update - crl.last_update) - datetime.timedelta(days=days)) < \
            datetime.timedelta(minutes=2)
    out_der = tmp_path / "copy.der"
    out_pem = tmp_path / "copy.pem"
    pki.write_crl("--out", out_der)
    numbers.append(crl_number(out_der))
    assert out_der.read_bytes()[0] == 0x30  # DER
    pki.write_crl("--out", out_pem)
    numbers.append(crl_number(out_pem))
    assert out_pem.read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    crl_verify(pki, out_pem)


def test_revoke_by_name_picks_newest(pki, tmp_path):
    old = pki.issue_client("dave", out=tmp_path / "a")
    new = pki.issue_client("dave", out=tmp_path / "b")
    pki.revoke("dave")
    crl = load_crl(pki.crl)
    assert crl.get_revoked_certificate_by_serial_number(load_cert(new.cert).serial_number)
    assert crl.get_revoked_certificate_by_serial_number(load_cert(old.cert).serial_number) is None


def test_revoke_twice_is_exit_1(pki):
    leaf = pki.issue_client("erin")
    pki.revoke(leaf.serial)
    n = crl_number(pki.crl)
    r = pki.revoke(leaf.serial, check=False)
    assert r.returncode == 1
    assert "already revoked" in r.stderr and leaf.serial in r.stderr
    assert r.stderr.count("\n") == 1
    assert crl_number(pki.crl) == n  # nothing regenerated


def test_revoke_unknown_serial_is_exit_1(pki):
    n = crl_number(pki.crl)
    r = pki.revoke("ABCDEF0123456789", check=False)
    assert r.returncode == 1
    assert "ABCDEF0123456789" in r.stderr
    r = pki.revoke("nobody-by-that-name", check=False)
    assert r.returncode == 1
    assert "nobody-by-that-name" in r.stderr
    assert crl_number(pki.crl) == n


def test_revoke_bad_reason_is_usage(pki):
    leaf = pki.issue_client("frank")
    r = pki.revoke(leaf.serial, reason="becauseIsaidSo", check=False)
    assert r.returncode == 2
    assert "becauseIsaidSo" in r.stderr


def test_root_and_intermediate_cannot_be_revoked(pki):
    for path in (pki.root, pki.intermediate):
        serial = format(load_cert(path).serial_number, "X")
        r = pki.revoke(serial, check=False)
        assert r.returncode == 1, r.stdout
        assert serial in r.stderr or "root" in r.stderr or "intermediate" in r.stderr


def test_passphrase_ca_revoke_and_crl(tmp_path):
    pki = Pki(tmp_path, passphrase="correct horse battery")
    leaf = pki.issue_client("gina")
    pki.revoke(leaf.serial)
    crl_verify(pki, pki.crl)
    r = pki.ca("crl", "--passphrase-file", tmp_path / "missing-pass")
    assert r.returncode == 1
    assert "missing-pass" in r.stderr
