"""Reloads: a CRL swapped at runtime revokes a client (new handshakes, resumed sessions and
live connections), SIGHUP and file changes both reload, a broken reload keeps the old
generation serving, and open connections survive a reload."""

import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from backends import TcpEchoBackend
from gateway_helpers import (Gateway, MiniPki, client_context, echo_roundtrip, fetch_metrics,
                             free_port, metric, recv_exact, refused, tls_connect)
from twoway_testlib import output_so_far, wait_for_line


@pytest.fixture
def setup(tmp_path):
    ca = MiniPki(tmp_path / "ca")
    e = {"dir": tmp_path, "ca": ca, "server": ca.server(), "alice": ca.issue("alice"),
         "bob": ca.issue("bob"), "crl": tmp_path / "ca.crl", "port": free_port(),
         "metrics": free_port()}
    ca.write_crl(e["crl"])
    e["backend"] = TcpEchoBackend()
    yield e
    e["backend"].close()


def replace(path, text):
    """Write atomically, as editors and config management do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_config(e, path, extra=""):
    replace(path, f"""
[global]
workers = 2
metrics = 127.0.0.1:{e['metrics']}
access-log = {e['dir'] / 'access.log'}

[service echo]
listen = 127.0.0.1:{e['port']}
backend = {e['backend'].address}
mode = tcp
cert = {e['server'].cert_path}
key = {e['server'].key_path}
client-ca = {e['ca'].ca_path}
crl = {e['crl']}
{extra}
""")


def start(e):
    cfg = e["dir"] / "twoway.conf"
    write_config(e, cfg)
    return Gateway(["--config", cfg]), cfg


def still_open(sock, payload=b"still here\n"):
    sock.sendall(payload)
    return recv_exact(sock, len(payload)) == payload


def closed_within(sock, seconds):
    """True when the gateway closes sock within seconds (EOF or reset on read)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if sock.recv(1) == b"":
                return True
        except (ssl.SSLError, ConnectionError):
            return True
        except (TimeoutError, ssl.SSLWantReadError, OSError):
            continue
    return False


def test_crl_swap_revokes_live_and_new_connections(setup):
    e = setup
    gw, _ = start(e)
    try:
        alice = client_context(e["ca"], e["alice"])
        live = tls_connect(e["port"], alice)
        assert still_open(live)
        bob_live = tls_connect(e["port"], client_context(e["ca"], e["bob"]))
        assert still_open(bob_live)

        t0 = time.monotonic()
        e["ca"].write_crl(e["crl"], [e["alice"].serial])
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        # The watcher polls each second; after the swap the sweep closes at once.
        assert closed_within(live, 3), gw.output()
        assert time.monotonic() - t0 < 3.5
        assert refused(e["port"], alice)
        assert echo_roundtrip(e["port"], client_context(e["ca"], e["bob"])) == b"ping\n"
        assert still_open(bob_live)  # bob's live connection is untouched
        text = fetch_metrics(e["metrics"])
        assert metric(text, "twoway_revoked_closed_total") == 1
        assert metric(text, "twoway_handshakes_total", {"reason": "revoked"}) >= 1
        crl_fresh = metric(text, "twoway_crl_next_update_seconds", {"service": "echo"})
        assert 6 * 86400 < crl_fresh <= 7 * 86400
        live.close()
        bob_live.close()
    finally:
        assert gw.stop() == 0, gw.output()


def s_client(port, ca, cert, extra):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca.ca_path),
           "-servername", "localhost", "-cert", str(cert.cert_path), "-key",
           str(cert.key_path), "-ign_eof"] + extra
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        proc.stdin.write("echo-me\n")
        proc.stdin.flush()
        try:
            wait_for_line(proc, r"^echo-me$", timeout=5)
            echoed = True
        except (TimeoutError, RuntimeError):
            echoed = False
    finally:
        proc.kill()
        proc.wait(5)
    return echoed, output_so_far(proc)


