"""Fixtures for twoway integration tests; helpers live in tests/testlib/twoway_testlib.py."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testlib"))

from twoway_testlib import Pki  # noqa: E402

# The suite runs as root on CI; the daemons refuse that without a user to switch to, unless
# told otherwise (test_privdrop.py checks the refusal and the switch themselves).
os.environ.setdefault("TWOWAY_ALLOW_ROOT", "1")
# Every peer is on loopback: a proxy set on the machine (enroll and renew follow HTTPS_PROXY,
# as curl does) must not stand between a test and its peer. Proxy tests set their own.
for _var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
             "NO_PROXY", "no_proxy"):
    os.environ.pop(_var, None)


@pytest.fixture
def data_dir(tmp_path):
    """A fresh path for a twoway data dir (not created: `ca init` makes it)."""
    return tmp_path / "data"


@pytest.fixture
def pki(tmp_path):
    """A throwaway CA for one test (ec:P-256, no passphrase)."""
    return Pki(tmp_path)


@pytest.fixture(scope="module")
def shared_pki(tmp_path_factory):
    """One CA shared by a module's tests, for the ones that only read or issue."""
    return Pki(tmp_path_factory.mktemp("shared-pki"))
