"""The CA on PostgreSQL (issue 7): two `ca serve` instances sharing one database.

A throwaway cluster (tests/testlib/pg_cluster.py) runs for the module. Each test migrates a
fresh SQLite CA into its own database with `twoway ca migrate`, then points the CA at it with
`store = URI` in ca.conf (the SQLite file is moved away, so nothing can fall back to it).
Covers: exactly one enrollment per token across two instances, strictly increasing CRL numbers
with every revoked serial in the newest CRL, OCSP answers that agree across instances, a
database restart (503 + Retry-After while down, CRL still served, recovery after), and a
migration round trip back to SQLite with the same checksums.
"""
import base64
import concurrent.futures
import hashlib
import itertools
import json
import re
import time
import subprocess

import pytest
from cryptography import x509

from est_helpers import CaServer, b64_lines, https, make_csr_der, make_key, token
from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import run, twoway_bin

_db_names = itertools.count(1)


def migrate(src, dst, check=True):
    return run(["ca", "migrate", "--from", src, "--to", dst], check=check)


@pytest.fixture
def pgpki(pg, pki):
    """pki with its inventory moved into a fresh PostgreSQL database."""
    uri = pg.create_database("ca%d" % next(_db_names))
    migrate("sqlite:%s" % pki.db, uri)
    pki.db.rename(pki.dir / "ca.db.migrated")
    with open(pki.ca_dir / "ca.conf", "a") as f:
        f.write("store = %s\n" % uri)
    pki.uri = uri
    return pki


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def enroll_raw(server, name, tok):
    der = make_csr_der(make_key(), name)
    status, hdrs, body = https(server, "POST", "/.well-known/est/simpleenroll",
                               body=b64_lines(der),
                               headers={"Content-Type": "application/pkcs10",
                                        "Authorization": basic(name, tok)})
    return status, hdrs, body


def crl_of(server):
    status, _, body = https(server, "GET", "/crl")
    assert status == 200
    crl = x509.load_der_x509_crl(body)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number, {format(r.serial_number, "X") for r in crl}


def ocsp_status(pki, server, cert_path):
    r = subprocess.run(["openssl", "ocsp", "-issuer", str(pki.intermediate), "-cert",
                        str(cert_path), "-url", server.url + "/ocsp", "-CAfile", str(pki.chain),
                        "-VAfile", str(pki.ocsp)], capture_output=True, text=True, timeout=20)
    m = re.search(r": (good|revoked|unknown)", r.stdout)
    assert m, r.stdout + r.stderr
    return m.group(1)


def test_store_is_postgres_and_sqlite_file_unused(pgpki):
    r = pgpki.ca("list", "--json", check=True)
    assert "twoway-ca" in r.stdout or r.stdout.strip().startswith("[")
    assert not pgpki.db.exists()


def test_two_servers_50_enrollments_25_tokens(pgpki):
    tokens = [(f"dev{i}", token(pgpki, f"dev{i}")[0]) for i in range(25)]
    with CaServer(pgpki) as a, CaServer(pgpki) as b:
        jobs = [(srv, name, tok) for name, tok in tokens for srv in (a, b)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda j: enroll_raw(*j), jobs))
    ok = [r for r in results if r[0] == 200]
    assert len(ok) == 25, [r[0] for r in results]
    refused = [r for r in results if r[0] != 200]
    assert all(400 <= r[0] < 500 for r in refused), [r[0] for r in refused]
    # Exactly one certificate per name in the shared inventory.
    listed = pgpki.ca("list", "--json", check=True).stdout
    for name, _ in tokens:
        assert listed.count('"%s"' % name) >= 1
    names = re.findall(r'"name":\s*"(dev\d+)"', listed)
    assert sorted(names) == sorted(n for n, _ in tokens)


