"""A CA process killed in the middle of issuance never leaves an issued certificate without its
inventory row (issue 7), on SQLite and on PostgreSQL: the row is committed before any file is
written, so every certificate file on disk must be in the inventory, and the inventory stays
readable. The same under load (issue 16): `ca serve` SIGKILLed while `twoway bench --est`
enrolls with 8 clients at once; every certificate the generator received an answer for must
have its row after the kill (the row is committed before the answer leaves)."""
import json
import random
import signal
import subprocess
import time

import pytest
from cryptography import x509

from est_helpers import CaServer
from pg_cluster import PgCluster, missing_reason
from twoway_testlib import run, stop, twoway_bin

ROUNDS = 16
LOAD_ROUNDS = 3      # ca serve started and killed this many times under load
LOAD_TOKENS = 150    # enrollments offered per round (most are cut off by the kill)


def move_to_postgres(pki, uri):
    run(["ca", "migrate", "--from", "sqlite:%s" % pki.db, "--to", uri], check=True)
    pki.db.rename(pki.dir / "ca.db.migrated")
    with open(pki.ca_dir / "ca.conf", "a") as f:
        f.write("store = %s\n" % uri)


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


def kill_serve_under_load(pki, tmp_path):
    """Per round: fresh tokens, `ca serve`, the C generator enrolling with 8 clients, and a
    SIGKILL of the server at a random moment after its first issuance. Returns the serials the
    generator received over all rounds."""
    rng = random.Random(16)
    received = []
    cut = 0
    for rnd in range(LOAD_ROUNDS):
        tokens = tmp_path / ("tokens%d.txt" % rnd)
        pki.ca("token", "load%d" % rnd, "--count", str(LOAD_TOKENS), "--ttl", "1h", "--out",
               str(tokens), check=True)
        srv = CaServer(pki, "--rate", "100000", "--burst", "100000")
        issued = tmp_path / ("issued%d.txt" % rnd)
        gen = subprocess.Popen([twoway_bin(), "bench", "--est", srv.url, "--ca", str(pki.chain),
                                "--tokens", str(tokens), "--clients", "8", "--timeout", "10s",
                                "--json", "--issued", str(issued)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            srv.wait_log(r'"issued [0-9A-F]+', timeout=60)  # the generator's window is open
            time.sleep(rng.uniform(0.0, 0.3))  # where the kill lands, not a wait
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(timeout=10)
            out, err = gen.communicate(timeout=120)
        finally:
            stop(gen)
            stop(srv.proc)
        result = json.loads(out)
        got = issued.read_text().split()
        assert len(got) == result["ok"], (result, err)
        assert result["ok"] + result["failed"] == result["started"] <= LOAD_TOKENS, result
        received += got
        cut += result["failed"]
    assert cut > 0, "no kill landed while enrollments were in flight: nothing was tested"
    return received


def check_received_have_rows(pki, received):
    listing = run(["ca", "list", "--json", "--dir", str(pki.dir)], check=True)
    rows = {int(row["serial"], 16) for row in json.loads(listing.stdout)}
    assert received, "the generator got no certificate before any kill"
    missing = [s for s in received if int(s, 16) not in rows]
    assert not missing, f"{len(missing)} answered certificates have no inventory row: {missing}"
    assert len(set(received)) == len(received)


def test_killed_serve_under_load_sqlite(pki, tmp_path):
    check_received_have_rows(pki, kill_serve_under_load(pki, tmp_path))
    assert pki.ca("issue", "client", "after", "--out", str(tmp_path)).returncode == 0


def test_killed_serve_under_load_postgres(pki, tmp_path):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with PgCluster() as pg:
        uri = pg.create_database("killedload")
        move_to_postgres(pki, uri)
        check_received_have_rows(pki, kill_serve_under_load(pki, tmp_path))


def test_killed_issuance_sqlite(pki, tmp_path):
    kill_issuances(pki, tmp_path)
    check_no_orphans(pki, tmp_path)


def test_killed_issuance_postgres(pki, tmp_path):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with PgCluster() as pg:
        uri = pg.create_database("killed")
        move_to_postgres(pki, uri)
        kill_issuances(pki, tmp_path)
        check_no_orphans(pki, tmp_path)
