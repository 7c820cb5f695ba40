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
