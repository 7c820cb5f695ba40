"""`twoway tunnel`: plaintext in, two-way TLS out, on the gateway engine. A plaintext client
goes through the tunnel to `twoway gateway` and reaches the backend with its identity; a target
with a wrong name or an untrusted chain is refused; a rotated certificate on disk is used
without a restart; [tunnel NAME] sections share the gateway's INI file."""

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from backends import HttpEchoBackend, TcpEchoBackend, header_values
from gateway_helpers import Gateway, access_lines
from twoway_testlib import Pki, free_port, run, twoway_bin, wait_for_line, output_so_far


class Tunnel:
    """`twoway tunnel ARGS` until stopped; ready once its readiness line is printed."""

    def __init__(self, args, ready_timeout=20):
        self.proc = subprocess.Popen([twoway_bin(), "tunnel"] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        try:
            self.ready = wait_for_line(self.proc, r"twoway tunnel: ready", ready_timeout)
        except Exception:
            self.kill()
            raise

    def wait_line(self, pattern, timeout=10):
        return wait_for_line(self.proc, pattern, timeout)

    def output(self):
        return output_so_far(self.proc)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is not None:
            self.kill()
            return
        # A clean drain exits 0 (and, under ASan/LSan, proves nothing leaked).
        rc = self.stop()
        assert rc == 0, f"tunnel exited {rc}:\n{self.output()}"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("tunnel")
    pki = Pki(d / "main")
    other = Pki(d / "other", name="Other CA")
    e = {"d": d, "pki": pki, "other": other,
         "server": pki.issue_server("localhost", san="ip:127.0.0.1"),
         "alice": pki.issue_client("alice"),
         "bob": pki.issue_client("bob", out=d / "bob"),
         "other_server": other.issue_server("localhost", san="ip:127.0.0.1")}
    e["http"] = HttpEchoBackend()
    yield e
    e["http"].close()


def gateway(env, server=None, mode="http", backend=None, extra=()):
    port = free_port()
    s = server or env["server"]
    be = backend or env["http"]
    g = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{be.port}",
                 "--mode", mode, "--cert", s.chain, "--key", s.key, "--client-ca",
                 env["pki"].chain, "--workers", "1"] + list(extra))
    g.port = port
    return g


def tunnel_flags(env, target_port, client=None, ca=None, extra=()):
    c = client or env["alice"]
    listen = free_port()
    return listen, ["--listen", f"127.0.0.1:{listen}", "--target", f"127.0.0.1:{target_port}",
                    "--cert", c.chain, "--key", c.key, "--ca", ca or env["pki"].chain,
                    "--workers", "1", "--access-log", "off"] + list(extra)


