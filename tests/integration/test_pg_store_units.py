"""The store's unit tests (tests/unit/store/) run once more, on PostgreSQL: every behaviour of
the SQLite store must hold on the PostgreSQL back end. The unit binaries run their SQLite pass
and, with TWOWAY_TEST_PG_URI set to this module's throwaway cluster, the PostgreSQL pass."""
import os
import subprocess
from pathlib import Path

import pytest

from pg_fixture import pg  # noqa: F401  (the fixture, found by name)
from twoway_testlib import twoway_bin


# test_open is about the SQLite file itself (mode 0600, WAL, corruption, disk full);
# opening PostgreSQL (bad URIs, masked passwords, reconnecting) is in test_copy.
SQLITE_ONLY = {"unit_store_test_open"}


def unit_binaries():
    found = sorted((Path(twoway_bin()).parent / "tests").glob("unit_store_test_*"))
    return [p for p in found if os.access(p, os.X_OK) and p.name not in SQLITE_ONLY]


def test_unit_binaries_exist():
    assert unit_binaries(), "no unit_store_test_* next to " + twoway_bin()


@pytest.mark.parametrize("binary", unit_binaries(), ids=lambda p: p.name)
def test_store_units_on_postgresql(pg, binary):
    env = dict(os.environ, TWOWAY_TEST_PG_URI=pg.uri)
    r = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "(postgresql)" in out or "postgresql" in out.lower(), out[-2000:]
    assert "TWOWAY_TEST_PG_URI is not set" not in out