def test_parallel_revocations_and_ocsp_across_servers(pgpki):
    certs = [pgpki.issue_client(f"user{i}") for i in range(8)]
    keep = pgpki.issue_client("keeper")
    with CaServer(pgpki) as a, CaServer(pgpki) as b:
        before, _ = crl_of(a)
        procs = [subprocess.Popen([twoway_bin(), "ca", "revoke", c.serial, "--dir", str(pgpki.dir)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in certs]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        numbers = sorted(int(m) for o in outs for m in re.findall(r"\(number (\d+)\)", o))
        assert len(numbers) == len(set(numbers)), outs
        for srv in (a, b):
            number, serials = crl_of(srv)
            assert number > before
            # The servers also publish CRLs of their own while the revocations land (an
            # inventory ahead of the CRL file makes one), so the newest CRL may carry a number
            # no `ca revoke` printed; it is never older than any of theirs.
            if numbers:
                assert number >= max(numbers)
            assert {c.serial.upper() for c in certs} <= serials
            for c in certs[:3]:
                assert ocsp_status(pgpki, srv, c.cert) == "revoked"
            assert ocsp_status(pgpki, srv, keep.cert) == "good"
        # A revocation made through the CLI shows at once on both OCSP responders.
        pgpki.revoke("keeper")
        assert ocsp_status(pgpki, a, keep.cert) == "revoked"
        assert ocsp_status(pgpki, b, keep.cert) == "revoked"


def ocsp_raw(pki, server, cert_path):
    r = subprocess.run(["openssl", "ocsp", "-issuer", str(pki.intermediate), "-cert",
                        str(cert_path), "-url", server.url + "/ocsp", "-CAfile", str(pki.chain),
                        "-VAfile", str(pki.ocsp)], capture_output=True, text=True, timeout=20)
    return r.stdout + r.stderr


def test_database_restart(pg, pgpki):
    t1 = token(pgpki, "before")[0]
    t2 = token(pgpki, "during")[0]
    t3 = token(pgpki, "after")[0]
    asked = pgpki.issue_client("asked")      # its OCSP status is asked before the outage
    revoked = pgpki.issue_client("revoked")  # on the CRL
    silent = pgpki.issue_client("silent")    # never asked about: nothing to answer from
    pgpki.revoke(revoked.serial)
    with CaServer(pgpki) as srv:
        assert enroll_raw(srv, "before", t1)[0] == 200
        assert ocsp_status(pgpki, srv, asked.cert) == "good"
        crl_before = crl_of(srv)
        pg.stop()
        try:
            status, hdrs, body = enroll_raw(srv, "during", t2)
            assert status == 503, body
            assert int(hdrs["retry-after"]) > 0
            assert crl_of(srv) == crl_before  # the CRL is still served from the cache
            # OCSP keeps answering, signed and with the nonce, from what it knew.
            assert ocsp_status(pgpki, srv, asked.cert) == "good"
            assert ocsp_status(pgpki, srv, revoked.cert) == "revoked"
            assert "trylater" in ocsp_raw(pgpki, srv, silent.cert).lower()
        finally:
            pg.start()
        # Back: the same server reconnects; the token refused during the outage still works.
        assert enroll_raw(srv, "during", t2)[0] == 200
        assert enroll_raw(srv, "after", t3)[0] == 200


def make_requests(pki):
    """Enrollment requests in every state: waiting, approved with its certificate made (and a
    lifetime), rejected with a reason."""
    ders = {n: make_csr_der(make_key(), n, ["dns:%s.example" % n]) for n in ("wait", "ok", "no")}
    ids = {n: hashlib.sha256(d).hexdigest() for n, d in ders.items()}
    post = lambda srv, der: https(srv, "POST", "/.well-known/est/simpleenroll",
                                  body=b64_lines(der), headers={"Content-Type": "application/pkcs10"})
    with CaServer(pki, "--approval", "manual") as srv:
        for der in ders.values():
            assert post(srv, der)[0] == 202
        pki.ca("approve", ids["ok"][:12], "--days", "5", check=True)
        pki.ca("reject", ids["no"][:12], "--reason", "not ours", check=True)
        assert post(srv, ders["ok"])[0] == 200
    return ids


def pending_all(pki, store=None):
    env = {"TWOWAY_STORE": store} if store else None
    return json.loads(pki.ca("pending", "--all", "--json", env=env, check=True).stdout)


def test_migration_round_trip(pg, pki, tmp_path):
    pki.issue_client("alice")
    bob = pki.issue_client("bob")
    pki.revoke(bob.serial)
    token(pki, "carol")
    ids = make_requests(pki)
    uri = pg.create_database("round%d" % next(_db_names))
    there = migrate("sqlite:%s" % pki.db, uri).stdout
    back_db = tmp_path / "back.db"
    back = migrate(uri, "sqlite:%s" % back_db).stdout
    sums = lambda text: re.findall(r"^\s+(\w+)\s+(\d+) rows\s+sha256 ([0-9a-f]{64})$", text, re.M)
    assert sums(there) and sums(there) == sums(back)
    assert [t for t, _, _ in sums(there)] == ["certs", "tokens", "audit", "pending_requests",
                                               "crl_counter"]
    assert ("pending_requests", "3") in [(t, n) for t, n, _ in sums(there)]
    assert "verified" in back
    # Every request, in every state, the same in all three stores.
    before = pending_all(pki)
    assert {r["state"] for r in before} == {"pending", "approved", "rejected"}
    by_id = {r["id"]: r for r in before}
    assert by_id[ids["ok"]]["serial"] and by_id[ids["no"]]["reason"] == "not ours"
    assert "decided_at" not in by_id[ids["wait"]]
    assert pending_all(pki, uri) == before
    assert pending_all(pki, "sqlite:%s" % back_db) == before
    # Into a non-empty target: refused, nothing changed.
    again = migrate("sqlite:%s" % pki.db, uri, check=False)
    assert again.returncode == 1
    assert "not empty" in again.stderr
    # The copy is usable by the CLI: same rows listed from both stores.
    a = pki.ca("list", "--json", check=True).stdout
    b = pki.ca("list", "--json", "--store", "sqlite:%s" % back_db, check=True).stdout
    assert a == b
    missing = migrate("sqlite:%s" % (tmp_path / "nope.db"), uri, check=False)
    assert missing.returncode == 1 and "no inventory" in missing.stderr


def test_separate_hosts_serve_the_newest_crl(pgpki, tmp_path):
    """Two CA hosts: each its own copy of the CA directory, one shared database. A revocation
    made on one host is in the other host's CRL at its next request (and in its OCSP at once)."""
    import shutil
    other = tmp_path / "host-b"
    shutil.copytree(pgpki.dir, other)
    victim = pgpki.issue_client("victim")
    with CaServer(pgpki) as a:
        b_proc = CaServer.__new__(CaServer)
        b_pki = type("P", (), {})()
        b_pki.dir, b_pki.chain = other, pgpki.chain
        CaServer.__init__(b_proc, b_pki)
        with b_proc as b:
            before, _ = crl_of(b)
            pgpki.revoke(victim.serial)  # on host A's directory
            assert ocsp_status(pgpki, b, victim.cert) == "revoked"
            deadline = time.monotonic() + 5
            while True:
                number, serials = crl_of(b)
                if victim.serial.upper() in serials or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert victim.serial.upper() in serials
            assert number > before


def test_init_straight_into_postgres(pg, tmp_path):
    uri = pg.create_database("init%d" % next(_db_names))
    d = tmp_path / "data"
    r = run(["ca", "init", "--dir", d, "--name", "PG CA", "--store", uri], check=True)
    assert "SHA256" in r.stdout
    assert not (d / "ca.db").exists()
    assert "store = %s" % uri in (d / "ca" / "ca.conf").read_text()
    run(["ca", "issue", "client", "alice", "--dir", d, "--out", tmp_path / "out"], check=True)
    listed = run(["ca", "list", "--json", "--dir", d], check=True).stdout
    assert '"alice"' in listed
    # A second CA into the same database would mix two inventories: refused.
    again = run(["ca", "init", "--dir", tmp_path / "other", "--name", "Other",
                 "--store", uri], check=False)
    assert again.returncode == 1
    assert "already holds certificates" in again.stderr
    # TWOWAY_STORE chooses the store too, and --store wins over it.
    env_run = run(["ca", "list", "--json", "--dir", d], env={"TWOWAY_STORE": uri}, check=True)
    assert '"alice"' in env_run.stdout
    bad = run(["ca", "list", "--dir", d, "--store", "sqlite:%s" % (tmp_path / "x" / "no.db")],
              env={"TWOWAY_STORE": uri})
    assert bad.returncode == 1
    assert run(["ca", "list", "--dir", d, "--store"]).returncode == 2
