"""A CA process killed in the middle of issuance never leaves an issued certificate without its
inventory row (issue 7), on SQLite and on PostgreSQL: the row is committed before any file is
written, so every certificate file on disk must be in the inventory, and the inventory stays
readable."""
import json
import random
import signal
import subprocess
import time

import pytest
from cryptography import x509

from pg_cluster import PgCluster, missing_reason
from twoway_testlib import run, twoway_bin

ROUNDS = 16


def kill_issuances(pki, out, env=None):
    """Start ROUNDS `ca issue` processes, SIGKILL each after a random moment of its run."""
    rng = random.Random(7)
    for i in range(ROUNDS):
        p = subprocess.Popen([twoway_bin(), "ca", "issue", "client", "k%d" % i, "--out", str(out),
                              "--dir", str(pki.dir)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.0, 0.04))  # where in the run the kill lands, not a wait
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)


def check_no_orphans(pki, out):
    listing = run(["ca", "list", "--json", "--dir", str(pki.dir)], check=True)
    serials = {row["serial"] for row in json.loads(listing.stdout)}
    certs = sorted(out.glob("k*.crt"))
    for path in certs:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        assert "%X" % cert.serial_number in serials, f"{path.name} has no inventory row"
    # The CA still works after the kills.
    assert pki.ca("issue", "client", "after", "--out", str(out)).returncode == 0
    return len(certs)


def test_killed_issuance_sqlite(pki, tmp_path):
    kill_issuances(pki, tmp_path)
    check_no_orphans(pki, tmp_path)


def test_killed_issuance_postgres(pki, tmp_path):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with PgCluster() as pg:
        uri = pg.create_database("killed")
        run(["ca", "migrate", "--from", "sqlite:%s" % pki.db, "--to", uri], check=True)
        pki.db.rename(pki.dir / "ca.db.migrated")
        with open(pki.ca_dir / "ca.conf", "a") as f:
            f.write("store = %s\n" % uri)
        kill_issuances(pki, tmp_path)
        check_no_orphans(pki, tmp_path)
