"""Helpers for the gateway's integration tests (test_gateway_*.py).

MiniPki makes certificates with python-cryptography, so tests can produce what `twoway ca`
refuses to (expired, not yet valid, wrong EKU) and swap CRLs at will. Gateway starts
`twoway gateway`, waits for its readiness line and stops it, returning its exit code.
"""

import datetime
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twoway_testlib import free_port, twoway_bin, wait_for_line, output_so_far

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


class Cert:
    def __init__(self, cert, key, cert_path, key_path):
        self.cert, self.key = cert, key
        self.cert_path, self.key_path = cert_path, key_path
        self.serial = cert.serial_number
        self.der = cert.public_bytes(serialization.Encoding.DER)


class MiniPki:
    """A root CA issuing leaves directly. Files go under dir/NAME.{crt,key}."""

    def __init__(self, dir, name="Gateway Test CA", parent=None):
        """parent: another MiniPki that signs this one as an intermediate CA."""
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.parent = parent
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        issuer = parent.cert.subject if parent else subject
        signer = parent.key if parent else self.key
        b = (x509.CertificateBuilder()
             .subject_name(subject).issuer_name(issuer)
             .public_key(self.key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(NOW - DAY).not_valid_after(NOW + 30 * DAY)
             .add_extension(x509.BasicConstraints(ca=True, path_length=0 if parent else None),
                            True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                          False, False), True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                 self.key.public_key()), False))
        if parent:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                parent.key.public_key()), False)
        self.cert = b.sign(signer, hashes.SHA256())
        self.serial = self.cert.serial_number
        safe = name.replace(" ", "_")
        self.ca_path = self.dir / f"{safe}.pem"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.revoked = []

    def issue(self, cn, kind="client", days=10, not_before=None, not_after=None, eku=None,
              dns=(), ips=(), uris=(), ou=None, key=None):
        """key: the leaf's private key (default: a new P-256 key)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if ou:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
        if eku is None:
            eku = [ExtendedKeyUsageOID.CLIENT_AUTH if kind == "client"
                   else ExtendedKeyUsageOID.SERVER_AUTH]
        nb = not_before or (NOW - DAY)
        na = not_after or (NOW + days * DAY)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name(attrs)).issuer_name(self.cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(nb).not_valid_after(na)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                          False, False), True)
             .add_extension(x509.ExtendedKeyUsage(eku), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), False))
        import ipaddress
        sans = [x509.DNSName(d) for d in dns] + \
            [x509.IPAddress(ipaddress.ip_address(i)) for i in ips] + \
            [x509.UniformResourceIdentifier(u) for u in uris]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), False)
        cert = b.sign(self.key, hashes.SHA256())
        safe = cn.replace(" ", "_").replace("*", "star")
        cp, kp = self.dir / f"{safe}.crt", self.dir / f"{safe}.key"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if self.parent:  # leaf then the intermediate, as a client sends them
            pem += self.cert.public_bytes(serialization.Encoding.PEM)
        cp.write_bytes(pem)
        _write_key(kp, key)
        return Cert(cert, key, cp, kp)

    def server(self, cn="localhost", key=None):
        return self.issue(cn, kind="server", dns=["localhost"], ips=["127.0.0.1", "::1"],
                          key=key)

    def crl_bytes(self, revoked_serials=()):
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(NOW - DAY).next_update(NOW + 7 * DAY)
             .add_extension(x509.CRLNumber(int(time.time() * 1000)), False))
        for s in revoked_serials:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(s)
                .revocation_date(NOW - datetime.timedelta(minutes=5)).build())
        crl = b.sign(self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    def write_crl(self, path, revoked_serials=()):
        """Write atomically (temp + rename), as an operator's tooling would."""
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.crl_bytes(revoked_serials))
        os.replace(tmp, path)


def client_context(ca, cert=None, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca.ca_path))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def tls_connect(port, ctx, host="127.0.0.1", server_hostname="localhost", timeout=10,
                session=None):
    raw = socket.create_connection((host, port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)


def recv_exact(sock, n, timeout=10):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def echo_roundtrip(port, ctx, payload=b"ping\n", **kw):
    """Connect, send payload, read the echo. Raises on handshake refusal."""
    with tls_connect(port, ctx, **kw) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload))


def refused(port, ctx, **kw):
    """True when the gateway refuses the client: the handshake fails, or (TLS 1.3, where the
    client's certificate is checked after the client finished) the first read fails/EOFs."""
    try:
        with tls_connect(port, ctx, **kw) as s:
            s.sendall(b"x")
            s.settimeout(10)
            return s.recv(1) == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def closed_by_peer(sock, timeout):
    """True when the gateway closes sock (EOF or reset) within timeout seconds."""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if sock.recv(1) == b"":
                return True
        except (ssl.SSLError, ConnectionError):
            return True
        except (TimeoutError, OSError):
            pass
    return False


class Gateway:
    """`twoway gateway` as a child process. args: flags after `gateway`."""

    def __init__(self, args, env=None, ready_timeout=20):
        self.port_hint = None
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([twoway_bin(), "gateway"] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=full_env)
        try:
            self.ready = wait_for_line(self.proc, r"twoway gateway: ready", ready_timeout)
        except Exception:
            self.kill()
            raise

    def wait_line(self, pattern, timeout=10):
        return wait_for_line(self.proc, pattern, timeout)

    def output(self):
        return output_so_far(self.proc)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def s_client_output(args, data="hi\n", timeout=15):
    """Run `openssl s_client ARGS`, send data, wait until its echo comes back (or the client
    ends: a refusal) and return everything s_client printed."""
    proc = subprocess.Popen(["openssl", "s_client"] + [str(a) for a in args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
            wait_for_line(proc, "^" + data.strip() + "$", timeout=timeout)
        except (BrokenPipeError, TimeoutError, RuntimeError):
            pass  # refused (s_client may be gone already): the caller reads the output
    finally:
        proc.kill()
        proc.wait(5)
    return output_so_far(proc)


def gateway_flags(ca, server, port, backend, crl=None, extra=()):
    args = ["--listen", f"127.0.0.1:{port}", "--backend", backend, "--mode", "tcp",
            "--cert", server.cert_path, "--key", server.key_path, "--client-ca", ca.ca_path,
            "--workers", "2"]
    if crl is not None:
        args += ["--crl", crl]
    return args + list(extra)


def access_lines(path, timeout=5, n=1):
    """The JSON access-log lines in path once at least n are there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        if Path(path).exists():
            lines = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def fetch_metrics(port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text, name, labels=None):
    """Sum of the samples of metric name whose labels include all of labels."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head != name and not head.startswith(name + "{"):
            continue
        if labels and not all(f'{k}="{v}"' in head for k, v in labels.items()):
            continue
        total += float(value)
        found = True
    return total if found else None


__all__ = ["MiniPki", "Gateway", "client_context", "tls_connect", "echo_roundtrip", "refused",
           "gateway_flags", "s_client_output", "access_lines", "fetch_metrics", "metric",
           "free_port", "recv_exact"]


def ctx_for(pki, issued):
    """A client context trusting pki's root and presenting issued's chain (leaf + intermediate:
    the root-only client-ca layout works)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(pki.root))
    ctx.load_cert_chain(str(issued.chain), str(issued.key))
    return ctx


def wait_until(cond, timeout, step=0.1):
    """Poll cond (a state with no readiness signal, e.g. a refusal) until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()
