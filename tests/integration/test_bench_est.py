"""`twoway bench --est` against `twoway ca serve` on loopback, with tokens from
`twoway ca token NAME --count N --out FILE`: every enrollment gets a certificate that is in the
inventory under its token's name, a spent token is refused and tallied as HTTP 401 with the
server's reason, open and closed loop both run, and the command's refusals are one clear line.
Short runs; no timing assertions."""
import json
import os
import stat

import pytest

from est_helpers import CaServer, audit_rows
from twoway_testlib import Pki, free_port, run

SERVE = ("--rate", "100000", "--burst", "100000")  # the per-address limit is not measured here


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("bench-est"))
    with CaServer(pki, *SERVE) as srv:
        yield pki, srv


def make_tokens(pki, path, name, count):
    r = pki.ca("token", name, "--count", str(count), "--out", str(path), "--ttl", "1h")
    assert r.returncode == 0, r.stderr
    return r


def bench_est(srv, pki, tokens, *extra, issued=None):
    args = ["bench", "--est", srv.url, "--ca", pki.chain, "--tokens", tokens, "--json",
            "--timeout", "20s", *extra]
    if issued is not None:
        args += ["--issued", issued]
    r = run([str(a) for a in args], timeout=300)
    assert r.stdout.strip(), f"no output; stderr: {r.stderr}"
    return r, json.loads(r.stdout)


def inventory(pki):
    rows = json.loads(pki.ca("list", "--json", check=True).stdout)
    return {row["serial"]: row["name"] for row in rows}


def test_token_file(env, tmp_path):
    pki, _ = env
    path = tmp_path / "t.txt"
    r = make_tokens(pki, path, "tf", 5)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [l for l in path.read_text().splitlines() if not l.startswith("#")]
    names = [l.split()[0] for l in lines]
    toks = [l.split()[1] for l in lines]
    assert names == ["tf-%d" % i for i in range(1, 6)]
    assert len(set(toks)) == 5 and all(len(t) >= 32 for t in toks)
    assert not any(t in r.stdout for t in toks), "tokens must go to the file only"
    assert "5 enrollment tokens for tf-1 .. tf-5" in r.stdout
    # Never over an existing file, and then no token is made; --count needs --out; bounds.
    made = len(audit_rows(pki))
    again = pki.ca("token", "tf", "--count", "2", "--out", str(path))
    assert again.returncode == 1 and f"{path} already exists" in again.stderr
    assert path.read_text().count("\n") == 6
    assert len(audit_rows(pki)) == made
    r = pki.ca("token", "tf", "--count", "2")
    assert r.returncode == 2 and "--count needs --out" in r.stderr
    r = pki.ca("token", "tf", "--count", "0", "--out", str(tmp_path / "z"))
    assert r.returncode == 2 and "--count" in r.stderr
    r = pki.ca("token", "x" * 60, "--count", "100000", "--out", str(tmp_path / "z"))
    assert r.returncode == 2 and "x" * 60 + "-100000" in r.stderr
    assert not (tmp_path / "z").exists()


