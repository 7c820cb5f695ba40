"""Keys that never leave a PKCS#11 token (SoftHSM2 in a temp dir, inspected with pkcs11-tool):
the CA with all three keys in the token issues, revokes, signs CRLs and OCSP answers that
`openssl verify`, `openssl crl` and `openssl ocsp` accept; a gateway whose key is in the token
serves curl and Python's ssl; a client whose key is made in the token enrolls, renews with
--rekey and reaches the gateway through `twoway tunnel`; every error names its cause."""

import socket
import ssl
import time
from urllib.parse import unquote

import pytest

from backends import HttpEchoBackend, TcpEchoBackend
from est_helpers import CaServer, enroll, token
from gateway_helpers import Gateway, recv_exact
from hwkey_helpers import curl_tls13_and_tls12
from keystores import SoftHsm, check_ca_signs
from test_tunnel import Tunnel, client_cert_cn, http_get
from twoway_testlib import Pki, free_port, run, run_cmd


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    return SoftHsm(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture(scope="module")
def ca(hsm, tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("token-ca"), name="Token CA",
              extra_args=["--key-store", hsm.uri()])
    with CaServer(pki) as srv:
        yield pki, srv


def object_label(key_file_text):
    """The object= label of the pkcs11: URI a key file holds, percent-decoded."""
    path = key_file_text.strip().split("?", 1)[0]
    attrs = dict(a.split("=", 1) for a in path[len("pkcs11:"):].split(";"))
    return unquote(attrs["object"])


def never_extractable(access):
    return "sensitive" in access and "never extractable" in access


def test_ca_keys_live_in_the_token(hsm, ca):
    pki, _ = ca
    keys = hsm.private_keys()
    for part in ("Root", "Intermediate", "OCSP Signer"):
        assert never_extractable(keys[f"Token CA {part}"]), keys
    for f in ("root.key", "intermediate.key", "ocsp.key"):
        text = (pki.ca_dir / f).read_text()
        assert text.startswith("pkcs11:token=twoway;object=Token%20CA%20") and "PRIVATE" not in text
    assert "OK" in run_cmd(["openssl", "verify", "-CAfile", pki.root, "-untrusted",
                            pki.intermediate, pki.ocsp], check=True).stdout


def test_token_ca_issues_revokes_and_signs_crl_and_ocsp(ca, tmp_path):
    pki, srv = ca
    check_ca_signs(pki, srv.port, tmp_path)


def enroll_in_token(hsm, ca, name, out, profile="client", san=None):
    pki, srv = ca
    args = ["--profile", profile] + (["--san", san] if san else [])
    tok, _ = token(pki, name, *args)
    srv_url = srv
    extra = ["--key-store", hsm.uri()] + (["--san", san] if san else [])
    if profile == "server":
        class _S:  # the server profile's EST path
            url = srv.url + "/.well-known/est/server"
            pki = srv.pki
        srv_url = _S
    r = enroll(srv_url, name, tok, out, *extra)
    assert r.returncode == 0, r.stderr + srv.output()[-3000:]
    return out / f"{name}.key", out / f"{name}.crt", out / f"{name}.chain.pem"


@pytest.fixture(scope="module")
def backend():
    b = HttpEchoBackend()
    yield b
    b.close()


def start_gateway(ca, key, chain, backend):
    pki, _ = ca
    port = free_port()
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend.port}",
                 "--cert", chain, "--key", key, "--client-ca", pki.chain, "--workers", "1"])
    g.port = port
    return g


