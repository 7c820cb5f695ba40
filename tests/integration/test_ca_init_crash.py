"""`twoway ca init` killed (SIGKILL, through the test-only TWOWAY_FAULT_INIT crash points) at
each point of its run, then the commands a user runs next, on SQLite and on PostgreSQL.

Killed after renaming its temp dir to D/ca but before committing (the window described in
docs/internals/ca.md), the next command that opens the CA finishes the init: the root,
intermediate and OCSP signer are in the inventory, the audit trail says `init recovered`, one
warning line says so, and CRL numbers keep strictly increasing past the CRL init wrote (checked
with `openssl crl -crlnumber`). Killed before the rename, nothing is a CA yet: commands report a
half-written CA and `ca init` runs again."""
import itertools
import json
import os
import re
import sqlite3
import subprocess

import pytest

from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import run, twoway_bin
from x509_checks import openssl_verify

RECOVERED = "finished an interrupted 'ca init'"
_db_names = itertools.count(1)


class Sqlite:
    name = "sqlite"
    env = {"TWOWAY_STORE": None}

    def __init__(self, data):
        self.data = data

    def audit(self):
        with sqlite3.connect(str(self.data / "ca.db")) as db:
            return db.execute("SELECT action, serial, result FROM audit ORDER BY id").fetchall()


class Postgres:
    name = "postgresql"

    def __init__(self, cluster):
        self.cluster = cluster
        self.db = "initcrash%d" % next(_db_names)
        self.uri = cluster.create_database(self.db)
        # Only `ca init` gets the store: it records it in ca.conf for every later command.
        self.env = {"TWOWAY_STORE": self.uri}

    def audit(self):
        out = self.cluster.psql("SELECT action, serial, result FROM audit ORDER BY id", db=self.db)
        return [tuple(line.split("|")) for line in out.splitlines() if line]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        return Sqlite(tmp_path / "data")
    return Postgres(request.getfixturevalue("pg"))


def ca(data, *args, check=False):
    return run(["ca"] + [str(a) for a in args] + ["--dir", str(data)], check=check,
               env={"TWOWAY_STORE": None, "TWOWAY_FAULT_INIT": None})


def killed_init(data, point, backend):
    env = dict(backend.env, TWOWAY_FAULT_INIT=point)
    r = run(["ca", "init", "--dir", str(data), "--name", "Crash CA"], env=env)
    assert r.returncode == -9, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""


def crl_number(path):
    r = subprocess.run(["openssl", "crl", "-in", str(path), "-noout", "-crlnumber"],
                       capture_output=True, text=True, check=True)
    m = re.search(r"crlNumber=(?:0x)?([0-9A-Fa-f]+)", r.stdout)
    assert m, r.stdout
    return int(m.group(1), 16)


def listed(data, *flags):
    return json.loads(ca(data, "list", "--json", *flags, check=True).stdout)


