"""A revocation from the CA's feed is applied by the revocation reload (a generation derived
from the serving one: only the CRL sets and the SSL_CTXs holding them are built again), with the
same effect as a full reload.

For both trust layouts users have (client-ca holding only the root while clients send their
intermediate, and client-ca holding the whole chain): after `ca revoke alice`, alice's live
connections (Python ssl and openssl s_client) are cut, her new handshakes and her resumed
session are refused, while bob's live connections (both peers) carry on untouched and bob
still resumes his session. The gateway says it built a revocation generation, not that it fell
back to rebuilding everything. A SIGHUP afterwards still rebuilds the whole configuration from
the files, and the revocation stays in force."""

import signal
import ssl
import subprocess

import pytest

from backends import TcpEchoBackend
from est_helpers import CaServer
from gateway_helpers import ctx_for
from gateway_helpers import (Gateway, closed_by_peer, free_port, recv_exact, refused,
                             s_client_output, tls_connect)
from twoway_testlib import Pki, wait_for_line


def live_python(port, ctx):
    s = tls_connect(port, ctx)
    s.sendall(b"a")
    assert recv_exact(s, 1) == b"a"
    return s


def still_echoes(sock):
    sock.settimeout(10)
    sock.sendall(b"b")
    return recv_exact(sock, 1) == b"b"


def live_s_client(port, pki, issued):
    """openssl s_client holding a connection open; returns the process once its echo came."""
    proc = subprocess.Popen(["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port}",
                             "-CAfile", str(pki.root), "-cert", str(issued.cert), "-key",
                             str(issued.key), "-cert_chain", str(issued.chain)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    proc.stdin.write("hello\n")
    proc.stdin.flush()
    wait_for_line(proc, r"^hello$", timeout=15)
    return proc


def session_of(port, ctx):
    """A session to resume later (TLS 1.3 tickets arrive after the handshake: read first)."""
    s = live_python(port, ctx)
    sess = s.session
    s.close()
    return sess


def resumes(port, ctx, sess):
    with tls_connect(port, ctx, session=sess) as s:
        s.sendall(b"r")
        s.settimeout(10)
        return recv_exact(s, 1) == b"r" and s.session_reused


def resumed_refused(port, ctx, sess):
    try:
        with tls_connect(port, ctx, session=sess) as s:
            s.sendall(b"r")
            s.settimeout(10)
            return s.recv(1) == b""
    except (ssl.SSLError, ConnectionError, OSError):
        return True


@pytest.fixture(params=["root-only", "full-chain"])
def env(request, tmp_path):
    ca_port = free_port()
    pki = Pki(tmp_path, base_url=f"https://127.0.0.1:{ca_port}")
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    client_ca = pki.root if request.param == "root-only" else pki.chain
    e = {"pki": pki, "alice": pki.issue_client("alice"), "bob": pki.issue_client("bob"),
         "ca": CaServer(pki, listen=f"127.0.0.1:{ca_port}"), "backend": TcpEchoBackend(),
         "port": free_port(), "procs": []}
    # crl-refresh of an hour: only the feed can bring the revocation within the test.
    e["gw"] = Gateway(["--listen", f"127.0.0.1:{e['port']}", "--backend", e["backend"].address,
                       "--mode", "tcp", "--cert", server.chain, "--key", server.key,
                       "--client-ca", client_ca, "--crl", f"{e['ca'].url}/crl",
                       "--crl-refresh", "1h", "--workers", "2", "--log-level", "info"])
    e["gw"].wait_line(r"revocation feed \S+: following", timeout=20)
    yield e
    for p in e["procs"]:
        if p.poll() is None:
            p.kill()
        p.wait(5)
    rc = e["gw"].stop()
    out = e["gw"].output()
    assert rc == 0, out
    assert "Sanitizer" not in out and "runtime error:" not in out, out
    e["ca"].stop()
    e["backend"].close()


def test_fed_revocation_swaps_crls_only(env):
    pki, port, gw = env["pki"], env["port"], env["gw"]
    actx, bctx = ctx_for(pki, env["alice"]), ctx_for(pki, env["bob"])
    a_sess, b_sess = session_of(port, actx), session_of(port, bctx)
    assert resumes(port, actx, a_sess), gw.output()
    a_live, b_live = live_python(port, actx), live_python(port, bctx)
    a_proc = live_s_client(port, pki, env["alice"])
    b_proc = live_s_client(port, pki, env["bob"])
    env["procs"] += [a_proc, b_proc]

    pki.revoke("alice", reason="keyCompromise")

    assert closed_by_peer(a_live, 15), gw.output()
    a_proc.wait(15)  # s_client ends when the gateway closes its connection
    gw.wait_line(r"reload \(revocation feed for crl \S+: a new CRL\): building a new "
                 r"revocation generation", timeout=10)
    assert "rebuilding everything" not in gw.output(), gw.output()
    # bob's connections were not touched, over either peer.
    assert still_echoes(b_live), gw.output()
    b_proc.stdin.write("again\n")
    b_proc.stdin.flush()
    wait_for_line(b_proc, r"^again$", timeout=10)
    assert b_proc.poll() is None
    # alice: new handshakes (both peers) and her resumed session are refused; bob resumes.
    assert refused(port, actx), gw.output()
    out = s_client_output(["-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.root), "-cert",
                           str(env["alice"].cert), "-key", str(env["alice"].key), "-cert_chain",
                           str(env["alice"].chain)])
    assert "\nhi\n" not in out, out
    assert resumed_refused(port, actx, a_sess), gw.output()
    assert resumes(port, bctx, b_sess), gw.output()

    # A full reload after the derived generation reads every file again; alice stays out.
    gw.signal(signal.SIGHUP)
    gw.wait_line(r"reload \(SIGHUP\): building a new configuration generation", timeout=10)
    gw.wait_line(r"reload: generation \d+ serving", timeout=10)
    assert refused(port, actx), gw.output()
    assert still_echoes(b_live), gw.output()
    a_live.close()
    b_live.close()
