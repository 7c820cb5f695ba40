"""`twoway doctor`: one scenario per diagnosis, against `twoway gateway` and `openssl s_server`
with certificates from `twoway ca` (expired / not-yet-valid ones are made with python
cryptography, signed by the CA's intermediate key in the data dir)."""

import datetime
import json
import os
import socket
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backends import TcpEchoBackend
from gateway_helpers import Gateway
from twoway_testlib import Pki, free_port, run, stop, wait_for_port

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def make_cert(pki, out, name, not_before, not_after, eku=ExtendedKeyUsageOID.CLIENT_AUTH,
              sans=()):
    """A leaf signed by the twoway CA's intermediate, with any validity window."""
    ikey = serialization.load_pem_private_key((pki.ca_dir / "intermediate.key").read_bytes(),
                                              None)
    icert = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(icert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
         .add_extension(x509.ExtendedKeyUsage([eku]), False))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    cert = b.sign(ikey, hashes.SHA256())
    crt, k = out / f"{name}.crt", out / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(k, 0o600)
    return crt, k


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("doctor")
    pki = Pki(d / "main")
    other = Pki(d / "other", name="Other CA")
    out = d / "made"
    out.mkdir()
    e = {
        "d": d, "pki": pki, "other": other, "out": out,
        "server": pki.issue_server("localhost", san="ip:127.0.0.1"),
        "alice": pki.issue_client("alice"),
        "bob": pki.issue_client("bob"),
        "stranger": other.issue_client("stranger"),
        "other_server": other.issue_server("localhost", san="ip:127.0.0.1"),
        "expired": make_cert(pki, out, "expired", NOW - 10 * DAY, NOW - DAY),
        "future": make_cert(pki, out, "future", NOW + DAY, NOW + 10 * DAY),
        "srv_expired": make_cert(pki, out, "srv-expired", NOW - 10 * DAY, NOW - DAY,
                                 ExtendedKeyUsageOID.SERVER_AUTH, sans=["localhost"]),
        "srv_future": make_cert(pki, out, "srv-future", NOW + DAY, NOW + 10 * DAY,
                                ExtendedKeyUsageOID.SERVER_AUTH, sans=["localhost"]),
    }
    e["backend"] = TcpEchoBackend()
    yield e
    e["backend"].close()


def gateway(env, extra=(), client_ca=None, cert=None):
    port = free_port()
    s = env["server"]
    args = ["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{env['backend'].port}",
            "--mode", "tcp", "--cert", cert or s.chain, "--key", s.key,
            "--client-ca", client_ca or env["pki"].chain, "--workers", "1"] + list(extra)
    gw = Gateway(args)
    gw.port = port
    return gw


def doctor(*args, timeout=60):
    return run(["doctor"] + [str(a) for a in args], timeout=timeout)


def client_args(issued, chain=True):
    return ["--cert", issued.chain if chain else issued.cert, "--key", issued.key]


def assert_finding(r, code, words, rc=1):
    out = r.stdout
    assert r.returncode == rc, out + r.stderr
    assert f"[{code}]" in out, out
    for w in words:
        assert w in out, out


@pytest.fixture(scope="module")
def gw(env):
    g = gateway(env)
    yield g
    g.stop()


# ---- success, steps, JSON ---------------------------------------------------------------------

def test_success_shows_every_step(env, gw):
    r = doctor(f"127.0.0.1:{gw.port}", *client_args(env["alice"]), "--ca", env["pki"].chain)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    order = ["> TCP connected", "> ClientHello sent", "> ServerHello: TLSv1.3",
             "> Server certificate chain", "chain: trusted", "name:  127.0.0.1 matches",
             "> CertificateRequest", "CN=Test CA Intermediate", "signature algorithms:",
             "> Client certificate sent: CN=alice", "> Handshake finished",
             "> Verdict: the server accepted the client certificate",
             "Result: two-way TLS handshake OK"]
    at = out.find("Probing")
    for s in order:  # each step after the previous one
        at = out.find(s, at)
        assert at >= 0, f"{s!r} missing or out of order:\n{out}"



