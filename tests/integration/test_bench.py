"""twoway bench against twoway gateway on loopback: completes mutual handshakes, reports sane
JSON, really resumes with --resume (the gateway's access log says so), reports a refused
client certificate as failures, measures a server pid. Short runs (--count 20); no timing
assertions."""
import json
import os
import socket
import threading

import pytest

from backends import TcpEchoBackend
from gateway_helpers import Gateway, access_lines, free_port
from twoway_testlib import Pki, run

COUNT = 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    pki = Pki(tmp / "ca")
    server = pki.issue_server("localhost", san="ip:127.0.0.1")
    alice = pki.issue_client("alice")
    other = Pki(tmp / "other", name="Other CA")
    mallory = other.issue_client("mallory")
    backend = TcpEchoBackend()
    port = free_port()
    log = tmp / "access.log"
    gw = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend.port}",
                  "--mode", "tcp", "--cert", server.chain, "--key", server.key,
                  "--client-ca", pki.chain, "--workers", "1", "--access-log", log])
    yield {"pki": pki, "alice": alice, "mallory": mallory, "port": port, "log": log, "gw": gw,
           "server": server}
    assert gw.stop() == 0
    backend.close()


def bench(setup, *extra, who="alice", check_json=True):
    cert = setup[who]
    args = ["bench", f"127.0.0.1:{setup['port']}", "--cert", cert.chain, "--key", cert.key,
            "--ca", setup["pki"].chain, "--timeout", "10s"] + [str(a) for a in extra]
    r = run(args + (["--json"] if check_json else []), timeout=120)
    if not check_json:
        return r, None
    assert r.stdout.strip(), f"no output; stderr: {r.stderr}"
    return r, json.loads(r.stdout)


def resumed_flags(log, since):
    lines = access_lines(log, n=since + 1)
    return [l["resumed"] for l in lines[since:]]


