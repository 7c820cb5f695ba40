"""Gateways side by side (issue 7): several `twoway gateway` instances sharing one
ticket-key-file behave as one for session resumption: a session from one resumes on the other,
and a rotated file (new key first, the previous one kept second) still resumes sessions made
with the previous key. Real peer: openssl s_client -sess_out / -sess_in."""

import os
import subprocess

import pytest

from backends import TcpEchoBackend
from gateway_helpers import Gateway, MiniPki, free_port, gateway_flags
from twoway_testlib import output_so_far, wait_for_line


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("gw-tickets")
    ca = MiniPki(d / "ca")
    e = {"dir": d, "ca": ca, "server": ca.server(), "alice": ca.issue("alice"),
         "backend": TcpEchoBackend()}
    yield e
    e["backend"].close()


def key_file(path, *keys):
    path.write_bytes(b"".join(keys))
    os.chmod(path, 0o600)
    return path


def gateway(env, keys):
    port = free_port()
    gw = Gateway(gateway_flags(env["ca"], env["server"], port, env["backend"].address,
                               extra=["--ticket-key-file", str(keys)]))
    return gw, port


def openssl_client(port, ca, cert, extra=(), data="hi\n"):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca.ca_path),
           "-servername", "localhost", "-verify_return_error", "-ign_eof",
           "-cert", str(cert.cert_path), "-key", str(cert.key_path), *extra]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
def test_session_from_one_gateway_resumes_on_the_other(env, tls, tmp_path):
    keys = key_file(tmp_path / "tickets.key", os.urandom(80), os.urandom(80))
    sess = tmp_path / "sess.pem"
    a, port_a = gateway(env, keys)
    b, port_b = gateway(env, keys)
    try:
        first = openssl_client(port_a, env["ca"], env["alice"], [tls, "-sess_out", str(sess)])
        assert "New, TLS" in first
        second = openssl_client(port_b, env["ca"], env["alice"], [tls, "-sess_in", str(sess)])
        assert "Reused, TLS" in second, second[-2000:]
    finally:
        assert a.stop() == 0, a.output()
        assert b.stop() == 0, b.output()


def test_rotated_key_file_keeps_resumption(env, tmp_path):
    old, new = os.urandom(80), os.urandom(80)
    sess = tmp_path / "sess.pem"
    a, port_a = gateway(env, key_file(tmp_path / "old.key", old))
    try:
        first = openssl_client(port_a, env["ca"], env["alice"], ["-tls1_3", "-sess_out", str(sess)])
        assert "New, TLS" in first
    finally:
        assert a.stop() == 0, a.output()
    # After rotation: the new key encrypts, the previous one still decrypts.
    b, port_b = gateway(env, key_file(tmp_path / "rotated.key", new, old))
    # A gateway that never had the old key cannot resume it: a full handshake.
    c, port_c = gateway(env, key_file(tmp_path / "other.key", new))
    try:
        again = openssl_client(port_b, env["ca"], env["alice"], ["-tls1_3", "-sess_in", str(sess)])
        assert "Reused, TLS" in again, again[-2000:]
        fresh = openssl_client(port_c, env["ca"], env["alice"], ["-tls1_3", "-sess_in", str(sess)])
        assert "New, TLS" in fresh, fresh[-2000:]
    finally:
        assert b.stop() == 0, b.output()
        assert c.stop() == 0, c.output()