def test_success_tls12_and_json(env, gw):
    r = doctor(f"127.0.0.1:{gw.port}", *client_args(env["alice"]), "--ca", env["pki"].chain,
               "--tls-max", "1.2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    j = json.loads(r.stdout)
    assert j["ok"] is True
    h = j["handshake"]
    assert h["version"] == "TLSv1.2" and h["accepted"] and h["client_certificate_sent"]
    assert "CN=Test CA Root" in h["ca_names"]
    assert h["server_chain"][0]["subject"] == "CN=localhost"
    assert h["server_check"]["chain"] == "ok" and h["server_check"]["name_check"] == "ok"


# ---- the client side --------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_no_client_certificate(env, gw, version):
    r = doctor(f"127.0.0.1:{gw.port}", "--ca", env["pki"].chain, "--tls-max", version)
    assert_finding(r, "no-client-cert",
                   ["the server asks for a client certificate and none was sent",
                    "fix: pass --cert FILE --key FILE", "CN=Test CA Root"])
    if version == "1.3":
        assert "certificate required (after the handshake)" in r.stdout


def test_verdict_wait_flag(env, gw):
    """--verdict-wait sets how long doctor reads for a TLS 1.3 refusal after the handshake:
    the refusal is still caught, and an accepted handshake takes about that long."""
    r = doctor(f"127.0.0.1:{gw.port}", "--ca", env["pki"].chain, "--tls-min", "1.3",
               "--verdict-wait", "3s")
    assert_finding(r, "no-client-cert",
                   ["the server asks for a client certificate and none was sent"])
    started = time.monotonic()
    r = doctor(f"127.0.0.1:{gw.port}", *client_args(env["alice"]), "--ca", env["pki"].chain,
               "--tls-min", "1.3", "--verdict-wait", "2s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - started >= 1.9


def test_client_ca_not_listed(env, gw):
    r = doctor(f"127.0.0.1:{gw.port}", *client_args(env["stranger"]), "--ca", env["pki"].chain)
    assert_finding(r, "ca-not-listed",
                   ["issued by CN=Other CA Intermediate, a CA the server does not accept",
                    "it accepts: CN=Test CA Intermediate; CN=Test CA Root"])


def test_client_expired(env, gw):
    crt, key = env["expired"]
    r = doctor(f"127.0.0.1:{gw.port}", "--cert", crt, "--key", key, "--ca", env["pki"].chain)
    assert_finding(r, "expired", ["your certificate CN=expired expired on", "fix: renew it"])
    assert "certificate expired" in r.stdout  # the server's own alert, shown as a step


def test_client_not_yet_valid(env, gw):
    crt, key = env["future"]
    r = doctor(f"127.0.0.1:{gw.port}", "--cert", crt, "--key", key, "--ca", env["pki"].chain)
    assert_finding(r, "not-yet-valid", ["the certificate CN=future is not valid until",
                                        "check the clock"])


def test_client_wrong_eku(env, gw):
    s = env["server"]
    r = doctor(f"127.0.0.1:{gw.port}", "--cert", s.cert, "--key", s.key, "--ca",
               env["pki"].chain)
    assert_finding(r, "wrong-eku", ["lacks the extended key usage clientAuth (it has: "
                                    "serverAuth)", "twoway ca issue client NAME"])


def test_key_mismatch(env, gw):
    r = doctor(f"127.0.0.1:{gw.port}", "--cert", env["alice"].chain, "--key", env["bob"].key,
               "--ca", env["pki"].chain)
    assert_finding(r, "key-mismatch", ["does not belong to the certificate",
                                       "the probe ran without a client certificate"])


def test_missing_intermediate(env):
    g = gateway(env, client_ca=env["pki"].root)
    try:
        r = doctor(f"127.0.0.1:{g.port}", *client_args(env["alice"], chain=False), "--ca",
                   env["pki"].chain)
        assert_finding(r, "missing-intermediate",
                       ["you sent only your own certificate; its issuer CN=Test CA "
                        "Intermediate is an intermediate CA the server does not have",
                        "NAME.chain.pem"])
        r = doctor(f"127.0.0.1:{g.port}", *client_args(env["alice"]), "--ca", env["pki"].chain)
        assert r.returncode == 0, r.stdout
        assert "2 certificates" in r.stdout
    finally:
        g.stop()


def test_revoked(env):
    pki = env["pki"]
    carol = pki.issue_client("carol")
    pki.revoke("carol")
    pki.write_crl()
    g = gateway(env, extra=["--crl", pki.crl])
    try:
        r = doctor(f"127.0.0.1:{g.port}", *client_args(carol), "--ca", pki.chain)
        assert_finding(r, "revoked", ["the server says your certificate CN=carol is revoked"])
    finally:
        g.stop()


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_rejected_by_policy(env, version):
    g = gateway(env, extra=["--allow", "cn:bob"])
    try:
        r = doctor(f"127.0.0.1:{g.port}", *client_args(env["alice"]), "--ca", env["pki"].chain,
                   "--tls-max", version)
        assert_finding(r, "policy", ["rejected your certificate CN=alice by policy: the "
                                     "certificate is valid but denied by the allow-policy",
                                     "allow = cn:NAME"])
        # The gateway's log says the same.
        g.wait_line(r"refused.*the certificate is valid but denied by the allow-policy")
        assert "handshake failure" in r.stdout
        assert doctor(f"127.0.0.1:{g.port}", *client_args(env["bob"]), "--ca",
                      env["pki"].chain).returncode == 0
    finally:
        g.stop()


# ---- the server side --------------------------------------------------------------------------

def test_server_name_mismatch(env, gw):
    r = doctor(f"127.0.0.1:{gw.port}", *client_args(env["alice"]), "--ca", env["pki"].chain,
               "--server-name", "wrong.example")
    assert_finding(r, "server-name-mismatch",
                   ["not for wrong.example (it names dns:localhost, ip:127.0.0.1",
                    "--server-name NAME"])
    assert "wrong.example is NOT in the certificate's names" in r.stdout


def test_server_chain_untrusted(env, gw):
    r = doctor(f"127.0.0.1:{gw.port}", *client_args(env["alice"]), "--ca", env["other"].chain)
    assert_finding(r, "server-untrusted", ["the server's certificate chain is not trusted",
                                           "pass the CA that issued the server's certificate"])
    assert "chain: NOT trusted" in r.stdout


def test_server_missing_intermediate(env):
    g = gateway(env, cert=env["server"].cert)  # leaf only
    try:
        r = doctor(f"127.0.0.1:{g.port}", *client_args(env["alice"]), "--ca", env["pki"].root)
        assert_finding(r, "server-missing-intermediate",
                       ["the server sent only its own certificate, and its issuer CN=Test CA "
                        "Intermediate is not in", "send its chain"])
    finally:
        g.stop()


class SServer:
    """openssl s_server on a free port, until stopped."""

    def __init__(self, cert, key, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-cert", str(cert),
             "-key", str(key), "-naccept", "5", "-quiet"] + [str(x) for x in extra],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port, proc=self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        stop(self.proc)


def test_server_expired(env):
    crt, key = env["srv_expired"]
    with SServer(crt, key, "-verify", "1", "-CAfile", env["pki"].chain) as s:
        r = doctor(f"localhost:{s.port}", *client_args(env["alice"]), "--ca", env["pki"].chain)
    assert_finding(r, "server-expired", ["the server's certificate CN=srv-expired expired on",
                                         "must renew it"])


def test_server_not_yet_valid(env):
    crt, key = env["srv_future"]
    with SServer(crt, key, "-verify", "1", "-CAfile", env["pki"].chain) as s:
        r = doctor(f"localhost:{s.port}", *client_args(env["alice"]), "--ca", env["pki"].chain)
    assert_finding(r, "server-not-yet-valid", ["the server's certificate CN=srv-future is not "
                                               "valid until", "check the clocks"])


def test_backend_down_is_a_warning(env):
    """The handshake succeeds, then the gateway closes (its backend is down): exit 0."""
    from backends import unused_port
    port = free_port()
    s = env["server"]
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{unused_port()}",
                 "--mode", "tcp", "--cert", s.chain, "--key", s.key, "--client-ca",
                 env["pki"].chain, "--workers", "1"])
    try:
        r = doctor(f"127.0.0.1:{port}", *client_args(env["alice"]), "--ca", env["pki"].chain,
                   "--json")
    finally:
        g.stop()
    assert r.returncode == 0, r.stdout
    j = json.loads(r.stdout)
    assert j["ok"] and j["handshake"]["accepted"] and j["handshake"]["server_closed"]
    assert [d["code"] for d in j["diagnosis"]] == ["closed-after-handshake"]
    assert j["diagnosis"][0]["fatal"] is False


