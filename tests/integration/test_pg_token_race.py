"""One-time tokens stay single use at scale (issue 16): 1,000 tokens, each sent twice at about
the same moment, once to each of two `ca serve` instances sharing one PostgreSQL inventory, by
two `twoway bench --est` generators walking the same token list in the same order (8 clients
each). Exactly 1,000 certificates come back and are in the inventory, one per name; each of
the other 1,000 requests is refused as a spent token (HTTP 401, "already used"), never as a
server error."""
import json
import subprocess

import pytest

from est_helpers import CaServer
from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import Pki, run, stop, twoway_bin

TOKENS = 1000
SERVE = ("--rate", "100000", "--burst", "100000")


@pytest.fixture
def pgpki(pg, tmp_path):  # noqa: F811
    pki = Pki(tmp_path / "ca")
    uri = pg.create_database("race")
    run(["ca", "migrate", "--from", "sqlite:%s" % pki.db, "--to", uri], check=True)
    pki.db.rename(pki.dir / "ca.db.migrated")
    with open(pki.ca_dir / "ca.conf", "a") as f:
        f.write("store = %s\n" % uri)
    return pki


def generator(srv, pki, tokens, issued):
    return subprocess.Popen([twoway_bin(), "bench", "--est", srv.url, "--ca", str(pki.chain),
                             "--tokens", str(tokens), "--clients", "8", "--timeout", "30s",
                             "--json", "--issued", str(issued)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_2000_requests_over_1000_tokens_on_two_instances(pgpki, tmp_path):
    tokens = tmp_path / "tokens.txt"
    pgpki.ca("token", "race", "--count", str(TOKENS), "--ttl", "1h", "--out", str(tokens),
             check=True)
    with CaServer(pgpki, *SERVE) as a, CaServer(pgpki, *SERVE) as b:
        gens = [generator(srv, pgpki, tokens, tmp_path / ("issued-%d" % i))
                for i, srv in enumerate((a, b))]
        try:
            outs = [g.communicate(timeout=300) for g in gens]
        finally:
            for g in gens:
                stop(g)
    results = [json.loads(out) for out, _ in outs]
    for r, (_, err) in zip(results, outs):
        assert r["started"] == TOKENS and r["ok"] + r["failed"] == TOKENS, (r, err)
        # Every refusal is a spent token, in the server's words; no 5xx, no timeout.
        assert set(r["errors"]) <= {"http-401"}, r
        if r["failed"]:
            assert "already used" in r["first_error"], r
    assert sum(r["ok"] for r in results) == TOKENS, results
    received = [(tmp_path / ("issued-%d" % i)).read_text().split() for i in range(2)]
    serials = {int(s, 16) for part in received for s in part}
    assert len(serials) == TOKENS
    rows = [row for row in json.loads(pgpki.ca("list", "--json", check=True).stdout)
            if row["name"].startswith("race-")]
    assert len(rows) == TOKENS
    assert {row["name"] for row in rows} == {"race-%d" % i for i in range(1, TOKENS + 1)}
    assert {int(row["serial"], 16) for row in rows} == serials