@pytest.mark.parametrize("tls", ["-tls1_2", "-tls1_3"])
def test_resumed_session_after_revocation_rejected(setup, tls):
    e = setup
    gw, _ = start(e)
    try:
        sess = e["dir"] / "sess.pem"
        ok, out = s_client(e["port"], e["ca"], e["alice"], [tls, "-sess_out", str(sess)])
        assert ok, out
        ok, out = s_client(e["port"], e["ca"], e["alice"], [tls, "-sess_in", str(sess)])
        assert ok and "Reused" in out, out
        e["ca"].write_crl(e["crl"], [e["alice"].serial])
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        ok, out = s_client(e["port"], e["ca"], e["alice"], [tls, "-sess_in", str(sess)])
        assert not ok, out
    finally:
        assert gw.stop() == 0, gw.output()


def test_sighup_reload_keeps_open_connection(setup):
    e = setup
    gw, _ = start(e)
    try:
        live = tls_connect(e["port"], client_context(e["ca"], e["alice"]))
        assert still_open(live)
        gw.signal(signal.SIGHUP)
        gw.wait_line(r"reload \(SIGHUP\)", timeout=5)
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        assert still_open(live)
        assert echo_roundtrip(e["port"], client_context(e["ca"], e["bob"])) == b"ping\n"
        assert metric(fetch_metrics(e["metrics"]), "twoway_reloads_total",
                      {"result": "ok"}) == 1
        live.close()
    finally:
        assert gw.stop() == 0, gw.output()


