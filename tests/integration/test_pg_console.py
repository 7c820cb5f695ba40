"""The console on a PostgreSQL store, with two `ca serve --console` instances sharing it: a
revocation made through one shows in the other's inventory and OCSP answers, a token made on
one enrolls through the other, each write is audited once with the admin's subject and serial
whichever server took it, and the overview names the backend. A CSRF token is good only on the
server that gave it (its key is made at start)."""
import itertools

import pytest

from console_helpers import RULES, Console, ocsp_status
from est_helpers import CaServer, enroll
from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import Pki, run

_db_names = itertools.count(1)


@pytest.fixture
def two(pg, tmp_path):
    pki = Pki(tmp_path)
    uri = pg.create_database("console%d" % next(_db_names))
    run(["ca", "migrate", "--from", "sqlite:%s" % pki.db, "--to", uri], check=True)
    pki.db.rename(pki.dir / "ca.db.migrated")
    with open(pki.ca_dir / "ca.conf", "a") as f:
        f.write("store = %s\n" % uri)
    a = Console(pki, tmp_path)
    b = Console.__new__(Console)
    b.__dict__.update(a.__dict__)
    b.srv = CaServer(pki, *RULES, "--rate", "1000", "--burst", "1000")
    yield pki, a, b
    b.stop()
    a.stop()


def test_two_servers_one_inventory(two, tmp_path):
    pki, a, b = two
    assert a.json(a.ops, "GET", "/api/v1/overview")[1]["store"]["backend"] == "postgresql"
    victim = pki.issue_client("victim", out=tmp_path)
    st, j = a.json(a.ops, "POST", f"/api/v1/certs/{victim.serial}/revoke",
                   {"reason": "keyCompromise", "confirm": "yes", "csrf": a.csrf(a.ops)})
    assert st == 200, j
    assert b.json(b.viewer, "GET", f"/api/v1/certs/{victim.serial}")[1]["status"] == "revoked"
    assert ocsp_status(pki, victim.cert, b.srv.url) == "revoked"
    assert ocsp_status(pki, victim.cert, a.srv.url) == "revoked"
    # a token made on b enrolls through a
    st, j = b.json(b.ops, "POST", "/api/v1/tokens", {"name": "carol", "csrf": b.csrf(b.ops)})
    assert st == 201, j
    fp = j["command"].split("--ca-fingerprint ")[1].split()[0]
    assert enroll(a.srv, "carol", j["token"], tmp_path / "carol", fingerprint=fp).returncode == 0
    assert [t["state"] for t in a.json(a.viewer, "GET", "/api/v1/tokens")[1]["items"]
            if t["name"] == "carol"] == ["used"]
    # both writes are in the one audit log, by the admin
    for con in (a, b):
        items = con.json(con.viewer, "GET", "/api/v1/audit?subject=CN%3Dops")[1]["items"]
        mine = [(r["action"], r["serial"]) for r in items if r["result"].endswith("(console)")]
        assert ("revoke", a.ops.serial) in mine and ("token", a.ops.serial) in mine
    # a's CSRF token is not b's
    st, j = b.json(b.ops, "POST", "/api/v1/tokens", {"name": "dan", "csrf": a.csrf(a.ops)})
    assert st == 403 and "CSRF" in j["error"]
