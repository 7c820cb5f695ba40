"""Independent checks of what `twoway ca` produced: python3-cryptography for structure and the
openssl CLI for verification and handshakes. Nothing here uses twoway's own code."""

import datetime
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from twoway_testlib import output_so_far, run_cmd, stop, wait_for_line, free_port

OCSP_NOCHECK_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")


def load_cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def load_certs(path):
    """Every certificate in a PEM bundle, in file order."""
    data = Path(path).read_bytes()
    marker = b"-----END CERTIFICATE-----"
    chunks = [c + marker for c in data.split(marker) if b"-----BEGIN CERTIFICATE-----" in c]
    return [x509.load_pem_x509_certificate(c) for c in chunks]


def load_crl(path) -> x509.CertificateRevocationList:
    data = Path(path).read_bytes()
    if data.startswith(b"-----"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def ext(cert, cls):
    """The extension value of type cls (e.g. x509.KeyUsage); KeyError-like failure if absent."""
    return cert.extensions.get_extension_for_class(cls)


def has_ext(cert, cls) -> bool:
    try:
        cert.extensions.get_extension_for_class(cls)
        return True
    except x509.ExtensionNotFound:
        return False


def cn(cert) -> str:
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def sans(cert):
    """SANs as twoway spells them: ["dns:a", "ip:1.2.3.4", "email:x@y", "uri:..."]."""
    try:
        san = ext(cert, x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out = []
    for g in san:
        if isinstance(g, x509.DNSName):
            out.append(f"dns:{g.value}")
        elif isinstance(g, x509.IPAddress):
            out.append(f"ip:{g.value}")
        elif isinstance(g, x509.RFC822Name):
            out.append(f"email:{g.value}")
        elif isinstance(g, x509.UniformResourceIdentifier):
            out.append(f"uri:{g.value}")
        else:
            out.append(repr(g))
    return out


def eku(cert):
    return list(ext(cert, x509.ExtendedKeyUsage).value)


def key_type(public_key) -> str:
    """"ec:P-256" etc., as twoway's --key spells it."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ec:P-256", "secp384r1": "ec:P-384",
                "secp521r1": "ec:P-521"}[public_key.curve.name]
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa:{public_key.key_size}"
    return type(public_key).__name__


def utcnow():
    return datetime.datetime.utcnow()


def fingerprint(cert) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def assert_aki_matches(child, issuer):
    """child's AKI keyIdentifier equals issuer's SKI."""
    aki = ext(child, x509.AuthorityKeyIdentifier).value
    ski = ext(issuer, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def openssl_verify(leaf, root, intermediate, purpose=None, crl=None, extra=()):
    """`openssl verify -x509_strict` of leaf against root with intermediate untrusted.
    Returns the CompletedProcess (check .returncode and .stdout/.stderr)."""
    cmd = ["openssl", "verify", "-x509_strict", "-CAfile", root, "-untrusted", intermediate]
    if purpose:
        cmd += ["-purpose", purpose]
    if crl:
        cmd += ["-crl_check", "-CRLfile", crl]
    return run_cmd(cmd + list(extra) + [leaf])


def make_csr(tmp, name="req", key=None, cn_value="ignored-subject", sans_list=(), extensions=(),
             corrupt_signature=False):
    """A PKCS#10 request written to tmp/name.csr (PEM); returns (path, private key).
    extensions: extra (extension, critical) pairs, to check twoway does not copy them."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn_value)]))
    if sans_list:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans_list)), critical=False)
    for e, critical in extensions:
        b = b.add_extension(e, critical=critical)
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    req = b.sign(key, algo)
    path = Path(tmp) / f"{name}.csr"
    if corrupt_signature:
        der = bytearray(req.public_bytes(serialization.Encoding.DER))
        der[-1] ^= 0x01  # the signature's last byte: still parseable, no longer valid
        path.write_bytes(bytes(der))
    else:
        path.write_bytes(req.public_bytes(serialization.Encoding.PEM))
    return path, key


def mtls_handshake(server_cert, server_key, server_ca, client_cert, client_key, client_ca,
                   client_chain=None, server_chain=None, crl=None, timeout=15):
    """One real two-way handshake on loopback.

    Server: `openssl s_server -Verify 1 -verify_return_error` presenting server_cert (+
    server_chain), trusting server_ca for client certificates, checking crl when given.
    Client: `openssl s_client` presenting client_cert (+ client_chain), verifying the server
    against client_ca and the hostname localhost. The server reverses a line of text, which
    proves data flowed. Returns (accepted, server_output, client_output)."""
    port = free_port()
    cmd = ["openssl", "s_server", "-rev", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
           "-cert", server_cert, "-key", server_key, "-CAfile", server_ca,
           "-Verify", "1", "-verify_return_error"]
    if server_chain:
        cmd += ["-cert_chain", server_chain]
    if crl:
        cmd += ["-CRL", crl, "-crl_check"]
    server = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(server, r"^ACCEPT", timeout=timeout)
        ccmd = ["openssl", "s_client", "-ign_eof", "-connect", f"127.0.0.1:{port}",
                "-servername", "localhost", "-verify_hostname", "localhost",
                "-CAfile", client_ca, "-verify_return_error",
                "-cert", client_cert, "-key", client_key]
        if client_chain:
            ccmd += ["-cert_chain", client_chain]
        client = run_cmd(ccmd, input="hello twoway\nCLOSE\n", timeout=timeout)
        try:
            server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            wait_for_line(server, r"^\s*a_zzz_never", timeout=0.5)  # drain what is left
        except (TimeoutError, RuntimeError):
            pass
        client_out = client.stdout + client.stderr
        accepted = client.returncode == 0 and "yawowt olleh" in client_out
        return accepted, output_so_far(server), client_out
    finally:
        stop(server)
