"""The module-scoped pytest fixture `pg`: a throwaway PostgreSQL cluster (pg_cluster.py) for
every test of a file, or a skip that says why PostgreSQL is not available.

    from pg_fixture import pg  # noqa: F401  (pytest finds the fixture by its name)
"""
import pytest

from pg_cluster import PgCluster, missing_reason


@pytest.fixture(scope="module")
def pg():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with PgCluster() as cluster:
        yield cluster
