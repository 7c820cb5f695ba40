"""`twoway ca serve --http-listen` (or `http-listen =` in ca.conf): the plain HTTP listener that
relying parties use (RFC 5280 §4.2.1.13, RFC 6960 appendix A). Checked through the URLs the
issued certificates carry themselves: `openssl verify -crl_download` through the CDP, `openssl
ocsp` and python's OCSP through the AIA, the caIssuers URL fetched with curl and urllib and
used to verify the leaf (root-only and whole-chain trust stores). Enrollment is never served
there, and a garbage OCSP request is answered at once."""

import base64
import http.client
import re
import time
import urllib.parse
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from est_helpers import CaServer, https, make_csr_der, make_key, token
from twoway_testlib import Pki, free_port, run, run_cmd
from x509_checks import load_cert, load_certs

EST = "/.well-known/est"
EST_TIMEOUT_SECS = 15  # the server's idle timeout: an answer "at once" comes well before it


def set_conf(pki, **values):
    """Set [ca] keys of D/ca/ca.conf (key_name -> key-name), replacing earlier values."""
    conf = pki.ca_dir / "ca.conf"
    names = {k.replace("_", "-"): v for k, v in values.items()}
    lines = [ln for ln in conf.read_text().splitlines()
             if ln.split("=")[0].strip() not in names]
    conf.write_text("\n".join(lines + [f"{k} = {v}" for k, v in names.items()]) + "\n")


def start_with_plain_port(pki, *extra):
    """ca serve with http-listen (from ca.conf) on a free port that the base URL names too,
    so every certificate issued afterwards points at this listener. A port taken by another
    test between free_port() and the bind is retried with another."""
    for attempt in range(5):
        port = free_port()
        set_conf(pki, base_url=f"http://127.0.0.1:{port}", http_listen=f"127.0.0.1:{port}")
        try:
            return CaServer(pki, *extra)
        except RuntimeError:
            if attempt == 4:
                raise


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain-http")
    pki = Pki(tmp)
    with start_with_plain_port(pki) as srv:
        good = pki.issue_client("good", out=tmp / "good")
        bad = pki.issue_client("bad", out=tmp / "bad")
        pki.revoke("bad", reason="keyCompromise")
        yield pki, srv, good, bad, tmp


@pytest.fixture(scope="module")
def two_roots(env, tmp_path_factory):
    """A trust store with another CA's root beside ours (several CAs trusted at once)."""
    pki = env[0]
    other = Pki(tmp_path_factory.mktemp("other-ca"), name="Other CA")
    both = pki.tmp / "two-roots.pem"
    both.write_bytes(other.root.read_bytes() + pki.root.read_bytes())
    return both


def aia(cert_path, method):
    ext = load_cert(cert_path).extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    return [d.access_location.value for d in ext.value if d.access_method == method]


def plain(srv, method, path, body=None, headers=None):
    """One request over plain HTTP to the listener; (status, headers lower-cased, body)."""
    u = urllib.parse.urlsplit(srv.http_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_readiness_names_both_listeners_and_certificates_point_at_plain_http(env):
    _, srv, good, _, _ = env
    assert srv.url.startswith("https://") and srv.http_url.startswith("http://127.0.0.1:")
    cert = load_cert(good.cert)
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in dp for n in p.full_name] == [f"{srv.http_url}/crl"]
    assert aia(good.cert, AuthorityInformationAccessOID.OCSP) == [f"{srv.http_url}/ocsp"]
    assert aia(good.cert, AuthorityInformationAccessOID.CA_ISSUERS) == [f"{srv.http_url}/ca.crt"]


@pytest.mark.parametrize("layout", ["root-only+untrusted-intermediate", "whole-chain",
                                    "two-roots+untrusted-intermediate"])
