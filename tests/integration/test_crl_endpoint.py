"""GET /crl of `twoway ca serve`: the DER CRL with ETag, Last-Modified, Cache-Control bound to
nextUpdate and 304 answers; a `ca revoke` from another process is served at once; a CRL close
to its nextUpdate is regenerated."""

import datetime
import email.utils
import re
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from est_helpers import CaServer, https
from twoway_testlib import Pki, run_cmd


@pytest.fixture
def env(tmp_path):
    pki = Pki(tmp_path)
    with CaServer(pki) as srv:
        yield pki, srv


def test_crl_with_caching_headers(env):
    pki, srv = env
    status, hdrs, data = https(srv, "GET", "/crl")
    assert status == 200
    assert hdrs["content-type"] == "application/pkix-crl"
    assert data == (pki.ca_dir / "crl.der").read_bytes()
    crl = x509.load_der_x509_crl(data)
    assert crl.is_signature_valid(
        x509.load_pem_x509_certificate(pki.intermediate.read_bytes()).public_key())
    assert re.fullmatch(r'"[0-9a-f]{32}"', hdrs["etag"])
    last_modified = email.utils.parsedate_to_datetime(hdrs["last-modified"])
    assert abs((last_modified.replace(tzinfo=None) - crl.last_update).total_seconds()) < 1
    max_age = int(re.search(r"max-age=(\d+)", hdrs["cache-control"]).group(1))
    left = (crl.next_update - datetime.datetime.utcnow()).total_seconds()
    assert abs(max_age - left) <= 5
    expires = email.utils.parsedate_to_datetime(hdrs["expires"])
    assert abs((expires.replace(tzinfo=None) - crl.next_update).total_seconds()) < 1
    # The same again with curl, which also sees the length.
    r = run_cmd(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--cacert", pki.chain,
                 f"{srv.url}/crl"], check=True)
    assert "content-length: %d" % len(data) in r.stdout.lower()


def test_conditional_requests_get_304(env):
    pki, srv = env
    _, hdrs, _ = https(srv, "GET", "/crl")
    status, h304, body = https(srv, "GET", "/crl", headers={"If-None-Match": hdrs["etag"]})
    assert status == 304 and body == b"" and h304["etag"] == hdrs["etag"]
    status, _, _ = https(srv, "GET", "/crl", headers={"If-None-Match": '"other"'})
    assert status == 200
    status, _, _ = https(srv, "GET", "/crl",
                         headers={"If-Modified-Since": hdrs["last-modified"]})
    assert status == 304
    status, hhead, body = https(srv, "HEAD", "/crl")
    assert status == 200 and body == b"" and hhead["etag"] == hdrs["etag"]


def test_revocation_from_the_cli_is_served_at_once(env, tmp_path):
    pki, srv = env
    got = pki.issue_client("alice", out=tmp_path)
    _, before, _ = https(srv, "GET", "/crl")
    pki.revoke("alice", reason="superseded")
    status, after, data = https(srv, "GET", "/crl", headers={"If-None-Match": before["etag"]})
    assert status == 200 and after["etag"] != before["etag"]
    crl = x509.load_der_x509_crl(data)
    assert crl.get_revoked_certificate_by_serial_number(int(got.serial, 16)) is not None


def test_crl_near_next_update_is_regenerated(env):
    """A CRL with a third of its life left is replaced by the server with a fresh one."""
    pki, srv = env
    key = serialization.load_pem_private_key((pki.ca_dir / "intermediate.key").read_bytes(), None)
    issuer = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    now = datetime.datetime.utcnow()
    old = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
           .last_update(now - datetime.timedelta(hours=1))
           .next_update(now + datetime.timedelta(minutes=5))
           .add_extension(x509.CRLNumber(1), False)
           .sign(key, hashes.SHA256()))
    (pki.ca_dir / "crl.der").write_bytes(old.public_bytes(serialization.Encoding.DER))
    time.sleep(0.05)
    status, hdrs, data = https(srv, "GET", "/crl")
    assert status == 200
    fresh = x509.load_der_x509_crl(data)
    assert fresh.next_update - datetime.datetime.utcnow() > datetime.timedelta(days=1)
    assert fresh.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > 0
    assert (pki.ca_dir / "crl.der").read_bytes() == data