def sane(j, n):
    assert j["ok"] == n and j["failed"] == 0 and j["errors"] == {}, j
    assert j["started"] == n
    lat = j["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat
    assert j["conns_per_s"] > 0 and j["elapsed_s"] > 0
    assert j["first_error"] is None and not j["gave_up"]


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_full_handshakes(setup, tls):
    r, j = bench(setup, "--count", COUNT, "--conns", 4, "--tls", tls)
    assert r.returncode == 0, r.stderr
    sane(j, COUNT)
    assert j["tls"] == tls and j["full"] == COUNT and j["resumed"] == 0
    assert j["server"] is None  # no --pid


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_resume_really_resumes(setup, tls):
    before = len(access_lines(setup["log"], n=0))
    r, j = bench(setup, "--count", COUNT, "--conns", 2, "--tls", tls, "--resume")
    assert r.returncode == 0, r.stderr
    sane(j, COUNT)
    # One warm-up full handshake per slot, then every measured connection resumed.
    assert j["primed"] == 2 and j["resumed"] == COUNT and j["full"] == 0, j
    assert j["offered"] == COUNT and j["resumed_enough"] is True, j
    text = run(["bench", f"127.0.0.1:{setup['port']}", "--cert", setup["alice"].chain,
                "--key", setup["alice"].key, "--ca", setup["pki"].chain, "--count", COUNT,
                "--tls", tls, "--resume"], timeout=120)
    assert text.returncode == 0, text.stderr
    assert f"resumed: {COUNT} of {COUNT} offered sessions (100.0 %)" in text.stdout, text.stdout
    flags = resumed_flags(setup["log"], before)
    assert len(flags) >= COUNT + 2
    assert flags.count(True) >= COUNT, flags


class Alternating:
    """A TCP relay on a free port sending each new connection to the next of the targets in
    turn: two gateways with their own session keys never resume each other's sessions."""

    def __init__(self, targets):
        self.targets, self.turn = targets, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.targets[self.turn % 2]))
            self.turn += 1
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_resume_fails_when_sessions_are_not_resumed(setup, tmp_path, tls):
    """Every offered session lands on the gateway that did not issue it: all full handshakes,
    which --resume reports and turns into exit code 1."""
    backend = TcpEchoBackend()
    port = free_port()
    other = Gateway(["--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{backend.port}",
                     "--mode", "tcp", "--cert", setup["server"].chain,
                     "--key", setup["server"].key, "--client-ca", setup["pki"].chain,
                     "--workers", "1"])
    relay = Alternating([setup["port"], port])
    try:
        r = run(["bench", f"127.0.0.1:{relay.port}", "--cert", setup["alice"].chain,
                 "--key", setup["alice"].key, "--ca", setup["pki"].chain, "--count", COUNT,
                 "--conns", 1, "--tls", tls, "--resume", "--json"], timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        j = json.loads(r.stdout)
        assert j["ok"] == COUNT and j["failed"] == 0, j
        assert j["offered"] == COUNT and j["resumed"] == 0 and j["resumed_enough"] is False, j
        assert f"only 0 of {COUNT} offered sessions were resumed" in r.stderr, r.stderr
    finally:
        relay.close()
        assert other.stop() == 0, other.output()
        backend.close()


def test_request_is_echoed(setup):
    r, j = bench(setup, "--count", COUNT, "--request", "1k")
    assert r.returncode == 0, r.stderr
    sane(j, COUNT)
    assert j["bytes_up"] == COUNT * 1024 and j["bytes_down"] == COUNT * 1024


@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_wrong_client_cert_fails(setup, tls):
    r, j = bench(setup, "--count", COUNT, "--conns", 2, "--tls", tls, who="mallory")
    assert r.returncode == 1
    assert j["ok"] == 0 and j["failed"] >= 1, j
    assert sum(j["errors"].values()) == j["failed"]
    assert j["first_error"], j
    # The gateway refused a certificate from a CA it does not trust (TLS 1.3: after the
    # client's side of the handshake, as an alert), not a timeout.
    assert "timeout" not in j["errors"], j


def test_pid_measures_the_gateway(setup):
    pid = setup["gw"].proc.pid
    r, j = bench(setup, "--count", COUNT, "--pid", pid)
    assert r.returncode == 0, r.stderr
    srv = j["server"]
    assert srv["pid"] == pid
    assert srv["cpu_us"] >= 0 and srv["cpu_us_per_conn"] is not None
    assert srv["rss_before_kb"] > 0 and srv["rss_after_kb"] > 0


def test_hold_keeps_connections(setup):
    pid = setup["gw"].proc.pid
    r, j = bench(setup, "--hold", 10, "--request", 16, "--hold-time", "1s", "--pid", pid)
    assert r.returncode == 0, r.stderr
    assert j["mode"] == "hold" and j["held"] == 10 and j["ok"] == 10, j
    assert j["server"]["rss_kb_per_held_conn"] is not None


def test_text_output(setup):
    r, _ = bench(setup, "--count", 5, check_json=False)
    assert r.returncode == 0, r.stderr
    assert "5 ok" in r.stdout and "latency: p50" in r.stdout


def test_usage_errors(setup):
    port = setup["port"]
    for args in (["bench"], ["bench", f"127.0.0.1:{port}"],
                 ["bench", f"127.0.0.1:{port}", "--cert", "x", "--key", "y", "--tls", "1.1"],
                 ["bench", f"127.0.0.1:{port}", "--cert", "x", "--key", "y", "--conns", "0"],
                 ["bench", "nohostport", "--cert", "x", "--key", "y"],
                 ["bench", f"127.0.0.1:{port}", "--cert", "x", "--key", "y", "--hold", "5",
                  "--download", "1m"]):
        r = run(args)
        assert r.returncode == 2, (args, r.stderr)
        assert "twoway bench:" in r.stderr


def test_unreadable_files_and_dead_pid(setup, tmp_path):
    alice = setup["alice"]
    r = run(["bench", f"127.0.0.1:{setup['port']}", "--cert", tmp_path / "missing.pem",
             "--key", alice.key, "--count", 1])
    assert r.returncode == 1 and "missing.pem" in r.stderr
    dead = 4_000_000  # above pid_max: never a live process
    r = run(["bench", f"127.0.0.1:{setup['port']}", "--cert", alice.chain, "--key", alice.key,
             "--pid", dead, "--count", 1])
    assert r.returncode == 1 and f"process {dead}" in r.stderr


def test_nothing_listening_gives_up(setup):
    alice = setup["alice"]
    port = free_port()
    r = run(["bench", f"127.0.0.1:{port}", "--cert", alice.chain, "--key", alice.key,
             "--count", 50, "--conns", 2, "--json"], timeout=60)
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["ok"] == 0 and j["errors"].get("connect", 0) >= 1, j