def test_openssl_crl_download_through_the_certificates_own_cdp(env, two_roots, layout):
    pki, _, good, bad, _ = env
    trust = {"root-only+untrusted-intermediate": ["-CAfile", pki.root, "-untrusted",
                                                  pki.intermediate],
             "whole-chain": ["-CAfile", pki.chain],
             "two-roots+untrusted-intermediate": ["-CAfile", two_roots, "-untrusted",
                                                  pki.intermediate]}[layout]
    ok = run_cmd(["openssl", "verify", "-crl_check", "-crl_download", *trust, good.cert])
    assert ok.returncode == 0 and f"{good.cert}: OK" in ok.stdout, ok.stdout + ok.stderr
    revoked = run_cmd(["openssl", "verify", "-crl_check", "-crl_download", *trust, bad.cert])
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr


def test_crl_over_plain_http_has_the_https_caching_headers_and_304(env, tmp_path):
    pki, srv, _, bad, _ = env
    status, hdrs, der = plain(srv, "GET", "/crl")
    assert status == 200 and hdrs["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(der)
    assert crl.get_revoked_certificate_by_serial_number(int(bad.serial, 16)) is not None
    _, tls_hdrs, tls_der = https(srv, "GET", "/crl")
    assert tls_der == der
    for h in ("etag", "last-modified", "expires"):
        assert hdrs[h] == tls_hdrs[h], h
    # max-age counts down to nextUpdate: the two answers may fall in different seconds.
    ages = [int(re.search(r"max-age=(\d+)", x["cache-control"]).group(1)) for x in (hdrs, tls_hdrs)]
    assert abs(ages[0] - ages[1]) <= 2 and all(x["cache-control"].startswith("public, max-age=")
                                               for x in (hdrs, tls_hdrs))
    status, h304, body = plain(srv, "GET", "/crl", headers={"If-None-Match": hdrs["etag"]})
    assert status == 304 and body == b"" and h304["etag"] == hdrs["etag"]
    status, hhead, body = plain(srv, "HEAD", "/crl")
    assert status == 200 and body == b"" and hhead["etag"] == hdrs["etag"]
    # curl, a second client, gets the same bytes.
    out = tmp_path / "crl.der"
    run_cmd(["curl", "-sS", "-f", "--max-time", "10", "-o", out, f"{srv.http_url}/crl"],
            check=True)
    assert out.read_bytes() == der


def test_openssl_ocsp_with_the_url_from_the_certificates_aia(env):
    pki, _, good, bad, _ = env
    for cert, verdict in ((good, "good"), (bad, "revoked")):
        url = run_cmd(["openssl", "x509", "-in", cert.cert, "-noout", "-ocsp_uri"],
                      check=True).stdout.strip()
        assert url.startswith("http://")
        r = run_cmd(["openssl", "ocsp", "-issuer", pki.intermediate, "-cert", cert.cert,
                     "-url", url, "-CAfile", pki.chain, "-timeout", "10"])
        assert r.returncode == 0, r.stderr
        assert f"{cert.cert}: {verdict}" in r.stdout
        assert "Response verify OK" in r.stdout + r.stderr


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_python_ocsp_get_and_post_over_plain_http(env, method):
    pki, _, good, bad, _ = env
    issuer = load_cert(pki.intermediate)
    for cert, want in ((good, x509_ocsp.OCSPCertStatus.GOOD),
                       (bad, x509_ocsp.OCSPCertStatus.REVOKED)):
        leaf = load_cert(cert.cert)
        req = (x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
               .build().public_bytes(serialization.Encoding.DER))
        url = aia(cert.cert, AuthorityInformationAccessOID.OCSP)[0]
        if method == "GET":
            r = urllib.request.Request(
                url + "/" + urllib.parse.quote(base64.b64encode(req).decode(), safe=""))
        else:
            r = urllib.request.Request(url, data=req,
                                       headers={"Content-Type": "application/ocsp-request"})
        with urllib.request.urlopen(r, timeout=20) as resp:
            assert resp.headers["Content-Type"] == "application/ocsp-response"
            answer = x509_ocsp.load_der_ocsp_response(resp.read())
        assert answer.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == want
        assert answer.serial_number == leaf.serial_number


def test_garbage_ocsp_post_is_answered_malformed_at_once(env, tmp_path):
    _, srv, _, _, _ = env
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x30\x03not an OCSP request at all")
    start = time.monotonic()
    r = run_cmd(["curl", "-sS", "--max-time", "10", "-o", tmp_path / "resp.der", "-w",
                 "%{http_code}", "-H", "Content-Type: application/ocsp-request",
                 "--data-binary", f"@{garbage}", f"{srv.http_url}/ocsp"])
    elapsed = time.monotonic() - start
    assert r.returncode == 0 and r.stdout in ("200", "400"), r.stdout + r.stderr
    assert elapsed < EST_TIMEOUT_SECS / 3, f"took {elapsed:.1f}s: the server waited for more"
    if r.stdout == "200":
        parsed = run_cmd(["openssl", "ocsp", "-respin", tmp_path / "resp.der", "-resp_text",
                          "-noverify"])
        assert "malformedrequest" in (parsed.stdout + parsed.stderr).lower().replace(" ", "")
    # python's http.client, a second client, gets the same verdict.
    status, _, data = plain(srv, "POST", "/ocsp", b"garbage",
                            {"Content-Type": "application/ocsp-request"})
    assert status == 200
    with pytest.raises(ValueError):  # no responseBytes: cryptography refuses to read a status
        x509_ocsp.load_der_ocsp_response(data).certificate_status
    assert (x509_ocsp.load_der_ocsp_response(data).response_status ==
            x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST)


@pytest.mark.parametrize("layout", ["root-only", "whole-chain", "two-roots"])
def test_ca_issuers_url_fetched_with_curl_verifies_the_leaf(env, two_roots, layout):
    pki, _, good, _, tmp = env
    url = aia(good.cert, AuthorityInformationAccessOID.CA_ISSUERS)[0]
    der = tmp / f"issuer-{layout}.der"
    r = run_cmd(["curl", "-sS", "-f", "--max-time", "10", "-D", "-", "-o", der, url], check=True)
    assert re.search(r"^content-type: application/pkix-cert\r?$", r.stdout, re.I | re.M)
    assert load_cert(pki.intermediate).public_bytes(serialization.Encoding.DER) == \
        der.read_bytes()
    pem = tmp / f"issuer-{layout}.pem"
    run_cmd(["openssl", "x509", "-inform", "DER", "-in", der, "-out", pem], check=True)
    # Without the fetched intermediate the leaf does not verify against the root alone.
    alone = run_cmd(["openssl", "verify", "-CAfile", pki.root, good.cert])
    assert alone.returncode != 0
    if layout == "root-only":
        trust = ["-CAfile", pki.root, "-untrusted", pem]
    elif layout == "two-roots":
        trust = ["-CAfile", two_roots, "-untrusted", pem]
    else:
        both = tmp / "fetched-chain.pem"
        both.write_bytes(pem.read_bytes() + pki.root.read_bytes())
        trust = ["-CAfile", both]
    ok = run_cmd(["openssl", "verify", "-purpose", "sslclient", *trust, good.cert])
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_ca_crt_with_urllib_and_chain_pem_over_both_listeners(env):
    pki, srv, good, _, tmp = env
    url = aia(good.cert, AuthorityInformationAccessOID.CA_ISSUERS)[0]
    with urllib.request.urlopen(url, timeout=20) as resp:
        assert resp.headers["Content-Type"] == "application/pkix-cert"
        fetched = x509.load_der_x509_certificate(resp.read())
    assert fetched == load_cert(pki.intermediate)
    status, hdrs, body = plain(srv, "GET", "/chain.pem")
    assert status == 200 and hdrs["content-type"] == "application/pem-certificate-chain"
    chain = tmp / "served-chain.pem"
    chain.write_bytes(body)
    assert load_certs(chain) == [load_cert(pki.intermediate), load_cert(pki.root)]
    assert run_cmd(["openssl", "verify", "-CAfile", chain, good.cert]).returncode == 0
    # The same files over HTTPS (python ssl), with a cache validator.
    for path in ("/ca.crt", "/chain.pem"):
        status, tls_hdrs, tls_body = https(srv, "GET", path)
        assert status == 200
        status, _, again = https(srv, "GET", path, headers={"If-None-Match": tls_hdrs["etag"]})
        assert status == 304 and again == b""
    assert https(srv, "GET", "/chain.pem")[2] == body


def test_enrollment_and_everything_else_is_404_on_plain_http(env, tmp_path):
    pki, srv, _, _, _ = env
    tok, _ = token(pki, "plainenroll")
    csr = make_csr_der(make_key(), "plainenroll")
    auth = "Basic " + base64.b64encode(f"plainenroll:{tok}".encode()).decode()
    for path in (f"{EST}/simpleenroll", f"{EST}/client/simpleenroll"):
        status, _, body = plain(srv, "POST", path, base64.b64encode(csr),
                                {"Authorization": auth, "Content-Type": "application/pkcs10"})
        assert status == 404 and b"HTTPS" in body
    srv.wait_log(r'"path":"/\.well-known/est/simpleenroll","status":404,.*"scheme":"http"')
    for path in (f"{EST}/cacerts", f"{EST}/csrattrs", f"{EST}/server/cacerts", "/healthz",
                 "/", "/nothing", "/ca.crt/x"):
        assert plain(srv, "GET", path)[0] == 404, path
    r = run_cmd(["curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                 f"{srv.http_url}{EST}/cacerts"])
    assert r.stdout == "404"
    # The token was never spent: the same request over HTTPS enrolls.
    status, _, body = https(srv, "POST", f"{EST}/simpleenroll", base64.b64encode(csr),
                            {"Authorization": auth, "Content-Type": "application/pkcs10"})
    assert status == 200, body
    # A TLS client on the plain port gets no certificate and no EST.
    r = run_cmd(["openssl", "s_client", "-connect", srv.http_url[len("http://"):]],
                input="", timeout=20)
    assert "BEGIN CERTIFICATE" not in r.stdout


def test_flag_overrides_conf_and_off_disables(tmp_path):
    pki = Pki(tmp_path)
    set_conf(pki, http_listen="127.0.0.1:1")  # never bound below: the flag wins
    with CaServer(pki, "--http-listen", "off") as srv:
        assert srv.http_url is None
    with CaServer(pki, "--http-listen", "127.0.0.1:0") as srv:
        assert srv.http_url is not None
        status, hdrs, _ = plain(srv, "GET", "/ca.crt")
        assert status == 200 and hdrs["content-type"] == "application/pkix-cert"


def test_plain_listener_on_ipv6_loopback(tmp_path):
    pki = Pki(tmp_path)
    with CaServer(pki, "--http-listen", "[::1]:0") as srv:
        assert srv.http_url.startswith("http://[::1]:")
        status, hdrs, der = plain(srv, "GET", "/crl")
        assert status == 200 and hdrs["content-type"] == "application/pkix-crl"
        assert der == (pki.ca_dir / "crl.der").read_bytes()
        r = run_cmd(["curl", "-sS", "-g", "-f", "--max-time", "10", "-o", "/dev/null", "-w",
                     "%{content_type}", f"{srv.http_url}/ca.crt"], check=True)
        assert r.stdout == "application/pkix-cert"


def test_bad_addresses_are_named(tmp_path):
    pki = Pki(tmp_path)
    r = run(["ca", "serve", "--dir", pki.dir, "--listen", "127.0.0.1:0", "--http-listen",
             "127.0.0.1:99999"])
    assert r.returncode == 2 and "--http-listen '127.0.0.1:99999'" in r.stderr
    set_conf(pki, http_listen="::1:80")
    r = run(["ca", "serve", "--dir", pki.dir, "--listen", "127.0.0.1:0"])
    assert r.returncode == 1 and "ca.conf http-listen '::1:80'" in r.stderr
    assert "brackets" in r.stderr
