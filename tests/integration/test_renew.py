"""Re-enrollment (RFC 7030 §4.2.2) over mTLS: `twoway renew` and raw HTTPS. The current
certificate must verify, be this CA's, not revoked, not expired, and the CSR's subject and SANs
must match it; the files are replaced so a crash never leaves an unusable pair."""

import calendar
import os
import stat
import time

import pytest

from est_helpers import CaServer, b64_lines, https, make_csr_der, make_key, p7_certs
from twoway_testlib import Pki, run, run_cmd
from x509_checks import cn, load_cert, sans

EST = "/.well-known/est"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("renew"))
    with CaServer(pki) as srv:
        yield pki, srv


def issue(pki, tmp_path, name, **kw):
    out = tmp_path / name
    got = pki.issue_client(name, out=out, **kw)
    (out / "ca.pem").write_bytes(pki.root.read_bytes())
    return got


def renew(srv, got, *extra):
    return run(["renew", "--cert", got.cert, "--key", got.key, "--server", srv.url, *extra])


def pubkey(path, kind="x509"):
    args = ["openssl", "x509", "-in", path, "-noout", "-pubkey"] if kind == "x509" else \
        ["openssl", "pkey", "-in", path, "-pubout"]
    return run_cmd(args, check=True).stdout


def test_renew_keeps_key_and_replaces_certificate(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "alice", san="email:alice@example.com", days="2h")
    old = load_cert(got.cert)
    r = renew(srv, got)
    assert r.returncode == 0, r.stderr
    new = load_cert(got.cert)
    assert new.serial_number != old.serial_number
    assert cn(new) == "alice" and sans(new) == ["email:alice@example.com"]
    assert pubkey(got.cert) == pubkey(got.key, "key")
    # Same validity period as the certificate it replaces (2 hours), starting now.
    life = new.not_valid_after - new.not_valid_before
    assert 2 * 3600 <= life.total_seconds() <= 2 * 3600 + 600
    assert not list(got.cert.parent.glob("*.new")) and not list(got.cert.parent.glob("*.old"))
    # The chain file next to it follows: new certificate, then the intermediate.
    chain = got.chain.read_bytes()
    assert chain.startswith(got.cert.read_bytes()) and chain.count(b"BEGIN CERTIFICATE") == 2
    assert "status: valid" in pki.ca("show", f"{old.serial_number:X}", check=True).stdout


def test_rekey_replaces_both_and_runs_exec(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "bob")
    old_key = got.key.read_bytes()
    marker = tmp_path / "ran"
    r = renew(srv, got, "--rekey", "--exec", f"echo done > {marker}")
    assert r.returncode == 0, r.stderr
    assert got.key.read_bytes() != old_key
    assert stat.S_IMODE(os.stat(got.key).st_mode) == 0o600
    assert pubkey(got.cert) == pubkey(got.key, "key")
    assert marker.read_text() == "done\n"


def test_revoked_certificate_cannot_renew(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "carol")
    pki.revoke(got.serial, reason="keyCompromise")
    before = got.cert.read_bytes()
    r = renew(srv, got)
    assert r.returncode == 1
    assert "HTTP 403" in r.stderr and "revoked" in r.stderr
    assert got.cert.read_bytes() == before


def test_expired_certificate_cannot_renew(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "dave", days="2s")
    deadline = time.monotonic() + 10
    not_after = calendar.timegm(load_cert(got.cert).not_valid_after.timetuple())
    while time.monotonic() < deadline and time.time() <= not_after + 0.5:
        time.sleep(0.2)
    r = renew(srv, got)
    assert r.returncode == 1
    assert "expired" in r.stderr and "needs a new token" in r.stderr
    assert "twoway enroll" in r.stderr
    # The server refuses it too, with a plain reason (not a bare TLS alert).
    der = b64_lines(make_csr_der(make_key(), "dave"))
    status, _, data = https(srv, "POST", f"{EST}/simplereenroll", der, cert=got.cert,
                            key=got.key)
    assert status == 403 and b"expired" in data


def test_subject_or_san_mismatch_is_refused(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "erin", san="dns:erin.example.com")
    key = make_key()
    for subject, names in (("mallory", ["dns:erin.example.com"]), ("erin", []),
                           ("erin", ["dns:erin.example.com", "dns:extra.example.com"])):
        der = b64_lines(make_csr_der(key, subject, names))
        status, _, data = https(srv, "POST", f"{EST}/simplereenroll", der, cert=got.cert,
                                key=got.key)
        assert status == 403 and b"4.2.2" in data, data
    der = b64_lines(make_csr_der(key, "erin", ["dns:erin.example.com"]))
    status, _, data = https(srv, "POST", f"{EST}/simplereenroll", der, cert=got.cert,
                            key=got.key)
    assert status == 200, data
    new = p7_certs(data)[0]
    assert cn(new) == "erin" and sans(new) == ["dns:erin.example.com"]


def test_reenroll_needs_a_client_certificate_from_this_ca(env, tmp_path):
    pki, srv = env
    der = b64_lines(make_csr_der(make_key(), "nobody"))
    status, _, data = https(srv, "POST", f"{EST}/simplereenroll", der)
    assert status == 403 and b"client certificate" in data
    other = Pki(tmp_path / "other")
    stranger = other.issue_client("stranger", out=tmp_path / "s")
    status, _, data = https(srv, "POST", f"{EST}/simplereenroll", der, cert=stranger.cert,
                            key=stranger.key)
    assert status == 403 and b"refused" in data


def test_label_must_match_the_profile(env, tmp_path):
    pki, srv = env
    got = issue(pki, tmp_path, "frank")
    der = b64_lines(make_csr_der(make_key(), "frank"))
    status, _, data = https(srv, "POST", f"{EST}/server/simplereenroll", der, cert=got.cert,
                            key=got.key)
    assert status == 403 and b"client certificate" in data


def test_interrupted_swap_is_recovered(env, tmp_path):
    """A crash between renaming the new key and the new certificate leaves KEY new and CERT
    old; the next renew finishes the swap from CERT.new, or else restores KEY.old."""
    pki, srv = env
    got = issue(pki, tmp_path, "gina")
    old_key, old_cert = got.key.read_bytes(), got.cert.read_bytes()
    assert renew(srv, got, "--rekey").returncode == 0
    new_cert = got.cert.read_bytes()
    key_old = got.key.with_name("gina.key.old")

    def crash_state(with_cert_new):
        got.cert.write_bytes(old_cert)
        key_old.write_bytes(old_key)
        key_old.chmod(0o600)
        if with_cert_new:
            got.cert.with_name("gina.crt.new").write_bytes(new_cert)

    crash_state(True)
    r = renew(srv, got)
    assert r.returncode == 0, r.stderr
    assert "finished an interrupted renewal" in r.stderr
    assert pubkey(got.cert) == pubkey(got.key, "key")
    assert not key_old.exists()

    new_key = got.key.read_bytes()
    got.key.write_bytes(new_key)
    crash_state(False)
    r = renew(srv, got)
    assert r.returncode == 0, r.stderr
    assert "previous key restored" in r.stderr
    assert got.key.read_bytes() == old_key
    assert pubkey(got.cert) == pubkey(got.key, "key")