def test_file_change_reloads(setup):
    e = setup
    gw, _ = start(e)
    try:
        st = os.stat(e["server"].cert_path)
        os.utime(e["server"].cert_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        gw.wait_line(r"reload \(.*localhost\.crt changed\)", timeout=5)
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        assert echo_roundtrip(e["port"], client_context(e["ca"], e["alice"])) == b"ping\n"
    finally:
        assert gw.stop() == 0, gw.output()


def test_bad_reload_rejected_old_config_serves(setup):
    e = setup
    gw, cfg = start(e)
    try:
        live = tls_connect(e["port"], client_context(e["ca"], e["alice"]))
        assert still_open(live)
        # A CRL that does not parse: the new generation cannot be built.
        replace(e["crl"], "-----BEGIN X509 CRL-----\nnot base64\n-----END X509 CRL-----\n")
        gw.wait_line(r"reload failed, still serving generation 1", timeout=5)
        assert still_open(live)
        assert echo_roundtrip(e["port"], client_context(e["ca"], e["bob"])) == b"ping\n"
        # A config with an unknown key, by SIGHUP.
        write_config(e, cfg, extra="no-such-key = 1")
        gw.signal(signal.SIGHUP)
        gw.wait_line(r"reload failed, still serving generation 1: .*no-such-key", timeout=5)
        assert echo_roundtrip(e["port"], client_context(e["ca"], e["bob"])) == b"ping\n"
        assert metric(fetch_metrics(e["metrics"]), "twoway_reloads_total",
                      {"result": "failed"}) >= 2
        # Fixed again: the next change is picked up.
        e["ca"].write_crl(e["crl"])
        write_config(e, cfg)
        gw.wait_line(r"reload: generation \d+ serving", timeout=5)
        assert still_open(live)
        live.close()
    finally:
        assert gw.stop() == 0, gw.output()


def test_reload_adds_and_removes_listen_addresses(setup):
    e = setup
    gw, cfg = start(e)
    try:
        alice = client_context(e["ca"], e["alice"])
        live = tls_connect(e["port"], alice)
        assert still_open(live)
        port_b = free_port()
        second = f"""
[service two]
listen = 127.0.0.1:{port_b}
backend = {e['backend'].address}
mode = tcp
cert = {e['server'].cert_path}
key = {e['server'].key_path}
client-ca = {e['ca'].ca_path}
"""
        write_config(e, cfg, extra=second)
        gw.wait_line(rf"now listening on 127.0.0.1:{port_b}", timeout=5)
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        # Workers open the new listener as they take the generation: retry briefly.
        deadline = time.monotonic() + 5
        while True:
            try:
                assert echo_roundtrip(port_b, alice) == b"ping\n"
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert still_open(live)

        # Drop the first service: its address closes, the second keeps serving.
        replace(cfg, cfg.read_text().split("[service echo]")[0] + second)
        gw.wait_line(rf"no longer listening on 127.0.0.1:{e['port']}", timeout=5)
        gw.wait_line(r"reload: generation 3 serving", timeout=5)
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", e["port"]), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert echo_roundtrip(port_b, alice) == b"ping\n"
        assert still_open(live)  # accepted under generation 1: keeps its configuration
        live.close()
    finally:
        assert gw.stop() == 0, gw.output()


def test_reload_onto_a_busy_address_is_refused(setup):
    e = setup
    gw, cfg = start(e)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        taken = busy.getsockname()[1]
        write_config(e, cfg, extra=f"""
[service two]
listen = 127.0.0.1:{taken}
backend = {e['backend'].address}
mode = tcp
cert = {e['server'].cert_path}
key = {e['server'].key_path}
client-ca = {e['ca'].ca_path}
""")
        gw.wait_line(rf"reload failed, still serving generation 1: cannot listen on "
                     rf"127.0.0.1:{taken}", timeout=5)
        assert echo_roundtrip(e["port"], client_context(e["ca"], e["alice"])) == b"ping\n"
    finally:
        busy.close()
        assert gw.stop() == 0, gw.output()


def test_sessions_resume_across_a_reload(setup):
    e = setup
    gw, _ = start(e)
    try:
        sess = e["dir"] / "sess.pem"
        ok, out = s_client(e["port"], e["ca"], e["alice"], ["-tls1_3", "-sess_out", str(sess)])
        assert ok, out
        gw.signal(signal.SIGHUP)
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        ok, out = s_client(e["port"], e["ca"], e["alice"], ["-tls1_3", "-sess_in", str(sess)])
        assert ok and "Reused" in out, out
    finally:
        assert gw.stop() == 0, gw.output()


def test_sighup_reopens_the_access_log_after_rotation(setup):
    e = setup
    gw, _ = start(e)
    log = e["dir"] / "access.log"
    try:
        alice = client_context(e["ca"], e["alice"])
        assert echo_roundtrip(e["port"], alice, b"one") == b"one"
        deadline = time.monotonic() + 5
        while not (log.exists() and log.read_text().strip()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        rotated = e["dir"] / "access.log.1"
        os.rename(log, rotated)
        gw.signal(signal.SIGHUP)
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        deadline = time.monotonic() + 5
        while not log.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert echo_roundtrip(e["port"], alice, b"two") == b"two"
        deadline = time.monotonic() + 5
        while '"bytes_in":3' not in log.read_text():
            assert time.monotonic() < deadline, (log.read_text(), rotated.read_text())
            time.sleep(0.05)
        assert len(rotated.read_text().splitlines()) == 1
    finally:
        assert gw.stop() == 0, gw.output()


def test_crl_revoking_the_intermediate_cuts_its_clients(tmp_path):
    root = MiniPki(tmp_path / "root", name="Root CA")
    inter = MiniPki(tmp_path / "inter", name="Issuing CA", parent=root)
    bundle = tmp_path / "client-ca.pem"
    bundle.write_bytes(root.ca_path.read_bytes() + inter.ca_path.read_bytes())
    root_crl, inter_crl = tmp_path / "root.crl", tmp_path / "inter.crl"
    root.write_crl(root_crl)
    inter.write_crl(inter_crl)
    server = root.server()
    alice = inter.issue("alice")
    backend = TcpEchoBackend()
    port = free_port()
    gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", backend.address, "--mode",
                  "tcp", "--cert", server.cert_path, "--key", server.key_path, "--client-ca",
                  bundle, "--crl", root_crl, "--crl", inter_crl])
    try:
        ctx = client_context(root, alice)
        live = tls_connect(port, ctx)
        assert still_open(live)
        root.write_crl(root_crl, [inter.serial])
        gw.wait_line(r"reload: generation 2 serving", timeout=5)
        assert closed_within(live, 3), gw.output()
        assert refused(port, ctx)
        live.close()
    finally:
        assert gw.stop() == 0, gw.output()
        backend.close()
