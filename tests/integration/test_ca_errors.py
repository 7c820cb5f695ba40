"""Bad input and bad surroundings: every failure is exit 1 (2 for usage) with one line naming
what is at fault, and the CA is never left inconsistent (checked by failing writes with
TWOWAY_FAULT_WRITE, which makes util/fs writes to matching paths fail with ENOSPC)."""
import os
import sqlite3

import pytest

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from twoway_testlib import run
from x509_checks import load_cert, load_crl


def one_line_error(r, code=1):
    assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert r.stderr.startswith("twoway"), r.stderr
    if code == 1:
        assert r.stderr.count("\n") == 1, r.stderr
        assert r.stdout == "", r.stdout


def audit_rows(pki):
    db = sqlite3.connect(f"file:{pki.db}?mode=ro", uri=True)
    try:
        return db.execute("SELECT action, subject, serial, result FROM audit ORDER BY id").fetchall()
    finally:
        db.close()


def inventory(pki):
    db = sqlite3.connect(f"file:{pki.db}?mode=ro", uri=True)
    try:
        return {name: (serial, status) for serial, name, status in
                db.execute("SELECT serial, name, status FROM certs")}
    finally:
        db.close()


def leftovers(directory):
    """Temporary files an atomic write may have left behind."""
    return [p.name for p in directory.rglob("*") if ".tmp." in p.name]


# ------------------------------------------------------------------ a missing or broken CA

@pytest.mark.parametrize("args", [
    ["issue", "client", "x"], ["list"], ["show", "x"], ["revoke", "x"], ["crl"],
    ["export", "x", "--pem"],
])
def test_missing_ca(tmp_path, args):
    d = tmp_path / "empty"
    r = run(["ca"] + args + ["--dir", d], cwd=tmp_path)
    one_line_error(r)
    assert "no CA in" in r.stderr and str(d) in r.stderr


def test_half_written_ca_from_interrupted_init(tmp_path):
    d = tmp_path / "d"
    (d / ".ca-init.Ab12Cd").mkdir(parents=True)
    r = run(["ca", "issue", "client", "x", "--dir", d, "--out", tmp_path])
    one_line_error(r)
    assert "half-written" in r.stderr and ".ca-init.Ab12Cd" in r.stderr


def test_ca_with_a_missing_file(pki):
    (pki.ca_dir / "intermediate.crt").unlink()
    r = pki.ca("issue", "client", "x")
    one_line_error(r)
    assert "intermediate.crt" in r.stderr


def test_ca_key_readable_by_others_is_refused(pki):
    os.chmod(pki.ca_dir / "intermediate.key", 0o644)
    r = pki.ca("issue", "client", "x")
    one_line_error(r)
    assert "intermediate.key" in r.stderr
    assert "x" not in inventory(pki)


def test_garbage_store_is_named(pki):
    for side in ("ca.db-wal", "ca.db-shm"):
        if (pki.dir / side).exists():
            (pki.dir / side).unlink()
    pki.db.write_bytes(b"not a database\n" * 100)
    r = pki.ca("list")
    one_line_error(r)
    assert "ca.db" in r.stderr


def test_store_from_newer_twoway_is_refused(pki):
    db = sqlite3.connect(pki.db)
    db.execute("INSERT INTO schema_version (version, what, applied_at) VALUES (999, 'x', 0)")
    db.commit()
    db.close()
    r = pki.ca("list")
    one_line_error(r)
    assert "ca.db" in r.stderr and "newer" in r.stderr


# ------------------------------------------------------------------ usage errors (exit 2)