def test_server_wrong_eku(env):
    a = env["alice"]
    with SServer(a.cert, a.key, "-verify", "1", "-CAfile", env["pki"].chain) as s:
        r = doctor(f"127.0.0.1:{s.port}", *client_args(env["bob"]), "--ca", env["pki"].chain,
                   "--server-name", "alice")
    assert_finding(r, "server-wrong-eku", ["is not for TLS servers",
                                           "twoway ca issue server NAME"])


def test_not_mutual(env):
    s = env["server"]
    with SServer(s.chain, s.key) as srv:
        r = doctor(f"127.0.0.1:{srv.port}", *client_args(env["alice"]), "--ca", env["pki"].chain)
    assert_finding(r, "not-mutual", ["never asked for a client certificate: this is one-way "
                                     "TLS"])


def test_protocol_mismatch(env):
    g = gateway(env, extra=["--tls-min", "1.3"])
    try:
        r = doctor(f"127.0.0.1:{g.port}", *client_args(env["alice"]), "--ca", env["pki"].chain,
                   "--tls-max", "1.2")
        assert_finding(r, "protocol", ["no TLS version in common", "tls-min"])
    finally:
        g.stop()


def test_cipher_mismatch(env):
    s = env["server"]
    with SServer(s.chain, s.key, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256") as srv:
        r = doctor(f"127.0.0.1:{srv.port}", *client_args(env["alice"]), "--ca", env["pki"].chain)
    assert_finding(r, "cipher", ["no cipher suite, key exchange group or signature algorithm "
                                 "in common"])


def test_nothing_listening(env):
    port = free_port()
    r = doctor(f"127.0.0.1:{port}", "--ca", env["pki"].chain)
    assert_finding(r, "not-listening", [f"nothing is listening on 127.0.0.1:{port}"])
    assert "> TCP connection to" in r.stdout


def test_not_tls(env):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def answer():
        try:
            c, _ = srv.accept()
            c.recv(4096)
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            c.close()
        except OSError:
            pass

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        r = doctor(f"127.0.0.1:{port}", "--ca", env["pki"].chain, "--timeout", "5")
    finally:
        srv.close()
    assert_finding(r, "not-tls", ["accepted the connection but does not speak TLS"])


def test_usage_errors(env):
    assert doctor().returncode == 2
    assert doctor("nohostport").returncode == 2
    assert doctor("127.0.0.1:99999").returncode == 2
    assert doctor("127.0.0.1:1", "--cert", env["alice"].cert).returncode == 2
    assert doctor("127.0.0.1:1", "--tls-max", "1.1").returncode == 2
    for bad in ("0", "2m", "soon"):
        r = doctor("127.0.0.1:1", "--verdict-wait", bad)
        assert r.returncode == 2 and "--verdict-wait" in r.stderr
    r = doctor("127.0.0.1:1", "--cert", "/nonexistent.pem", "--key", env["alice"].key)
    assert r.returncode == 1 and "/nonexistent.pem" in r.stderr


# ---- offline ----------------------------------------------------------------------------------

def test_offline_ok(env):
    a = env["alice"]
    r = doctor("--cert", a.chain, "--key", a.key, "--ca", env["pki"].chain)
    assert r.returncode == 0, r.stdout
    assert "key      " in r.stdout and "matches" in r.stdout
    assert "Result: certificate OK" in r.stdout


def test_offline_findings(env):
    pki, a = env["pki"], env["alice"]
    crt, key = env["expired"]
    assert_finding(doctor("--cert", crt, "--key", key, "--ca", pki.chain), "expired",
                   ["expired on"])
    crt, key = env["future"]
    assert_finding(doctor("--cert", crt, "--key", key), "not-yet-valid", ["not valid until"])
    assert_finding(doctor("--cert", a.cert, "--key", env["bob"].key), "key-mismatch",
                   ["does not belong to the certificate"])
    s = env["server"]
    assert_finding(doctor("--cert", s.cert, "--role", "client"), "wrong-eku",
                   ["lacks the extended key usage clientAuth"])
    assert doctor("--cert", s.chain, "--key", s.key, "--ca", pki.chain).returncode == 0
    # The leaf alone verifies only thanks to --ca's intermediate: a warning, exit 0.
    assert_finding(doctor("--cert", a.cert, "--ca", pki.chain), "missing-intermediate",
                   ["not its intermediate CA CN=Test CA Intermediate"], rc=0)
    assert_finding(doctor("--cert", a.cert, "--ca", pki.root), "issuer-unknown",
                   ["the issuer CN=Test CA Intermediate is neither in the certificate file "
                    "nor in --ca"])
    assert_finding(doctor("--cert", env["stranger"].chain, "--ca", pki.chain), "issuer-unknown",
                   ["ends at CN=Other CA Root, which is not in", "does not trust"])


def test_offline_revoked_json(env):
    pki = env["pki"]
    dave = pki.issue_client("dave")
    pki.revoke("dave")
    pki.write_crl()
    r = doctor("--cert", dave.chain, "--ca", pki.chain, "--crl", pki.crl, "--json")
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["ok"] is False and j["diagnosis"][0]["code"] == "chain"
    assert "revoked" in j["diagnosis"][0]["problem"]
