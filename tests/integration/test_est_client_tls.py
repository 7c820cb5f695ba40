"""The EST client's failures against servers that are not a good `ca serve`, in plain words on
one line: a server certificate for another name, a server that refuses our client certificate
(TLS 1.2 in the handshake, TLS 1.3 after it), a peer that does not speak TLS, and an answer
larger than the client accepts (with and without Content-Length). Peers: `openssl s_server`
and Python's ssl."""

import socket
import ssl
import subprocess
import threading

import pytest

from twoway_testlib import Pki, free_port, run, stop, wait_for_line

BIG = 5 * 1024 * 1024  # more than EST_RESPONSE_MAX (4 MiB)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("other"), name="Other CA")


def s_server(pki, issued, *extra):
    port = free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", issued.cert, "-key",
         issued.key, "-cert_chain", pki.intermediate, "-www", "-naccept", "4", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_line(proc, r"^ACCEPT", timeout=10)
    return proc, f"https://127.0.0.1:{port}"


def enroll(url, ca, out):
    return run(["enroll", url, "--name", "dev", "--token", "t0k3n", "--ca", ca, "--out", out])


def one_line_failure(r):
    assert r.returncode == 1 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1, r.stderr


def test_server_certificate_for_another_name(pki, tmp_path):
    issued = pki.issue_server("elsewhere.example", san="dns:elsewhere.example",
                              out=tmp_path / "srv")
    proc, url = s_server(pki, issued)
    try:
        r = enroll(url, pki.root, tmp_path / "o")
    finally:
        stop(proc)
    one_line_failure(r)
    assert f"TLS handshake with {url} failed" in r.stderr
    assert "name" in r.stderr and "IP address mismatch" in r.stderr, r.stderr


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_server_refusing_our_client_certificate(pki, other, tmp_path, version):
    """renew presents its certificate; a server trusting only another CA refuses it with an
    alert, which the client names (TLS 1.3 sends it after the client's Finished)."""
    issued = pki.issue_server(out=tmp_path / "srv")
    client = pki.issue_client("dev", out=tmp_path / "dev", days="2h")
    proc, url = s_server(pki, issued, "-Verify", "1", "-verify_return_error",
                          "-CAfile", other.root, version)
    try:
        r = run(["renew", "--cert", client.cert, "--key", client.key, "--server", url,
                 "--ca", pki.root])
    finally:
        stop(proc)
    one_line_failure(r)
    assert f"TLS handshake with {url} failed" in r.stderr
    assert "the server sent alert: unknown CA" in r.stderr, r.stderr


def serve_once(handler):
    """A loopback listener running handler(conn) for one connection in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sock.settimeout(20)

    def run_it():
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        try:
            handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    t = threading.Thread(target=run_it, daemon=True)
    t.start()
    return sock, t, f"https://127.0.0.1:{sock.getsockname()[1]}"


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_peer_that_does_not_speak_tls(pki, tmp_path):
    def plain_http(conn):
        conn.recv(4096)  # the ClientHello, taken for a request
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    sock, t, url = serve_once(plain_http)
    try:
        r = enroll(url, pki.root, tmp_path / "o")
    finally:
        t.join(timeout=10)
        sock.close()
    one_line_failure(r)
    assert f"TLS handshake with {url} failed: the peer does not speak TLS" in r.stderr, r.stderr


@pytest.mark.parametrize("with_length", [True, False])
def test_answer_larger_than_the_limit(pki, tmp_path, with_length):
    issued = pki.issue_server(out=tmp_path / "srv")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(issued.chain), str(issued.key))

    def huge(conn):
        with ctx.wrap_socket(conn, server_side=True) as tls:
            read_head(tls)
            head = "HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\n"
            head += f"Content-Length: {BIG}\r\n" if with_length else "Connection: close\r\n"
            tls.sendall((head + "\r\n").encode())
            chunk = b"A" * 65536
            for _ in range(BIG // len(chunk)):
                tls.sendall(chunk)

    sock, t, url = serve_once(huge)
    try:
        r = enroll(url, pki.root, tmp_path / "o")
    finally:
        t.join(timeout=20)
        sock.close()
    one_line_failure(r)
    assert f"{url}: answer larger than 4194304 bytes" in r.stderr, r.stderr