def test_gateway_key_in_token_serves_curl_and_python(hsm, ca, backend, tmp_path):
    pki, _ = ca
    key, crt, chain = enroll_in_token(hsm, ca, "gw1", tmp_path, profile="server",
                                      san="ip:127.0.0.1")
    assert key.read_text().startswith("pkcs11:") and "never extractable" in \
        [a for lbl, a in hsm.private_keys().items() if lbl.startswith("gw1 ")][0]
    alice = pki.issue_client("gw-alice", out=tmp_path)
    g = start_gateway(ca, key, chain, backend)
    try:
        curl_tls13_and_tls12(g.port, pki.root, alice.cert, alice.key)
        ctx = ssl.create_default_context(cafile=str(pki.root))
        ctx.load_cert_chain(str(alice.chain), str(alice.key))
        with socket.create_connection(("127.0.0.1", g.port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                assert t.version() in ("TLSv1.3", "TLSv1.2")
                peer = t.getpeercert()
                assert dict(x[0] for x in peer["subject"])["commonName"] == "gw1"
    finally:
        assert g.stop() == 0


def test_client_key_in_token_enrolls_renews_with_rekey_and_tunnels(hsm, ca, backend, tmp_path):
    pki, srv = ca
    key, crt, chain = enroll_in_token(hsm, ca, "bob", tmp_path)
    first = key.read_text()
    assert first.startswith("pkcs11:token=twoway;object=bob%20")
    old_label = object_label(first)
    assert hsm.labels("privkey", "bob ") == [old_label] == hsm.labels("pubkey", "bob ")
    (tmp_path / "ca.pem").write_bytes(pki.root.read_bytes())
    before = run_cmd(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=True).stdout
    r = run(["renew", "--cert", crt, "--key", key, "--server", srv.url, "--rekey"])
    assert r.returncode == 0, r.stderr
    second = key.read_text()
    assert second != first and second.startswith("pkcs11:token=twoway;object=bob%20")
    after = run_cmd(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=True).stdout
    assert after != before
    # The swap done, the previous key pair is destroyed in the token: one bob key, the new one.
    new_label = object_label(second)
    assert new_label != old_label
    assert hsm.labels("privkey", "bob ") == [new_label] == hsm.labels("pubkey", "bob ")
    assert f"destroyed the previous key '{old_label}' in token 'twoway'" in r.stderr, r.stderr
    assert never_extractable(hsm.private_keys()[new_label])

    server_key, _, server_chain = enroll_in_token(hsm, ca, "tgw", tmp_path / "gw",
                                                  profile="server", san="ip:127.0.0.1")
    g = start_gateway(ca, server_key, server_chain, backend)
    listen = free_port()
    try:
        with Tunnel(["--listen", f"127.0.0.1:{listen}", "--target", f"127.0.0.1:{g.port}",
                     "--server-name", "127.0.0.1", "--cert", chain, "--key", key, "--ca",
                     pki.chain, "--workers", "1", "--access-log", "off"]):
            status, resp = http_get(listen)
            assert status is not None and " 200 " in status + " ", status
            subject, _ = client_cert_cn(resp)
            assert subject == "CN=bob"
    finally:
        assert g.stop() == 0


def test_failed_rekey_keeps_the_old_key_and_leaves_no_new_one(hsm, ca, tmp_path):
    """renew --rekey that fails before the swap (the CA unreachable): the key file still names
    the old key, which still authenticates (the next renewal succeeds with it), and the key
    made for the failed attempt is destroyed again."""
    pki, srv = ca
    key, crt, _ = enroll_in_token(hsm, ca, "carol", tmp_path)
    first = key.read_text()
    label = object_label(first)
    (tmp_path / "ca.pem").write_bytes(pki.root.read_bytes())
    dead = f"https://127.0.0.1:{free_port()}"
    r = run(["renew", "--cert", crt, "--key", key, "--server", dead, "--rekey"])
    assert r.returncode != 0
    assert key.read_text() == first
    assert "destroyed the new key 'carol " in r.stderr, r.stderr
    assert hsm.labels("privkey", "carol ") == [label] == hsm.labels("pubkey", "carol ")
    r = run(["renew", "--cert", crt, "--key", key, "--server", srv.url, "--rekey"])
    assert r.returncode == 0, r.stderr
    assert hsm.labels("privkey", "carol ") == [object_label(key.read_text())] != [label]


def test_rekey_needs_a_key_file(hsm, ca, tmp_path):
    pki, srv = ca
    r = run(["renew", "--cert", pki.root, "--key", hsm.uri(object="x"), "--server", srv.url,
             "--ca", pki.root, "--rekey"])
    assert r.returncode == 2 and "--rekey needs --key to be a key file" in r.stderr, r.stderr


# ------------------------------------------------------------------------------ errors


def gateway_check(key, cert, client_ca):
    return run(["gateway", "--check", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2",
                "--cert", cert, "--key", key, "--client-ca", client_ca])


@pytest.mark.parametrize("uri_kw, message", [
    ({"module": "/nonexistent/libpkcs11.so"},
     "cannot load PKCS#11 module /nonexistent/libpkcs11.so"),
    ({"object": "no-such-key"}, "token 'twoway' holds no private key 'no-such-key'"),
])
def test_errors_name_the_cause(hsm, ca, tmp_path, uri_kw, message):
    pki, _ = ca
    module = uri_kw.pop("module", None)
    uri = hsm.uri(module=module, **uri_kw) if module else hsm.uri(**uri_kw)
    r = gateway_check(uri, pki.root, pki.chain)
    assert r.returncode == 1 and message in r.stdout + r.stderr, r.stdout + r.stderr


def test_absent_token_is_named(hsm, ca):
    pki, _ = ca
    uri = hsm.uri(object="x").replace("token=twoway", "token=absent")
    r = gateway_check(uri, pki.root, pki.chain)
    assert r.returncode == 1 and "no token labelled 'absent' is present" in r.stdout + r.stderr


def test_wrong_pin_is_refused_once_and_not_retried(hsm, ca, tmp_path):
    pki, _ = ca
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("0000\n")
    wrong.chmod(0o600)
    r = gateway_check(hsm.uri(pin_file=wrong, object="Token CA Root"), pki.root, pki.chain)
    assert r.returncode == 1
    assert "token 'twoway': wrong PIN (not retried" in r.stdout + r.stderr
    # One failure, not a loop: the token still takes the right PIN (SoftHSM locks after 10).
    info = run_cmd(["pkcs11-tool", "--module", "/usr/lib/softhsm/libsofthsm2.so", "-L"],
                   check=True).stdout
    assert "PIN locked" not in info
    assert hsm.tool("--list-objects", "--type", "privkey").returncode == 0


def test_pin_in_uri_and_key_types_tokens_cannot_make_are_refused(hsm, tmp_path):
    r = run(["ca", "init", "--dir", tmp_path / "a", "--key-store",
             f"pkcs11:token=twoway?pin-value=1234&module-path=/usr/lib/softhsm/libsofthsm2.so"])
    assert r.returncode == 1 and "pin-value is refused" in r.stderr
    r = run(["ca", "init", "--dir", tmp_path / "b", "--key", "ed25519", "--key-store",
             hsm.uri()])
    assert r.returncode == 2
    assert "keys made in a token or TPM are ec:P-256, ec:P-384, rsa:2048 or rsa:3072" in r.stderr
    passfile = tmp_path / "pass"
    passfile.write_text("long enough passphrase\n")
    r = run(["ca", "init", "--dir", tmp_path / "c", "--passphrase-file", passfile,
             "--key-store", hsm.uri()])
    assert r.returncode == 2 and "exclude each other" in r.stderr


def test_rsa_ca_in_token(hsm, tmp_path):
    pki = Pki(tmp_path, name="RSA Token CA", key="rsa:2048",
              extra_args=["--key-store", hsm.uri()])
    got = pki.issue_client("rsa-alice", out=tmp_path / "out")
    r = run_cmd(["openssl", "verify", "-CAfile", pki.root, "-untrusted", pki.intermediate,
                 got.cert], check=True)
    assert "OK" in r.stdout
    assert "sha256WithRSAEncryption" in run_cmd(
        ["openssl", "x509", "-in", got.cert, "-noout", "-text"], check=True).stdout


def test_token_removed_while_serving(hsm, ca, tmp_path):
    """The token goes away under a running gateway: established connections keep working,
    new handshakes are refused with the token's own reason logged, the gateway keeps running;
    when the token is back, new handshakes succeed again without a reload."""
    pki, _ = ca
    key, _, chain = enroll_in_token(hsm, ca, "rm1", tmp_path, profile="server",
                                    san="ip:127.0.0.1")
    alice = pki.issue_client("rm-alice", out=tmp_path)
    echo = TcpEchoBackend()
    port = free_port()
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{echo.port}",
                 "--mode", "tcp", "--cert", chain, "--key", key, "--client-ca", pki.chain,
                 "--workers", "1"])
    ctx = ssl.create_default_context(cafile=str(pki.root))
    ctx.load_cert_chain(str(alice.chain), str(alice.key))
    tokens = hsm.dir / "tokens"
    away = hsm.dir / "away"
    try:
        live = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                               server_hostname="127.0.0.1")
        live.sendall(b"one\n")
        assert recv_exact(live, 4) == b"one\n"
        (token_dir,) = list(tokens.iterdir())
        token_dir.rename(away)  # SoftHSM's "unplug": the token's objects disappear
        try:
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                     server_hostname="127.0.0.1") as s:
                    s.sendall(b"x\n")
                    recv_exact(s, 2)
            # The token's own reason, not libssl's bare "EVP lib".
            g.wait_line(r"handshake from 127\.0\.0\.1:\d+ refused: .*token 'twoway': signing "
                        r"with 'rm1 [^']*' failed: [a-z ]+ \(CKR_[A-Z_]+\)", timeout=10)
            live.sendall(b"two\n")  # the established connection is not affected
            assert recv_exact(live, 4) == b"two\n"
            assert g.proc.poll() is None
        finally:
            away.rename(token_dir)
        # The token is back: the key store reopens its session (re-initialising the module,
        # which SoftHSM needs to see the token again; at most once a second), and new
        # handshakes succeed without a reload. Bounded: a few attempts over 10 seconds.
        deadline = time.monotonic() + 10
        while True:
            try:
                with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                     server_hostname="127.0.0.1") as s:
                    s.sendall(b"back\n")
                    assert recv_exact(s, 5) == b"back\n"
                break
            except (ssl.SSLError, ConnectionError) as e:
                assert time.monotonic() < deadline, f"no recovery: {e}\n{g.output()[-2000:]}"
                g.wait_line(r"handshake from 127\.0\.0\.1:\d+ refused", timeout=10)
        assert "SIGHUP" not in g.output() and "reload" not in g.output()
        live.sendall(b"three\n")
        assert recv_exact(live, 6) == b"three\n"
        live.close()
    finally:
        assert g.stop() == 0
        echo.close()
