"""`twoway renew --daemon`: rotates a short-lived certificate at about two thirds of its life,
retries with backoff while the CA is down, and stops with a clear message once the certificate
has expired (it then needs a new token)."""

import subprocess
import time

import pytest

from backends import TcpEchoBackend
from est_helpers import CaServer, context
from gateway_helpers import Gateway, echo_roundtrip, free_port, recv_exact, tls_connect
from twoway_testlib import Pki, output_so_far, run_cmd, stop, twoway_bin, wait_for_line
from x509_checks import load_cert, openssl_verify


def start_daemon(got, url, *extra):
    return subprocess.Popen(
        [twoway_bin(), "renew", "--daemon", "--cert", str(got.cert), "--key", str(got.key),
         "--server", url, "--retry-max", "2s", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def issue(pki, tmp_path, name, days):
    got = pki.issue_client(name, out=tmp_path, days=days)
    (tmp_path / "ca.pem").write_bytes(pki.root.read_bytes())
    return got


def test_daemon_rotates_a_short_lived_certificate(tmp_path):
    """Two rotations of a 12-second certificate while a gateway (client-ca = the CA chain)
    keeps accepting the client with each new certificate, and a connection opened with the
    first one stays up."""
    pki = Pki(tmp_path / "pki")
    got = issue(pki, tmp_path, "alice", "12s")
    web = pki.issue_server("localhost", san="ip:127.0.0.1", out=tmp_path / "web")
    serials = {load_cert(got.cert).serial_number}
    backend = TcpEchoBackend()
    port = free_port()
    gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode", "tcp",
                  "--cert", web.chain, "--key", web.key, "--client-ca", pki.chain])
    live = tls_connect(port, context(pki.chain, got.cert, got.key))
    with CaServer(pki) as srv:
        d = start_daemon(got, srv.url, "--rekey", "--exec", f"echo rotated >> {tmp_path}/log")
        try:
            line = wait_for_line(d, r"next renewal at .* \(in (\d+) s\)", timeout=10)
            assert 5 <= int(line.rsplit("(in ", 1)[1].split()[0]) <= 9, line
            for _ in range(2):
                wait_for_line(d, r"renewed: serial", timeout=20)
                time.sleep(0.2)  # the swap is done before the line; let --exec finish too
                serials.add(load_cert(got.cert).serial_number)
                assert openssl_verify(got.cert, pki.root, pki.intermediate).returncode == 0
                mod = run_cmd(["openssl", "x509", "-in", got.cert, "-noout", "-pubkey"]).stdout
                assert mod == run_cmd(["openssl", "pkey", "-in", got.key, "-pubout"]).stdout
                ctx = context(pki.chain, got.cert, got.key)
                assert echo_roundtrip(port, ctx, server_hostname="127.0.0.1") == b"ping\n"
            live.sendall(b"still here\n")
            assert recv_exact(live, 11) == b"still here\n"
        finally:
            stop(d)
            live.close()
            gw.stop()
            backend.close()
    assert len(serials) == 3, output_so_far(d)
    assert (tmp_path / "log").read_text().count("rotated") >= 2
    assert d.returncode == 0  # SIGTERM: a clean stop


def test_daemon_retries_while_the_ca_is_down(tmp_path):
    pki = Pki(tmp_path / "pki")
    got = issue(pki, tmp_path, "bob", "24s")
    first = load_cert(got.cert).serial_number
    srv = CaServer(pki)
    port = srv.port
    srv.stop()
    d = start_daemon(got, f"https://127.0.0.1:{port}")
    try:
        wait_for_line(d, r"renewal failed: .*cannot connect.*retrying in \d+ s", timeout=25)
        wait_for_line(d, r"renewal failed: .*retrying in", timeout=5)
        with CaServer(pki, listen=f"127.0.0.1:{port}"):
            wait_for_line(d, r"renewed: serial", timeout=10)
    finally:
        stop(d)
    assert load_cert(got.cert).serial_number != first


def test_daemon_says_an_expired_certificate_needs_a_new_token(tmp_path):
    pki = Pki(tmp_path / "pki")
    got = issue(pki, tmp_path, "carol", "1s")
    time.sleep(1.5)
    d = start_daemon(got, "https://127.0.0.1:9")
    try:
        d.wait(timeout=15)
    finally:
        stop(d)
    out = output_so_far(d) + d.stdout.read()
    assert d.returncode == 1
    assert "expired" in out and "needs a new token" in out and "twoway enroll" in out
