"""Helpers for the tests of `twoway ca serve`, `ca token`, `enroll` and `renew`
(test_est_*.py, test_ocsp*.py, test_crl_endpoint*.py, test_renew*.py).

CaServer starts `twoway ca serve --listen 127.0.0.1:0` on a Pki's data dir, waits for its
readiness line and knows its URL (and http_url, the plain HTTP listener's, when there is one). https() makes an HTTPS request with python's ssl (a real,
independent peer) and returns (status, headers, body). make_csr_der() makes a CSR with
python-cryptography.
"""

import base64
import http.client
import re
import ssl
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from twoway_testlib import output_so_far, run, stop, twoway_bin, wait_for_line

READY = r"twoway ca serve: ready, listening on https://(\S+):(\d+)"
PLAIN = r"twoway ca serve: plain HTTP on (http://\S+:\d+) "


class CaServer:
    """`twoway ca serve` on pki's data dir; stop() ends it and returns its exit code."""

    def __init__(self, pki, *extra, listen="127.0.0.1:0"):
        self.pki = pki
        self.proc = subprocess.Popen(
            [twoway_bin(), "ca", "serve", "--dir", str(pki.dir), "--listen", listen, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            m = re.search(READY, wait_for_line(self.proc, READY, timeout=20))
        except Exception:
            stop(self.proc)
            raise
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"https://{self.host}:{self.port}"
        # The plain HTTP listener (--http-listen or ca.conf), announced before the ready line.
        plain = re.search(PLAIN, self.output())
        self.http_url = plain.group(1) if plain else None

    def output(self):
        return output_so_far(self.proc)

    def wait_log(self, pattern, timeout=10):
        return wait_for_line(self.proc, pattern, timeout=timeout)

    def stop(self):
        """Stop with SIGTERM: a clean exit (0) with no sanitizer report, or AssertionError."""
        if self.proc.poll() is not None and getattr(self, "_checked", False):
            return self.proc.returncode
        stop(self.proc)
        self._checked = True
        try:
            wait_for_line(self.proc, r"\A\Z(?!x)x", timeout=2)  # drain to EOF
        except (RuntimeError, TimeoutError):
            pass
        out = self.output()
        for bad in ("Sanitizer", "runtime error:"):
            assert bad not in out, f"ca serve reported a sanitizer error:\n{out[-4000:]}"
        assert self.proc.returncode == 0, f"ca serve exited {self.proc.returncode}:\n{out[-2000:]}"
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            stop(self.proc)


def token(pki, name, *args):
    """`twoway ca token NAME ARGS...`: the token (the last line) and the whole output."""
    r = pki.ca("token", name, *args, check=True)
    return r.stdout.strip().splitlines()[-1], r.stdout


def context(cafile, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(cafile))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def https(server, method, path, body=None, headers=None, cafile=None, cert=None, key=None):
    """One request to server (a CaServer); returns (status, headers dict lower-cased, body)."""
    ctx = context(cafile or server.pki.chain, cert, key)
    conn = http.client.HTTPSConnection(server.host, server.port, context=ctx, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, hdrs, data
    finally:
        conn.close()


def make_key(path=None):
    key = ec.generate_private_key(ec.SECP256R1())
    if path:
        Path(path).write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        Path(path).chmod(0o600)
    return key


def make_csr_der(key, cn, sans=()):
    """A DER PKCS#10 for CN=cn with DNS/IP SANs given as twoway spells them."""
    import ipaddress
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    names = []
    for s in sans:
        kind, value = s.split(":", 1)
        names.append(x509.DNSName(value) if kind == "dns"
                     else x509.IPAddress(ipaddress.ip_address(value)))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def b64_lines(data, width=64, sep="\n"):
    text = base64.b64encode(data).decode()
    return sep.join(text[i:i + width] for i in range(0, len(text), width)) + sep


def strict_b64(body):
    """Decode an EST body as the strictest clients do: any whitespace, even a final newline,
    is an error (binascii.Error)."""
    return base64.b64decode(body, validate=True)


def p7_certs(body):
    """Certificates of a base64 certs-only PKCS#7 answer, decoded by the openssl CLI.

    The body must be one unbroken base64 line (RFC 8951; some EST clients refuse any
    whitespace): the decoder here is strict and raises binascii.Error on a line break."""
    der = strict_b64(body)
    out = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs"], input=der,
                         capture_output=True, check=True).stdout
    marker = b"-----END CERTIFICATE-----"
    return [x509.load_pem_x509_certificate(c + marker) for c in out.split(marker)
            if b"BEGIN CERTIFICATE" in c]


def enroll(server, name, tok, out, *extra, fingerprint=None, check=False):
    fp = fingerprint or server.pki.root_sha256
    return run(["enroll", server.url, "--name", name, "--token", tok, "--ca-fingerprint", fp,
                "--out", out, *extra], check=check)


def audit_rows(pki):
    import sqlite3
    db = sqlite3.connect(str(pki.db))
    try:
        return db.execute("SELECT action, subject, serial, result FROM audit ORDER BY id").fetchall()
    finally:
        db.close()
