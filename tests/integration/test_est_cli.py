"""Command-line contract of `ca token`, `ca serve`, `enroll` and `renew`: --help with
examples, exit 2 for usage errors, exit 1 with one clear line for handled failures, nothing on
stdout when a command fails; token lifetime options."""

import datetime

import pytest

from est_helpers import CaServer, enroll, token
from twoway_testlib import Pki, run
from x509_checks import load_cert


@pytest.mark.parametrize("cmd", [["ca", "token"], ["ca", "serve"], ["enroll"], ["renew"]])
def test_help_has_examples(cmd):
    r = run(cmd + ["--help"])
    assert r.returncode == 0 and "usage: twoway" in r.stdout and "Examples:" in r.stdout


@pytest.mark.parametrize("args", [
    ["ca", "token"],
    ["ca", "token", "a", "--ttl", "soon"],
    ["ca", "token", "a", "--profile", "root"],
    ["ca", "token", "-bad"],
    ["ca", "token", "a", "--san", "bogus:x"],
    ["enroll", "https://127.0.0.1:1", "--name", "a", "--token", "t"],
    ["enroll", "https://127.0.0.1:1", "--name", "a", "--ca-fingerprint", "00"],
    ["enroll", "https://127.0.0.1:1", "--token", "t", "--ca-fingerprint", "00"],
    ["enroll", "--name", "a", "--token", "t", "--ca-fingerprint", "00"],
    ["enroll", "https://h", "--name", "a", "--token", "", "--ca-fingerprint", "00"],
    ["enroll", "https://h", "--name", "a", "--token", "t", "--ca-fingerprint", "12"],
    ["enroll", "http://h", "--name", "a", "--token", "t", "--ca", "x.pem"],
    ["renew", "--cert", "a.crt"],
    ["renew", "--cert", "a.crt", "--key", "a.key", "--server", "https://h", "--key-type", "ed25519"],
    ["renew", "--cert", "/nonexistent/a.crt", "--key", "a.key", "--server", "https://h"],
])
def test_usage_errors_exit_2(args, tmp_path):
    r = run(args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.startswith("twoway ")


def test_handled_failures_exit_1_with_one_line(tmp_path):
    r = run(["ca", "token", "alice", "--dir", tmp_path / "none"])
    assert r.returncode == 1 and r.stdout == "" and "no CA in" in r.stderr
    r = run(["enroll", "https://127.0.0.1:9", "--name", "a", "--token", "t",
             "--ca-fingerprint", "ab" * 32, "--out", tmp_path / "o"])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "cannot connect to https://127.0.0.1:9" in r.stderr
    (tmp_path / "ca.pem").write_text("not a cert")
    r = run(["renew", "--cert", tmp_path / "a.crt", "--key", tmp_path / "a.key", "--server",
             "https://127.0.0.1:9"])
    assert r.returncode == 1 and r.stdout == "" and "a.crt" in r.stderr


def test_token_days_sets_the_certificate_lifetime_and_ttl_expires(tmp_path):
    pki = Pki(tmp_path / "pki")
    tok, out = token(pki, "short", "--days", "3h", "--ttl", "10m")
    assert "expires" in out
    with CaServer(pki) as srv:
        assert enroll(srv, "short", tok, tmp_path / "o").returncode == 0
        cert = load_cert(tmp_path / "o" / "short.crt")
        life = cert.not_valid_after - datetime.datetime.utcnow()
        assert datetime.timedelta(hours=2, minutes=55) < life <= datetime.timedelta(hours=3)
        tok2, _ = token(pki, "late", "--ttl", "1s")
        import time
        time.sleep(1.2)
        r = enroll(srv, "late", tok2, tmp_path / "o2")
        assert r.returncode == 1 and "HTTP 401" in r.stderr and "expired" in r.stderr


def test_existing_files_are_kept_without_force(tmp_path):
    pki = Pki(tmp_path / "pki")
    out = tmp_path / "o"
    out.mkdir()
    (out / "erin.key").write_text("precious")
    tok, _ = token(pki, "erin")
    with CaServer(pki) as srv:
        r = enroll(srv, "erin", tok, out)
        assert r.returncode == 1 and "already exists" in r.stderr
        assert (out / "erin.key").read_text() == "precious"
        r = enroll(srv, "erin", tok, out, "--force")
        assert r.returncode == 0, r.stderr
        assert (out / "erin.key").read_text() != "precious"