def test_killed_between_rename_and_commit_is_finished(backend, tmp_path):
    data = tmp_path / "data"
    killed_init(data, "before-commit", backend)
    crl = data / "ca" / "crl.pem"
    numbers = [crl_number(crl)]  # the CRL init wrote
    assert numbers == [1]

    # The first command finishes the init, says so once on stderr, and lists the CA's rows.
    first = ca(data, "list", "--json", check=True)
    assert first.stderr.count(RECOVERED) == 1, first.stderr
    rows = json.loads(first.stdout)
    assert sorted(r["profile"] for r in rows) == ["intermediate", "ocsp", "root"]
    assert {r["name"] for r in rows} == {"Crash CA Root", "Crash CA Intermediate",
                                          "Crash CA OCSP Signer"}
    assert all(r["status"] == "valid" for r in rows)
    again = ca(data, "list", check=True)
    assert RECOVERED not in again.stderr

    # CRL numbers strictly increase past the one init wrote.
    r = ca(data, "crl", check=True)
    numbers.append(crl_number(crl))
    assert "(number %d," % numbers[-1] in r.stdout

    # Issuing works, the certificate chains to the recovered CA, revoking puts it in a newer CRL.
    out = tmp_path / "out"
    ca(data, "issue", "client", "alice", "--out", out, check=True)
    openssl_verify(out / "alice.crt", data / "ca" / "root.crt", data / "ca" / "intermediate.crt")
    ca(data, "revoke", "alice", "--reason", "keyCompromise", check=True)
    numbers.append(crl_number(crl))
    ca(data, "crl", check=True)
    numbers.append(crl_number(crl))
    assert numbers == sorted(set(numbers)), numbers
    assert len(listed(data, "--status", "revoked")) == 1

    # The audit trail: the recovery (root serial), then what came after; no "init ok".
    audit = backend.audit()
    root = next(r["serial"] for r in rows if r["profile"] == "root")
    assert audit[0] == ("init", root, "recovered"), audit
    assert [a for a in audit if a[0] == "init"] == [("init", root, "recovered")]
    assert ("issue", "ok") in [(a[0], a[2]) for a in audit]

    # init refuses to overwrite the recovered CA.
    r = run(["ca", "init", "--dir", str(data)], env=backend.env)
    assert r.returncode == 1 and "refusing to overwrite" in r.stderr


def test_killed_while_recovering_is_recovered_later(backend, tmp_path):
    data = tmp_path / "data"
    killed_init(data, "before-commit", backend)
    r = run(["ca", "list", "--dir", str(data)],
            env={"TWOWAY_STORE": None, "TWOWAY_FAULT_INIT": "recover-before-commit"})
    assert r.returncode == -9
    # Nothing was committed: the next command recovers, once.
    first = ca(data, "crl", check=True)
    assert RECOVERED in first.stderr
    assert crl_number(data / "ca" / "crl.pem") == 2
    assert len(listed(data)) == 3
    assert [a for a in backend.audit() if a[0] == "init"][0][2] == "recovered"


def test_concurrent_commands_recover_once(backend, tmp_path):
    data = tmp_path / "data"
    killed_init(data, "before-commit", backend)
    env = dict(os.environ)
    env.pop("TWOWAY_STORE", None)
    env.pop("TWOWAY_FAULT_INIT", None)
    procs = [subprocess.Popen([twoway_bin(), "ca", "list", "--dir", str(data)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sum(err.count(RECOVERED) for _, err in outs) == 1, outs
    assert len(listed(data)) == 3
    assert [a[2] for a in backend.audit() if a[0] == "init"] == ["recovered"]
    ca(data, "crl", check=True)
    assert crl_number(data / "ca" / "crl.pem") == 2


@pytest.mark.parametrize("point", ["built", "before-rename"])
def test_killed_before_rename_is_half_written(backend, tmp_path, point):
    data = tmp_path / "data"
    killed_init(data, point, backend)
    assert not (data / "ca").exists()
    r = ca(data, "list")
    assert r.returncode == 1 and r.stdout == ""
    assert "half-written CA" in r.stderr and ".ca-init." in r.stderr
    assert all(a[0] != "init" or a[2] != "ok" for a in backend.audit())
    # init runs again and the result is an ordinary CA.
    run(["ca", "init", "--dir", str(data), "--name", "Crash CA"], env=backend.env, check=True)
    first = ca(data, "list", "--json", check=True)
    assert RECOVERED not in first.stderr
    assert len(json.loads(first.stdout)) == 3
    ca(data, "crl", check=True)
    assert crl_number(data / "ca" / "crl.pem") == 2
    assert [a[2] for a in backend.audit() if a[0] == "init"] == ["ok"]


def test_damaged_files_are_not_recovered(backend, tmp_path):
    data = tmp_path / "data"
    killed_init(data, "before-commit", backend)
    (data / "ca" / "crl.der").write_bytes(b"not a CRL")
    r = ca(data, "list")
    assert r.returncode == 1 and r.stdout == ""
    assert "cannot be recovered" in r.stderr and "crl.der" in r.stderr, r.stderr
    assert RECOVERED not in r.stderr
    assert backend.audit() == []
