"""GET /.well-known/est/[LABEL/]csrattrs (RFC 7030 §4.5.2): 200 with a base64 DER CsrAttrs on
one unbroken line, parsed by two independent decoders (pyasn1 and `openssl asn1parse`); a CSR
built from nothing but what it announces (each key type and curve, the signature algorithm,
challengePassword, a SAN for the server profile) is accepted, and a key it does not announce
is refused."""

import base64
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AttributeOID, NameOID
from pyasn1.codec.der import decoder
from pyasn1.type import univ

from est_helpers import CaServer, https, p7_certs, strict_b64, token
from twoway_testlib import Pki, run_cmd

EST = "/.well-known/est"

CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
RSA = "1.2.840.113549.1.1.1"
ED25519 = "1.3.101.112"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
RSA_SHA256 = "1.2.840.113549.1.1.11"
SUBJECT_ALT_NAME = "2.5.29.17"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("csrattrs"))
    with CaServer(pki) as srv:
        yield pki, srv


def fetch(srv, label=""):
    """(raw body, DER) of csrattrs; the body must be one line of strict base64."""
    status, hdrs, body = https(srv, "GET", f"{EST}/{label}csrattrs")
    assert status == 200, body
    assert hdrs["content-type"] == "application/csrattrs"
    assert hdrs["content-transfer-encoding"] == "base64"
    return body, strict_b64(body)


def parse_pyasn1(der):
    """CsrAttrs as [oid] and (attribute type, [value oids]) items, dotted OIDs."""
    obj, rest = decoder.decode(der)
    assert rest == b"" and isinstance(obj, univ.Sequence)
    items = []
    for i in range(len(obj)):
        c = obj[i]
        if isinstance(c, univ.ObjectIdentifier):
            items.append(str(c))
        else:
            values = c[1]
            assert isinstance(values, (univ.SetOf, univ.Set)) and len(values) >= 1
            items.append((str(c[0]), sorted(str(values[j]) for j in range(len(values)))))
    return items


def parse_asn1parse(der):
    """The same with `openssl asn1parse -oid /dev/null`, which prints dotted-looking names; we
    ask it for the structure only and compare shapes and OID text."""
    out = subprocess.run(["openssl", "asn1parse", "-inform", "DER"], input=der,
                         capture_output=True, check=True).stdout.decode()
    rows = [re.match(r"\s*\d+:d=(\d+)\s+hl=\s*\d+\s+l=\s*\d+\s+(prim|cons):\s*(\w+)\s*:?(.*)$",
                     line).groups() for line in out.splitlines() if line.strip()]
    assert rows[0][:3] == ("0", "cons", "SEQUENCE")
    items, current = [], None
    for depth, _, kind, value in rows[1:]:
        if depth == "1":
            current = None
            if kind == "OBJECT":
                items.append(value.strip())
            else:
                assert kind == "SEQUENCE"
                current = [None, []]
                items.append(current)
        elif depth == "2" and kind == "OBJECT":
            current[0] = value.strip()
        elif depth == "3" and kind == "OBJECT":
            current[1].append(value.strip())
    return [i if isinstance(i, str) else (i[0], sorted(i[1])) for i in items]


@pytest.mark.parametrize("label", ["", "client/", "server/"])
def test_answer_is_200_one_line_and_both_parsers_agree(env, label):
    _, srv = env
    body, der = fetch(srv, label)
    assert b"\n" not in body and b"\r" not in body and b" " not in body
    items = parse_pyasn1(der)
    assert items[0] == CHALLENGE_PASSWORD  # tokens are taken (--approval token)
    assert (EC_PUBLIC_KEY, sorted(["1.2.840.10045.3.1.7", "1.3.132.0.34", "1.3.132.0.35"])) \
        in items
    for oid in (RSA, ED25519, ECDSA_SHA256, RSA_SHA256):
        assert oid in items
    assert ((EXTENSION_REQUEST, [SUBJECT_ALT_NAME]) in items) == (label == "server/")
    named = parse_asn1parse(der)
    assert len(named) == len(items)
    assert named[0] == "challengePassword"
    assert ("id-ecPublicKey", ["prime256v1", "secp384r1", "secp521r1"]) in named
    for name in ("rsaEncryption", "ED25519", "ecdsa-with-SHA256", "sha256WithRSAEncryption"):
        assert name in named
    # curl, a third client, gets the same single line.
    r = run_cmd(["curl", "-sS", "-f", "--cacert", env[0].chain, f"{srv.url}{EST}/{label}csrattrs"],
                check=True)
    assert r.stdout.encode() == body


