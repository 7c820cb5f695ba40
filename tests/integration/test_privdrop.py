"""Privilege drop without systemd: started as root, the gateway, the tunnel and `ca serve` bind
and read their keys, then become `user` (config) / `--user` before serving; after READY the
process's real, effective and saved ids and its groups are the user's, it serves, and a
reload (which re-reads the files as that user) still works. As root with no user they refuse
to start unless --allow-root. Needs root (CI runs as root); skipped otherwise."""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import pytest

from backends import TcpEchoBackend
from est_helpers import CaServer, https
from gateway_helpers import Gateway, MiniPki, client_context, echo_roundtrip
from twoway_testlib import Pki, free_port, run, twoway_bin, wait_for_line

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")

USER = "nobody"


def ids_of(pid):
    """(uids, gids, groups) of a running process from /proc/PID/status."""
    status = open(f"/proc/{pid}/status").read()
    uids = [int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()]
    gids = [int(x) for x in re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()]
    groups = [int(x) for x in re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).split()]
    return uids, gids, groups


def expected_ids():
    pw = pwd.getpwnam(USER)
    groups = {g.gr_gid for g in grp.getgrall() if USER in g.gr_mem} | {pw.pw_gid}
    return pw.pw_uid, pw.pw_gid, groups


@pytest.fixture
def no_allow_root(monkeypatch):
    monkeypatch.delenv("TWOWAY_ALLOW_ROOT", raising=False)


@pytest.fixture
def user_tmp():
    """A directory the user can reach (pytest's tmp_path is root-only)."""
    top = tempfile.mkdtemp(prefix="tw-privdrop-", dir="/tmp")
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def setup(no_allow_root, user_tmp):
    """Certificates where the user can reach them, keys owned by the user and 0600, as an
    operator would set them up."""
    ca = MiniPki(os.path.join(user_tmp, "ca"))
    os.chmod(ca.dir, 0o755)
    e = {"dir": ca.dir, "ca": ca, "server": ca.server(), "alice": ca.issue("alice"),
         "port": free_port(), "backend": TcpEchoBackend()}
    uid, gid, _ = expected_ids()
    for c in (e["server"], e["alice"]):
        os.chown(c.key_path, uid, gid)
    yield e
    e["backend"].close()


def config(e, user_line):
    path = e["dir"] / "gw.conf"
    path.write_text(f"""
[global]
workers = 2
access-log = off
{user_line}

[service echo]
listen = 127.0.0.1:{e['port']}
backend = {e['backend'].address}
mode = tcp
cert = {e['server'].cert_path}
key = {e['server'].key_path}
client-ca = {e['ca'].ca_path}
""")
    return path


def test_gateway_refuses_root_without_user(setup):
    e = setup
    r = run(["gateway", "--config", config(e, "")])
    assert r.returncode == 2, r.stdout + r.stderr
    assert "refusing to serve as root" in r.stderr and "--allow-root" in r.stderr
    # The same with flags instead of a file.
    r = run(["gateway", "--listen", f"127.0.0.1:{e['port']}", "--backend", e["backend"].address,
             "--cert", e["server"].cert_path, "--key", e["server"].key_path,
             "--client-ca", e["ca"].ca_path])
    assert r.returncode == 2 and "refusing to serve as root" in r.stderr


def test_gateway_allow_root_serves_as_root(setup):
    e = setup
    ctx = client_context(e["ca"], e["alice"])
    with Gateway(["--config", config(e, ""), "--allow-root"]) as gw:
        assert ids_of(gw.proc.pid)[0] == [0, 0, 0, 0]
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"
        assert gw.stop() == 0


def test_gateway_unknown_user(setup):
    r = run(["gateway", "--config", config(setup, "user = no-such-user-tw")])
    assert r.returncode == 2
    assert "user 'no-such-user-tw': no such user" in r.stderr


def test_gateway_drops_to_user_serves_and_reloads(setup):
    e = setup
    uid, gid, groups = expected_ids()
    ctx = client_context(e["ca"], e["alice"])
    with Gateway(["--config", config(e, f"user = {USER}")]) as gw:
        uids, gids, got_groups = ids_of(gw.proc.pid)
        assert uids == [uid] * 4 and gids == [gid] * 4, (uids, gids)
        assert set(got_groups) == groups
        # Every thread, not only the main one (workers accept the connections).
        for tid in os.listdir(f"/proc/{gw.proc.pid}/task"):
            status = open(f"/proc/{gw.proc.pid}/task/{tid}/status").read()
            assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"

        # A reload re-reads cert, key and CA as the user: a new server certificate is served.
        new = e["ca"].server()
        os.chown(new.key_path, uid, gid)
        gw.signal(signal.SIGHUP)
        gw.wait_line(r"reload: generation 2 serving")
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"

        # A key the user cannot read: the reload fails with the reason, generation 2 serves.
        os.chown(e["server"].key_path, 0, 0)
        gw.signal(signal.SIGHUP)
        line = gw.wait_line(r"reload failed, still serving generation 2")
        assert str(e["server"].key_path) in line
        assert echo_roundtrip(e["port"], ctx) == b"ping\n"
        assert gw.stop() == 0


def test_tunnel_user_flag(setup):
    e = setup
    uid, gid, _ = expected_ids()
    os.chown(e["alice"].key_path, uid, gid)
    local = free_port()
    with Gateway(["--config", config(e, ""), "--allow-root"]):
        proc = subprocess.Popen(
            [twoway_bin(), "tunnel", "--listen", f"127.0.0.1:{local}",
             "--target", f"localhost:{e['port']}", "--cert", str(e["alice"].cert_path),
             "--key", str(e["alice"].key_path), "--ca", str(e["ca"].ca_path),
             "--user", USER],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for_line(proc, r"twoway tunnel: ready", 20)
            uids, gids, _ = ids_of(proc.pid)
            assert uids == [uid] * 4 and gids == [gid] * 4
            with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
                s.sendall(b"hi\n")
                assert s.recv(3) == b"hi\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_ca_serve_refuses_root_then_drops(user_tmp, no_allow_root):
    pki = Pki(user_tmp)
    r = run(["ca", "serve", "--dir", pki.dir, "--listen", "127.0.0.1:0"])
    assert r.returncode == 2 and "refusing to serve as root" in r.stderr
    # The data dir belongs to the user (the CA writes CRLs and its server certificate there).
    uid, gid, _ = expected_ids()
    for root, dirs, files in os.walk(pki.dir):
        for n in [root] + [os.path.join(root, f) for f in files]:
            os.chown(n, uid, gid)
    srv = CaServer(pki, "--user", USER)
    try:
        uids, gids, _ = ids_of(srv.proc.pid)
        assert uids == [uid] * 4 and gids == [gid] * 4
        status, _, body = https(srv, "GET", "/.well-known/est/cacerts")
        assert status == 200 and body
    finally:
        assert srv.stop() == 0
