"""The revocation feed across `ca serve` instances on one PostgreSQL database.

Two instances share the inventory but each has its own CA directory (two hosts): a revocation
made through one (`twoway ca revoke --dir A`, which rewrites only A's CRL) is announced with
NOTIFY at commit; instance B hears it, writes a CRL of its own and answers the feed request
held on it, so a gateway may follow either instance."""
import itertools
import shutil
import threading
import time

import pytest
from cryptography import x509

from est_helpers import CaServer, https
from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import run

_db_names = itertools.count(1)


class Host:
    """Another host's copy of the CA directory (same keys, same inventory URI)."""

    def __init__(self, pki, dir):
        shutil.copytree(pki.dir, dir)
        self.dir = dir
        self.ca_dir = dir / "ca"
        self.chain = pki.chain


@pytest.fixture
def two_hosts(pg, pki, tmp_path):
    uri = pg.create_database("feed%d" % next(_db_names))
    run(["ca", "migrate", "--from", "sqlite:%s" % pki.db, "--to", uri], check=True)
    pki.db.rename(pki.dir / "ca.db.migrated")
    with open(pki.ca_dir / "ca.conf", "a") as f:
        f.write("store = %s\n" % uri)
    return pki, Host(pki, tmp_path / "host-b")


def held_answer(srv, since, out):
    t0 = time.monotonic()
    out["resp"] = https(srv, "GET", f"/revocations?since={since}")
    out["secs"] = time.monotonic() - t0


@pytest.mark.parametrize("revoke_through", ["cli-on-a", "cli-on-b"])
def test_revocation_through_one_instance_wakes_the_other(two_hosts, revoke_through):
    a_pki, b_host = two_hosts
    alice = a_pki.issue_client("alice")
    serial = x509.load_pem_x509_certificate(alice.cert.read_bytes()).serial_number
    with CaServer(a_pki) as a, CaServer(b_host) as b:
        waits = {}
        for name, srv in (("a", a), ("b", b)):
            _, hdrs, _ = https(srv, "GET", "/revocations?since=0")
            waits[name] = {"n": int(hdrs["twoway-crl-number"]), "out": {}}
            waits[name]["th"] = threading.Thread(
                target=held_answer, args=(srv, waits[name]["n"], waits[name]["out"]))
            waits[name]["th"].start()
        time.sleep(1)
        assert all(w["th"].is_alive() for w in waits.values()), "answered without news"
        where = a_pki.dir if revoke_through == "cli-on-a" else b_host.dir
        run(["ca", "revoke", "--dir", str(where), format(serial, "X")], check=True)
        for name, w in waits.items():
            w["th"].join(20)
            assert not w["th"].is_alive(), f"instance {name} not woken"
            status, hdrs, data = w["out"]["resp"]
            assert status == 200, name
            assert int(hdrs["twoway-crl-number"]) > w["n"], name
            crl = x509.load_der_x509_crl(data)
            assert crl.get_revoked_certificate_by_serial_number(serial), name