def keys_announced(items):
    """One (description, private key, hash) per key type the attributes announce."""
    out = []
    for item in items:
        if isinstance(item, tuple) and item[0] == EC_PUBLIC_KEY:
            for curve in item[1]:
                key = ec.generate_private_key(
                    ec.get_curve_for_oid(x509.ObjectIdentifier(curve)))
                out.append((f"ec {key.curve.name}", key, hashes.SHA256()))
        elif item == RSA:
            assert RSA_SHA256 in items
            out.append(("rsa 2048", rsa.generate_private_key(65537, 2048), hashes.SHA256()))
        elif item == ED25519:
            out.append(("ed25519", ed25519.Ed25519PrivateKey.generate(), None))
    return out


def csr_from(items, key, digest, name, sans=()):
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
    if CHALLENGE_PASSWORD in items:
        b = b.add_attribute(AttributeOID.CHALLENGE_PASSWORD, b"tls-unique-or-anything")
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                            critical=False)
    return b.sign(key, digest).public_bytes(serialization.Encoding.DER)


def enroll(srv, pki, label, name, csr, profile="client", sans=None):
    args = ["--profile", profile] + (["--san", sans] if sans else [])
    tok, _ = token(pki, name, *args)
    auth = "Basic " + base64.b64encode(f"{name}:{tok}".encode()).decode()
    return https(srv, "POST", f"{EST}/{label}simpleenroll", base64.b64encode(csr),
                 {"Authorization": auth, "Content-Type": "application/pkcs10"})


@pytest.mark.parametrize("label", ["", "client/"])
def test_a_csr_built_from_the_attributes_is_accepted_for_every_key_type(env, label):
    pki, srv = env
    items = parse_pyasn1(fetch(srv, label)[1])
    announced = keys_announced(items)
    assert len(announced) == 5  # three curves, RSA, Ed25519
    for i, (what, key, digest) in enumerate(announced):
        name = f"attrs{label.strip('/')}{i}"
        status, _, body = enroll(srv, pki, label, name, csr_from(items, key, digest, name))
        assert status == 200, f"{what}: {body!r}"
        cert = p7_certs(body)[0]
        assert cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
            key.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo), what


def test_server_profile_asks_for_the_san_it_needs(env):
    pki, srv = env
    items = parse_pyasn1(fetch(srv, "server/")[1])
    assert (EXTENSION_REQUEST, [SUBJECT_ALT_NAME]) in items
    key = ec.generate_private_key(ec.SECP384R1())
    csr = csr_from(items, key, hashes.SHA256(), "web1", sans=["web1.example.test"])
    status, _, body = enroll(srv, pki, "server/", "web1", csr, profile="server",
                             sans="dns:web1.example.test")
    assert status == 200, body
    san = p7_certs(body)[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "web1.example.test" in san.value.get_values_for_type(x509.DNSName)


def test_a_key_the_attributes_do_not_announce_is_refused(env):
    pki, srv = env
    items = parse_pyasn1(fetch(srv)[1])
    assert "1.3.132.0.10" not in str(items)  # secp256k1
    key = ec.generate_private_key(ec.SECP256K1())
    status, _, body = enroll(srv, pki, "", "k1", csr_from(items, key, hashes.SHA256(), "k1"))
    assert status == 400 and b"not accepted" in body


def test_manual_approval_does_not_ask_for_a_challenge_password(tmp_path):
    pki = Pki(tmp_path)
    with CaServer(pki, "--approval", "manual") as srv:
        items = parse_pyasn1(fetch(srv)[1])
    assert CHALLENGE_PASSWORD not in items
    assert RSA in items and ECDSA_SHA256 in items