def test_closed_loop_every_answer_is_a_certificate_in_the_inventory(env, tmp_path):
    pki, srv = env
    make_tokens(pki, tmp_path / "t.txt", "cl", 40)
    r, j = bench_est(srv, pki, tmp_path / "t.txt", "--clients", "4", issued=tmp_path / "s")
    assert r.returncode == 0, r.stderr + r.stdout
    assert j["mode"] == "est" and j["loop"] == "closed" and j["clients"] == 4
    assert j["ok"] == 40 and j["failed"] == 0 and j["errors"] == {}, j
    assert j["enrollments_per_s"] > 0 and j["tls"] == "1.3"
    lat = j["latency_ms"]
    assert 0 < lat["handshake_p50"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert j["client_cpu_us_per_enrollment"] > 0 and j["prepare_s"] > 0
    serials = (tmp_path / "s").read_text().split()
    assert len(serials) == 40 and len(set(serials)) == 40
    inv = inventory(pki)
    assert sorted(inv[s] for s in serials) == sorted("cl-%d" % i for i in range(1, 41))


def test_spent_tokens_are_tallied_as_refusals_with_the_reason(env, tmp_path):
    pki, srv = env
    make_tokens(pki, tmp_path / "t.txt", "sp", 20)
    r, j = bench_est(srv, pki, tmp_path / "t.txt", "--clients", "4")
    assert r.returncode == 0 and j["ok"] == 20
    before = len(inventory(pki))
    # One client: 20 refusals are more than the 3 x 1 + 10 failures after which a run with no
    # answer at all gives up; a refusal is an answer, so every token is tried.
    r, j = bench_est(srv, pki, tmp_path / "t.txt", "--clients", "1")
    assert r.returncode == 1
    assert j["ok"] == 0 and j["failed"] == 20 and j["errors"] == {"http-401": 20}, j
    assert j["started"] == 20 and not j["gave_up"], j
    assert "HTTP 401" in j["first_error"] and "already used" in j["first_error"], j
    assert len(inventory(pki)) == before
    # Text output names the tally and the first failure.
    r = run(["bench", "--est", srv.url, "--ca", str(pki.chain), "--tokens",
             str(tmp_path / "t.txt"), "--enrollments", "2"])
    assert r.returncode == 1
    assert "failed: 2 http-401" in r.stdout and "first failure: http-401: HTTP 401" in r.stdout


def test_nothing_listening_gives_up_early(env, tmp_path):
    pki, _ = env
    make_tokens(pki, tmp_path / "t.txt", "nl", 100)
    r = run(["bench", "--est", "127.0.0.1:%d" % free_port(), "--tokens", str(tmp_path / "t.txt"),
             "--clients", "2", "--json"])
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["gave_up"] and j["ok"] == 0 and set(j["errors"]) == {"connect"}, j
    assert 3 * 2 + 10 <= j["failed"] < 100, j


def test_open_loop(env, tmp_path):
    pki, srv = env
    make_tokens(pki, tmp_path / "t.txt", "ol", 30)
    r, j = bench_est(srv, pki, tmp_path / "t.txt", "--rate", "40", "--enrollments", "20")
    assert r.returncode == 0, r.stderr + r.stdout
    assert j["loop"] == "open" and j["rate"] == 40 and j["clients"] == 20
    assert j["ok"] == 20 and j["started"] == 20 and j["failed"] == 0, j
    # 20 arrivals 25 ms apart: the window is at least the schedule's 0.475 s.
    assert j["elapsed_s"] >= 0.475
    assert j["late_starts"] >= 0 and j["max_start_lag_ms"] >= 0


def test_server_not_trusted_fails_every_enrollment(env, tmp_path):
    pki, srv = env
    other = Pki(tmp_path / "other", name="Other CA")
    make_tokens(pki, tmp_path / "t.txt", "nt", 3)
    r = run(["bench", "--est", srv.url, "--ca", str(other.chain), "--tokens",
             str(tmp_path / "t.txt"), "--json"])
    assert r.returncode == 1
    j = json.loads(r.stdout)
    assert j["ok"] == 0 and j["failed"] == 3 and "http-401" not in j["errors"], j
    # The tokens were never sent: they still work.
    r, j = bench_est(srv, pki, tmp_path / "t.txt")
    assert r.returncode == 0 and j["ok"] == 3, j


@pytest.mark.parametrize("args,needle", [
    (["--est", "127.0.0.1:1"], "--est needs --tokens"),
    (["127.0.0.1:1", "--tokens", "t"], "go with --est"),
    (["--est", "127.0.0.1:1", "--tokens", "t", "--cert", "c", "--key", "k"], "no --cert"),
    (["--est", "127.0.0.1:1", "--tokens", "t", "--resume"], "--est: no --resume"),
    (["--est", "127.0.0.1:1", "--tokens", "t", "--rate", "0"], "--rate '0'"),
    (["--est", "http://127.0.0.1:1", "--tokens", "t"], "http://127.0.0.1:1"),
    (["--est", "127.0.0.1:1", "127.0.0.1:2", "--tokens", "t"], "no HOST:PORT"),
])
def test_usage_errors(args, needle):
    r = run(["bench", *args])
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr, r.stderr


def test_start_failures(env, tmp_path):
    pki, srv = env
    r = run(["bench", "--est", srv.url, "--tokens", str(tmp_path / "none.txt")])
    assert r.returncode == 1 and "none.txt" in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("dev-1 aaaa\njust-one-field\n")
    r = run(["bench", "--est", srv.url, "--tokens", str(bad)])
    assert r.returncode == 1 and "bad.txt line 2: expected NAME TOKEN" in r.stderr
    two = tmp_path / "two.txt"
    two.write_text("a-1 aa\na-2 bb\n")
    r = run(["bench", "--est", srv.url, "--tokens", str(two), "--enrollments", "3"])
    assert r.returncode == 1 and "holds 2 tokens; --enrollments 3" in r.stderr