def http_get(port, path="/", timeout=10):
    """One plaintext HTTP/1.1 request through the tunnel; (status line, JSON body or None)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].decode()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def client_cert_cn(resp):
    """The CN in the Client-Cert header (RFC 9440) the gateway forwarded."""
    from cryptography import x509
    import base64
    vals = header_values(resp, "Client-Cert")
    assert vals, resp
    der = base64.b64decode(vals[0].strip(":"))
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.rfc4514_string(), cert.serial_number


def test_plaintext_client_reaches_backend_with_identity(env):
    g = gateway(env)
    listen, args = tunnel_flags(env, g.port)
    try:
        with Tunnel(args) as t:
            assert re.search(r"twoway tunnel: default: 127\.0\.0\.1:\d+ -> tls://127\.0\.0\.1:"
                             r"\d+ as CN=alice \(certificate valid until", t.output()), t.output()
            status, resp = http_get(listen)
            assert status.startswith("HTTP/1.1 200"), status
            assert client_cert_cn(resp)[0] == "CN=alice"
            # A raw byte stream works too (TCP mode, echo backend).
            with TcpEchoBackend() as echo:
                g2 = gateway(env, mode="tcp", backend=echo)
                l2, a2 = tunnel_flags(env, g2.port)
                try:
                    with Tunnel(a2):
                        with socket.create_connection(("127.0.0.1", l2), timeout=10) as s:
                            payload = os.urandom(200000)
                            s.sendall(payload)
                            s.shutdown(socket.SHUT_WR)
                            got = b""
                            while len(got) < len(payload):
                                chunk = s.recv(65536)
                                if not chunk:
                                    break
                                got += chunk
                            assert got == payload
                            # The half-close went all the way (TLS 1.3 close_notify to the
                            # gateway, FIN to the echo backend) and the close came back.
                            assert s.recv(1) == b""
                finally:
                    assert g2.stop() == 0, g2.output()
    finally:
        assert g.stop() == 0, g.output()


def refused_through(listen):
    """The tunnel closes a local connection whose target it refused: no bytes come back."""
    with socket.create_connection(("127.0.0.1", listen), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True


def test_wrong_server_name_refused(env):
    g = gateway(env)
    listen, args = tunnel_flags(env, g.port, extra=["--server-name", "wrong.example"])
    try:
        with Tunnel(args) as t:
            assert refused_through(listen)
            t.wait_line(r"backend certificate rejected: .*hostname mismatch")
    finally:
        assert g.stop() == 0, g.output()


def test_target_not_listening_is_named(env):
    """A target that refuses the TCP connect is reported with the system's reason, not as a
    connection the target closed."""
    dead = free_port()  # nothing listens there
    listen, args = tunnel_flags(env, dead, extra=["--server-name", "localhost"])
    with Tunnel(args) as t:
        assert refused_through(listen)
        line = t.wait_line(rf"backend tls://127\.0\.0\.1:{dead}: Connection refused")
        assert "before TLS was set up" not in line


def server_cert_ip_only(pki, out):
    """CN=localhost, but the only SAN is ip:127.0.0.1 (signed by the CA's intermediate)."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ikey = serialization.load_pem_private_key((pki.ca_dir / "intermediate.key").read_bytes(),
                                              None)
    icert = x509.load_pem_x509_certificate(pki.intermediate.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(icert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(ikey, hashes.SHA256()))
    out.mkdir(exist_ok=True)
    chain = out / "cn-only.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                      pki.intermediate.read_bytes())
    k = out / "cn-only.key"
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    os.chmod(k, 0o600)

    class Issued:
        pass
    i = Issued()
    i.chain, i.key = chain, k
    return i


def test_cn_is_not_a_name(env):
    """The target's certificate has CN=localhost but only ip:127.0.0.1 as SAN: asking for
    'localhost' fails (no CN fallback); asking for 127.0.0.1 works."""
    s = server_cert_ip_only(env["pki"], env["d"] / "cnonly")
    g = gateway(env, server=s)
    bad, bad_args = tunnel_flags(env, g.port, extra=["--server-name", "localhost"])
    good, good_args = tunnel_flags(env, g.port, extra=["--server-name", "127.0.0.1"])
    try:
        with Tunnel(bad_args) as t:
            assert refused_through(bad)
            t.wait_line(r"backend certificate rejected: .*hostname mismatch")
        with Tunnel(good_args):
            assert client_cert_cn(http_get(good)[1])[0] == "CN=alice"
    finally:
        assert g.stop() == 0, g.output()


def test_untrusted_chain_refused(env):
    g = gateway(env, server=env["other_server"])
    listen, args = tunnel_flags(env, g.port)
    try:
        with Tunnel(args) as t:
            assert refused_through(listen)
            t.wait_line(r"backend certificate rejected: .*(local issuer|self.signed|unable)")
    finally:
        assert g.stop() == 0, g.output()


def test_rotation_on_disk_without_restart(env):
    d = env["d"] / "rot"
    d.mkdir()
    cert, key = d / "client.pem", d / "client.key"
    shutil.copy(env["alice"].chain, cert)
    shutil.copy(env["alice"].key, key)
    os.chmod(key, 0o600)
    g = gateway(env)
    listen = free_port()
    args = ["--listen", f"127.0.0.1:{listen}", "--target", f"127.0.0.1:{g.port}", "--cert",
            cert, "--key", key, "--ca", env["pki"].chain, "--workers", "1",
            "--access-log", "off"]
    try:
        with Tunnel(args) as t:
            assert client_cert_cn(http_get(listen)[1])[0] == "CN=alice"
            # Rotate as renew would: new files renamed into place.
            bob = env["bob"]
            shutil.copy(bob.key, d / "new.key")
            os.chmod(d / "new.key", 0o600)
            shutil.copy(bob.chain, d / "new.pem")
            os.replace(d / "new.key", key)
            os.replace(d / "new.pem", cert)
            t.wait_line(r"generation 2 serving", timeout=15)
            assert client_cert_cn(http_get(listen)[1])[0] == "CN=bob"
            assert t.proc.poll() is None
    finally:
        assert g.stop() == 0, g.output()


def test_config_file_with_gateway_and_tunnels(env):
    """One INI file: the gateway reads its [service], the tunnel its [tunnel] sections."""
    d = env["d"] / "conf"
    d.mkdir()
    gport, l1, l2 = free_port(), free_port(), free_port()
    s, a, b, pki = env["server"], env["alice"], env["bob"], env["pki"]
    conf = d / "twoway.conf"
    conf.write_text(f"""
[global]
workers = 1
access-log = off
idle-timeout = 60

[service web]
listen = 127.0.0.1:{gport}
backend = 127.0.0.1:{env['http'].port}
cert = {s.chain}
key = {s.key}
client-ca = {pki.chain}

[tunnel as-alice]
listen = 127.0.0.1:{l1}      ; plaintext
target = 127.0.0.1:{gport}
cert = {a.chain}
key = {a.key}
ca = {pki.chain}

[tunnel as-bob]
listen = 127.0.0.1:{l2}
target = localhost:{gport}
server-name = 127.0.0.1
cert = {b.chain}
key = {b.key}
ca = {pki.chain}
""")
    r = run(["tunnel", "--check", conf])
    assert r.returncode == 0, r.stderr
    assert "tunnel as-alice" in r.stdout and "configuration OK" in r.stdout
    g = Gateway(["--config", conf])
    try:
        with Tunnel(["--config", conf]):
            assert client_cert_cn(http_get(l1)[1])[0] == "CN=alice"
            assert client_cert_cn(http_get(l2)[1])[0] == "CN=bob"
    finally:
        assert g.stop() == 0, g.output()


def test_config_errors(env, tmp_path):
    pki, a = env["pki"], env["alice"]
    cases = [
        ("[tunnel t]\nlisten = 127.0.0.1:1\n", r"\[tunnel t\]: target is required"),
        ("[tunnel t]\nlisten = nowhere\ntarget = h:1\n", r":2: \[tunnel t\] listen"),
        ("[tunnel t]\nbogus = 1\n", r":2: \[tunnel t\] bogus = \"1\": unknown key"),
        ("[service x]\nlisten = 1\n", r"no \[tunnel NAME\] section"),
        ("[tunnel t]\ntarget = unix:/x\n", r"the target is HOST:PORT"),
        ("[tunnel t]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n", r":3: .*set twice"),
        ("[tunnels]\n", r"unknown section"),
    ]
    for text, pattern in cases:
        f = tmp_path / "bad.conf"
        f.write_text(text)
        r = run(["tunnel", "--config", f])
        assert r.returncode == 1, (text, r.stderr)
        import re
        assert re.search(pattern, r.stderr), (text, r.stderr)
    # Flags: usage errors (exit 2), files checked by --check (exit 1).
    r = run(["tunnel", "--listen", "127.0.0.1:1", "--target", "127.0.0.1:2"])
    assert r.returncode == 2 and "--cert is required" in r.stderr, r.stderr
    r = run(["tunnel", "--listen", "127.0.0.1:1", "--target", "127.0.0.1:2", "--cert", a.chain,
             "--key", env["bob"].key, "--ca", pki.chain, "--check"])
    assert r.returncode == 1 and "does not match" in r.stderr, r.stderr
    r = run(["tunnel", "--nope", "x"])
    assert r.returncode == 2 and "unknown flag" in r.stderr, r.stderr


def test_target_down_and_access_log(env, tmp_path):
    log = tmp_path / "access.log"
    target = free_port()
    listen, args = tunnel_flags(env, target, extra=["--backend-connect-timeout", "2"])
    args = [x if x != "off" else str(log) for x in args]
    with Tunnel(args):
        assert refused_through(listen)
        lines = access_lines(log)
        assert lines and lines[0].get("verdict") in ("error", "allow"), lines
