"""`twoway ca list` and `ca show`: the inventory agrees with the certificates, filters work, and
several processes can use one CA at once."""
import datetime
import json
import re
import subprocess
import time

import pytest

from twoway_testlib import Pki, twoway_bin
from x509_checks import fingerprint, load_cert


@pytest.fixture(scope="module")
def inv(tmp_path_factory):
    """alice (client, revoked, then re-issued), web (server), old (expired), soon (7 days)."""
    pki = Pki(tmp_path_factory.mktemp("inv"))
    certs = {}
    certs["alice1"] = pki.issue_client("alice")
    pki.revoke(certs["alice1"].serial, reason="keyCompromise")
    certs["alice2"] = pki.issue_client("alice", out=pki.tmp / "alice2")
    certs["web"] = pki.issue_server("web.example.test", san=None)
    certs["old"] = pki.issue_client("old", days="1s")
    certs["soon"] = pki.issue_client("soon", days=7)
    # Let "old" expire: wait until a whole second past its notAfter (list compares seconds).
    not_after = load_cert(certs["old"].cert).not_valid_after.replace(
        tzinfo=datetime.timezone.utc).timestamp()
    time.sleep(max(0.0, not_after + 1.05 - time.time()))
    return pki, certs


def listing(pki, *args):
    r = pki.ca("list", "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def names(rows):
    return [r["name"] for r in rows]


def test_list_json_shape_and_order(inv):
    pki, certs = inv
    rows = listing(pki)
    assert [r["profile"] for r in rows[:3]] == ["root", "intermediate", "ocsp"]
    leaves = [r for r in rows if r["profile"] in ("client", "server")]
    assert names(leaves) == ["alice", "alice", "web.example.test", "old", "soon"]
    a1 = leaves[0]
    cert = load_cert(certs["alice1"].cert)
    assert int(a1["serial"], 16) == cert.serial_number
    assert a1["serial"] == a1["serial"].upper()
    assert a1["sha256"] == fingerprint(cert)
    assert a1["subject"] == "CN=alice"
    assert a1["status"] == "revoked"
    assert a1["reason"] == "keyCompromise"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", a1["revoked_at"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", a1["not_after"])
    assert a1["issuer"] == "CN=Test CA Intermediate"
    assert leaves[1]["status"] == "valid" and leaves[1]["revoked_at"] is None
    assert leaves[1]["reason"] is None
    assert leaves[2]["sans"] == ["dns:web.example.test"]
    assert leaves[2]["profile"] == "server"


def test_list_status_filters(inv):
    pki, _ = inv
    assert names(listing(pki, "--status", "revoked")) == ["alice"]
    assert names(listing(pki, "--status", "expired")) == ["old"]
    valid = listing(pki, "--status", "valid", "--profile", "client")
    assert names(valid) == ["alice", "soon"]


def test_list_expiring_name_profile(inv):
    pki, _ = inv
    assert names(listing(pki, "--expiring", "10d", "--profile", "client")) == ["soon"]
    assert names(listing(pki, "--name", "al*")) == ["alice", "alice"]
    assert names(listing(pki, "--profile", "server")) == ["web.example.test"]
    assert listing(pki, "--name", "nobody*") == []


def test_list_text_has_header_and_rows(inv):
    pki, certs = inv
    r = pki.ca("list", "--profile", "client")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["SERIAL", "STATUS"]
    assert len(lines) == 1 + 4
    assert any(certs["alice2"].serial in line and "valid" in line for line in lines)


@pytest.mark.parametrize("args", [["--status", "bogus"], ["--expiring", "soonish"],
                                  ["--what"]])
def test_list_usage_errors(inv, args):
    pki, _ = inv
    r = pki.ca("list", *args)
    assert r.returncode == 2
    assert r.stdout == ""


def test_show_by_name_is_newest(inv):
    pki, certs = inv
    r = pki.ca("show", "alice")
    assert r.returncode == 0, r.stderr
    assert f"serial: {certs['alice2'].serial}" in r.stdout
    assert "status: valid" in r.stdout


def test_show_by_serial_any_spelling(inv):
    pki, certs = inv
    serial = certs["alice1"].serial
    colons = ":".join(re.findall("..", serial.rjust(len(serial) + len(serial) % 2, "0")))
    for spelling in (serial, serial.lower(), "00" + serial, colons):
        r = pki.ca("show", spelling)
        assert r.returncode == 0, (spelling, r.stderr)
        assert f"serial: {serial}" in r.stdout
        assert "status: revoked" in r.stdout
        assert "reason: keyCompromise" in r.stdout


def test_show_pem_is_the_certificate(inv):
    pki, certs = inv
    r = pki.ca("show", certs["web"].serial, "--pem")
    assert r.returncode == 0
    assert r.stdout.strip() == certs["web"].cert.read_text().strip()


def test_show_json(inv):
    pki, certs = inv
    r = pki.ca("show", "soon", "--json")
    assert r.returncode == 0
    row = json.loads(r.stdout)
    assert row["name"] == "soon" and row["serial"] == certs["soon"].serial


def test_show_unknown_is_exit_1_naming_it(inv):
    pki, _ = inv
    for what in ("nobody", "DEADBEEF"):
        r = pki.ca("show", what)
        assert r.returncode == 1
        assert what in r.stderr
        assert r.stderr.startswith("twoway: ") and r.stderr.count("\n") == 1
        assert r.stdout == ""


def test_concurrent_issues_from_several_processes(tmp_path):
    """Four `ca issue` processes on one CA at once: all succeed, all rows present, distinct
    serials (SQLite busy timeout + WAL)."""
    pki = Pki(tmp_path)
    procs = [subprocess.Popen([twoway_bin(), "ca", "issue", "client", f"par{i}", "--dir",
                               str(pki.dir), "--out", str(tmp_path / f"o{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    rows = listing(pki, "--name", "par*")
    assert sorted(names(rows)) == [f"par{i}" for i in range(4)]
    assert len({r["serial"] for r in rows}) == 4
