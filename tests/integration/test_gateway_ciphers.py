"""`ciphers` lists the gateway can really serve: DHE suites are negotiated (the gateway sets
automatic DH parameters), checked with openssl s_client, gnutls-cli and Python ssl; a list
with no TLS 1.2 suite the certificate's key can sign for is refused by --check and at
start-up, naming the key type."""

import re
import ssl
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from backends import TcpEchoBackend
from gateway_helpers import (Gateway, MiniPki, client_context, echo_roundtrip, free_port,
                             gateway_flags, tls_connect)
from twoway_testlib import run

DHE = "DHE-RSA-AES128-GCM-SHA256"
DHE_LIST = DHE + ":DHE-RSA-AES256-GCM-SHA384"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-ciphers")
    ca = MiniPki(d / "ca")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    e = {"dir": d, "ca": ca, "alice": ca.issue("alice"),
         "rsa_server": ca.server(key=rsa_key), "ec_server": ca.server(cn="ec-server")}
    backend = TcpEchoBackend()
    port = free_port()
    gw = Gateway(gateway_flags(ca, e["rsa_server"], port, backend.address,
                               extra=["--ciphers", DHE_LIST]))
    e.update(backend=backend, port=port, gw=gw)
    yield e
    assert gw.stop() == 0, gw.output()
    backend.close()


def test_openssl_negotiates_dhe(env):
    ca, alice = env["ca"], env["alice"]
    p = subprocess.run(
        ["openssl", "s_client", "-brief", "-connect", f"127.0.0.1:{env['port']}", "-tls1_2",
         "-cipher", DHE, "-CAfile", str(ca.ca_path), "-servername", "localhost",
         "-verify_return_error", "-cert", str(alice.cert_path), "-key", str(alice.key_path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert re.search(r"Ciphersuite: " + DHE + r"\b", out), out
    bits = re.search(r"Server Temp Key: DH, (\d+) bits", out)
    assert bits and int(bits.group(1)) >= 2048, out


def test_python_negotiates_dhe(env):
    ctx = client_context(env["ca"], env["alice"], ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(DHE)
    with tls_connect(env["port"], ctx) as s:
        assert s.cipher()[0] == DHE
        s.sendall(b"over dhe\n")
        s.settimeout(10)
        assert s.recv(64) == b"over dhe\n"


def test_gnutls_negotiates_dhe(env):
    if subprocess.run(["which", "gnutls-cli"], capture_output=True).returncode != 0:
        pytest.skip("gnutls-cli not installed")
    ca, alice = env["ca"], env["alice"]
    # gnutls offers ECDHE too; only the gateway's list makes this a DHE handshake.
    p = subprocess.run(
        ["gnutls-cli", "--x509cafile", str(ca.ca_path), "--x509certfile", str(alice.cert_path),
         "--x509keyfile", str(alice.key_path), "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2",
         "-p", str(env["port"]), "localhost"],
        input=b"gnutls over dhe\n", capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert re.search(r"Description: \(TLS1\.2[^)]*\)-\(DHE-", out), out
    assert "gnutls over dhe" in p.stdout.decode(errors="replace"), out


def test_default_list_still_has_no_dhe(env):
    """Automatic DH parameters do not widen the default list: a DHE-only client is refused."""
    backend = TcpEchoBackend()
    port = free_port()
    with Gateway(gateway_flags(env["ca"], env["rsa_server"], port, backend.address)) as gw:
        ctx = client_context(env["ca"], env["alice"], ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers(DHE)
        with pytest.raises(ssl.SSLError):
            echo_roundtrip(port, ctx)
        assert gw.stop() == 0
    backend.close()


def unusable_flags(env, extra=()):
    return [str(a) for a in gateway_flags(env["ca"], env["ec_server"], free_port(),
                                          env["backend"].address,
                                          extra=["--ciphers", DHE_LIST, *extra])]


WANT = ("no TLS 1.2 suite in the list fits the ECDSA certificate, so no TLS 1.2 client could "
        "connect")


def test_check_refuses_list_the_key_cannot_serve(env):
    r = run(["gateway", "--check"] + unusable_flags(env))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f'--ciphers "{DHE_LIST}": {WANT}' in r.stderr, r.stderr


def test_startup_refuses_list_the_key_cannot_serve(env):
    r = run(["gateway"] + unusable_flags(env), timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert WANT in r.stderr and "tls-min = 1.3" in r.stderr, r.stderr


def test_tls13_only_accepts_any_tls12_list(env):
    """With TLS 1.2 off the TLS 1.2 list is never used, so it cannot be wrong."""
    r = run(["gateway", "--check"] + unusable_flags(env, ["--tls-min", "1.3"]))
    assert r.returncode == 0, r.stdout + r.stderr