@pytest.mark.parametrize("args, word", [
    (["issue"], None),
    (["issue", "client"], None),
    (["issue", "robot", "x"], "robot"),
    (["issue", "client", "../evil"], "../evil"),
    (["issue", "client", "-dash"], None),
    (["issue", "client", "x", "--san", "foo:bar"], "foo:bar"),
    (["issue", "client", "x", "--san", "ip:300.1.1.1"], "300.1.1.1"),
    (["issue", "client", "x", "--days", "0"], None),
    (["issue", "client", "x", "--days", "-3"], None),
    (["issue", "client", "x", "--key", "rsa:512"], "rsa:512"),
    (["issue", "server", "x", "--p12"], None),
    (["revoke"], None),
    (["show"], None),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors(shared_pki, tmp_path, args, word):
    r = shared_pki.ca(*args, "--out", tmp_path) if args[:1] == ["issue"] else \
        shared_pki.ca(*args)
    assert r.returncode == 2, f"{args}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    if word:
        assert word in r.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ unwritable places

def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be\n")
    r = run(["ca", "init", "--dir", blocker / "data"])
    one_line_error(r)
    assert str(blocker) in r.stderr


def test_unwritable_out_dir(pki, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = pki.ca("issue", "client", "nowhere", "--out", blocker / "out")
    assert r.returncode == 1
    assert str(blocker) in r.stderr
    rows = inventory(pki)
    if "nowhere" in rows:  # issued before the write failed: the error must name the serial
        assert rows["nowhere"][0] in r.stderr


# ------------------------------------------------------------------ full disk

def test_full_disk_during_init_leaves_no_ca(tmp_path):
    d = tmp_path / "d"
    r = run(["ca", "init", "--dir", d], env={"TWOWAY_FAULT_WRITE": "intermediate.key"})
    one_line_error(r)
    assert "intermediate.key" in r.stderr and "No space left" in r.stderr
    assert not (d / "ca").exists()
    r = run(["ca", "list", "--dir", d])
    assert r.returncode == 1  # no CA (or half-written), never a usable broken one
    r = run(["ca", "init", "--dir", d])  # a retry succeeds
    assert r.returncode == 0, r.stderr
    assert (d / "ca" / "intermediate.key").exists()


@pytest.mark.parametrize("victim", ["ghost.key", "ghost.crt", "ghost.chain.pem"])
def test_full_disk_during_issue(pki, tmp_path, victim):
    out = tmp_path / "out"
    r = pki.ca("issue", "client", "ghost", "--out", out, env={"TWOWAY_FAULT_WRITE": victim})
    one_line_error(r)
    assert victim in r.stderr and "No space left" in r.stderr
    assert not (out / victim).exists()
    assert leftovers(tmp_path) == []
    rows = inventory(pki)
    if "ghost" in rows:  # row committed before the files: the error names it for revocation
        serial = rows["ghost"][0]
        assert serial in r.stderr
    failed = [a for a in audit_rows(pki) if a[0] == "issue" and a[3] != "ok"]
    assert failed, audit_rows(pki)
    assert victim in failed[-1][3] or "No space" in failed[-1][3]


def test_full_disk_while_writing_crl_after_revoke(pki):
    leaf = pki.issue_client("hank")
    before = load_crl(pki.crl)
    r = pki.ca("revoke", leaf.serial, env={"TWOWAY_FAULT_WRITE": "crl.pem"})
    one_line_error(r)
    assert "crl.pem" in r.stderr and "twoway ca crl" in r.stderr
    assert inventory(pki)["hank"][1] == "revoked"  # the revocation itself is kept
    assert load_crl(pki.crl).fingerprint(sha256()) == before.fingerprint(sha256())
    assert leftovers(pki.dir) == []
    assert any(a[3] != "ok" for a in audit_rows(pki))
    pki.write_crl()  # as the message says
    crl = load_crl(pki.crl)
    assert crl.get_revoked_certificate_by_serial_number(load_cert(leaf.cert).serial_number)
    assert ext_number(crl) > ext_number(before)
    r = pki.revoke(leaf.serial, check=False)
    assert r.returncode == 1 and "already revoked" in r.stderr


def test_full_disk_during_crl_keeps_numbers_growing(pki):
    n0 = ext_number(load_crl(pki.crl))
    r = pki.ca("crl", env={"TWOWAY_FAULT_WRITE": "crl.der"})
    one_line_error(r)
    assert "crl.der" in r.stderr
    crl = load_crl(pki.crl)  # whatever is there still verifies
    assert crl.is_signature_valid(load_cert(pki.intermediate).public_key())
    pki.write_crl()
    assert ext_number(load_crl(pki.crl)) > max(n0, ext_number(crl))
    assert ext_number(load_crl(pki.ca_dir / "crl.der")) == ext_number(load_crl(pki.crl))


def test_full_disk_during_export(pki, tmp_path):
    leaf = pki.issue_client("ivy")
    pw = tmp_path / "pw"
    pw.write_text("password1\n")
    out = tmp_path / "ivy.p12"
    r = pki.ca("export", "ivy", "--p12", "--key", leaf.key, "--p12-pass-file", pw, "--out", out,
               env={"TWOWAY_FAULT_WRITE": "ivy.p12"})
    one_line_error(r)
    assert "ivy.p12" in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def sha256():
    return hashes.SHA256()


def ext_number(crl):
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_failed_issue_audit_row_names_subject_and_serial(pki, tmp_path):
    r = pki.ca("issue", "client", "ghost", "--out", tmp_path,
               env={"TWOWAY_FAULT_WRITE": "ghost.crt"})
    assert r.returncode == 1
    serial = inventory(pki)["ghost"][0]
    failed = [a for a in audit_rows(pki) if a[0] == "issue" and a[3] != "ok"]
    assert failed[-1][1] == "CN=ghost"
    assert failed[-1][2] == serial
