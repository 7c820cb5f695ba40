"""The gateway's client checks with real TLS peers: python ssl, openssl s_client, curl and
gnutls-cli against `twoway gateway` in TCP mode in front of an echo backend."""

import datetime
import json
import ssl
import subprocess
import time

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from twoway_testlib import output_so_far, wait_for_line
from backends import HttpEchoBackend, TcpEchoBackend
from gateway_helpers import (DAY, NOW, Gateway, MiniPki, access_lines, client_context,
                             echo_roundtrip, free_port, gateway_flags, refused)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-tls")
    ca = MiniPki(d / "ca")
    other = MiniPki(d / "other", name="Other CA")
    e = {
        "dir": d, "ca": ca, "other": other,
        "server": ca.server(),
        "alice": ca.issue("alice", uris=["spiffe://example.org/alice"]),
        "bob": ca.issue("bob", ou="ops"),
        "expired": ca.issue("expired", not_before=NOW - 10 * DAY, not_after=NOW - DAY),
        "future": ca.issue("future", not_before=NOW + DAY, not_after=NOW + 10 * DAY),
        "server_eku": ca.issue("wrongeku", eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
        "mallory": other.issue("mallory"),
    }
    backend = TcpEchoBackend()
    port = free_port()
    log = d / "access.log"
    gw = Gateway(gateway_flags(ca, e["server"], port, backend.address,
                               extra=["--access-log", log]))
    e.update(backend=backend, port=port, gw=gw, log=log)
    yield e
    assert gw.stop() == 0, gw.output()
    backend.close()


def wait_entry(env, since, pred, timeout=5):
    """The first access-log entry after the first `since` ones that satisfies pred."""
    deadline = time.monotonic() + timeout
    while True:
        lines = access_lines(env["log"], n=0)[since:]
        hits = [e for e in lines if pred(e)]
        if hits:
            return hits[0]
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_valid_client_python(env, version):
    ctx = client_context(env["ca"], env["alice"], version)
    assert echo_roundtrip(env["port"], ctx, b"hello gateway\n") == b"hello gateway\n"


@pytest.mark.parametrize("who,reason", [
    ("expired", "expired"), ("future", "not-yet-valid"), ("mallory", "unknown-ca"),
    ("server_eku", "wrong-eku"), (None, "no-certificate")])
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_refused(env, who, reason, version):
    before = len(access_lines(env["log"], n=0))
    cert = env[who] if who else None
    assert refused(env["port"], client_context(env["ca"], cert, version))
    entry = wait_entry(env, before, lambda e: e["verdict"] != "allow")
    assert entry["verdict"] == "deny", entry
    assert entry["reason"] == reason, entry


def test_plain_words_in_log(env):
    assert refused(env["port"], client_context(env["ca"], env["expired"]))
    env["gw"].wait_line(r"refused: .*expired", timeout=5)


def openssl_client(port, ca, cert, extra=(), data="hi\n"):
    """s_client sends data and waits for the echo; returns everything it printed."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca.ca_path),
           "-servername", "localhost", "-verify_return_error", "-ign_eof"]
    if cert is not None:
        cmd += ["-cert", str(cert.cert_path), "-key", str(cert.key_path)]
    proc = subprocess.Popen(cmd + list(extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
        wait_for_line(proc, "^" + data.strip() + "$", timeout=15)
    finally:
        proc.kill()
        proc.wait(5)
    return output_so_far(proc)


@pytest.mark.parametrize("tls", ["-tls1_2", "-tls1_3"])
def test_openssl_resumption(env, tls, tmp_path):
    sess = tmp_path / "sess.pem"
    first = openssl_client(env["port"], env["ca"], env["alice"],
                           [tls, "-sess_out", str(sess)])
    assert "New, TLS" in first
    second = openssl_client(env["port"], env["ca"], env["alice"], [tls, "-sess_in", str(sess)])
    assert "Reused, TLS" in second, second[-2000:]
    deadline = time.monotonic() + 5
    while True:
        resumed = [e for e in access_lines(env["log"], n=0) if e.get("resumed")]
        if resumed or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert resumed and resumed[-1]["verdict"] == "allow", resumed
    assert resumed[-1]["subject"] == "CN=alice"


def test_access_log_fields(env):
    before = len(access_lines(env["log"], n=0))
    echo_roundtrip(env["port"], client_context(env["ca"], env["alice"]), b"12345")
    entry = wait_entry(env, before, lambda e: e.get("bytes_in") == 5)
    for key in ("time", "service", "client", "tls_version", "cipher", "resumed", "subject",
                "serial", "sha256", "verdict", "reason", "bytes_in", "bytes_out",
                "duration_ms"):
        assert key in entry, (key, entry)
    assert entry["bytes_in"] == 5 and entry["bytes_out"] == 5
    assert entry["sha256"] == __import__("hashlib").sha256(env["alice"].der).hexdigest()
    assert int(entry["serial"], 16) == env["alice"].serial
    assert entry["sni"] == "localhost"


def test_gnutls_cli(env):
    if subprocess.run(["which", "gnutls-cli"], capture_output=True).returncode != 0:
        pytest.skip("gnutls-cli not installed")
    p = subprocess.run(
        ["gnutls-cli", "--x509cafile", str(env["ca"].ca_path), "--x509certfile",
         str(env["alice"].cert_path), "--x509keyfile", str(env["alice"].key_path),
         "-p", str(env["port"]), "localhost"],
        input=b"gnutls says hi\n", capture_output=True, timeout=20)
    assert b"gnutls says hi" in p.stdout, p.stderr.decode()[-2000:]


def test_curl_through_tcp_mode(env, tmp_path):
    http = HttpEchoBackend()
    port = free_port()
    gw = Gateway(gateway_flags(env["ca"], env["server"], port, http.address))
    try:
        p = subprocess.run(
            ["curl", "-sS", "--cacert", str(env["ca"].ca_path), "--cert",
             str(env["alice"].cert_path), "--key", str(env["alice"].key_path),
             f"https://localhost:{port}/hello", "--resolve", f"localhost:{port}:127.0.0.1"],
            capture_output=True, timeout=20)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["path"] == "/hello"
        q = subprocess.run(
            ["curl", "-sS", "--cacert", str(env["ca"].ca_path),
             f"https://localhost:{port}/hello", "--resolve", f"localhost:{port}:127.0.0.1"],
            capture_output=True, timeout=20)
        assert q.returncode != 0
    finally:
        assert gw.stop() == 0
        http.close()


@pytest.mark.parametrize("rules,allowed,denied", [
    (["cn:alice"], "alice", "bob"),
    (["ou:ops"], "bob", "alice"),
    (["uri:spiffe://example.org/*"], "alice", "bob"),
])
def test_policy(env, rules, allowed, denied):
    port = free_port()
    extra = []
    for r in rules:
        extra += ["--allow", r]
    log = env["dir"] / f"policy-{port}.log"
    gw = Gateway(gateway_flags(env["ca"], env["server"], port, env["backend"].address,
                               extra=extra + ["--access-log", log]))
    try:
        assert echo_roundtrip(port, client_context(env["ca"], env[allowed])) == b"ping\n"
        assert refused(port, client_context(env["ca"], env[denied]))
        entries = access_lines(log, n=2)
        assert entries[1]["reason"] == "policy", entries
        gw.wait_line(r"refused.*(policy|allow)", timeout=5)
    finally:
        assert gw.stop() == 0


def test_check_explains(env):
    p = subprocess.run([__import__("twoway_testlib").twoway_bin(), "gateway", "--check"] +
                       [str(a) for a in gateway_flags(env["ca"], env["server"], free_port(),
                                                      "127.0.0.1:9")],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout


def test_bad_flag_is_usage_error():
    p = subprocess.run([__import__("twoway_testlib").twoway_bin(), "gateway", "--listen",
                        "127.0.0.1:99999"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 2, p.stderr


def test_protocol_mismatch_in_plain_words(env):
    port = free_port()
    log = env["dir"] / f"proto-{port}.log"
    gw = Gateway(gateway_flags(env["ca"], env["server"], port, env["backend"].address,
                               extra=["--tls-min", "1.3", "--access-log", log]))
    try:
        ctx = client_context(env["ca"], env["alice"], ssl.TLSVersion.TLSv1_2)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            echo_roundtrip(port, ctx)
        entries = access_lines(log, n=1)
        assert entries and entries[0]["reason"] == "protocol", entries
        gw.wait_line(r"refused: .*(version|protocol)", timeout=5)
        ctx13 = client_context(env["ca"], env["alice"], ssl.TLSVersion.TLSv1_3)
        assert echo_roundtrip(port, ctx13) == b"ping\n"
    finally:
        assert gw.stop() == 0


def test_unix_socket_backend(env, tmp_path):
    import socket
    import threading
    path = str(tmp_path / "echo.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    c.sendall(d)

    threading.Thread(target=serve, daemon=True).start()
    port = free_port()
    gw = Gateway(gateway_flags(env["ca"], env["server"], port, f"unix:{path}"))
    try:
        ctx = client_context(env["ca"], env["alice"])
        assert echo_roundtrip(port, ctx, b"over a unix socket\n") == b"over a unix socket\n"
    finally:
        assert gw.stop() == 0, gw.output()
        srv.close()
