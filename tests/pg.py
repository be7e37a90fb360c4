"""A private PostgreSQL for the tests: one server per session, one database per test.

The server is ``edge.cluster.pg.PrivateServer`` (what ``scripts/cluster`` and the lab
use), run as the ``postgres`` user when the tests run as root, on a free loopback port,
with its data in a temporary directory the tests own and remove. Without PostgreSQL's
programs the tests that need it skip, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cluster.pg import PrivateServer, find_bin_dir

_names = itertools.count(1)


def require_postgres() -> None:
    if find_bin_dir() is None:
        message = "PostgreSQL is not installed (apt-get install postgresql, or run .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {message}")
        pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PrivateServer]:
    require_postgres()
    # Not under pytest's tmp_path: its parents are private to this user, and the server
    # runs as `postgres` when the tests run as root.
    top = Path(tempfile.mkdtemp(prefix="edge-tests-pg-"))
    top.chmod(0o755)
    server = PrivateServer(top / "data").start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PrivateServer) -> str:
    """The URL of a new, empty database of this test."""
    if not pg_server.running():  # a test crashed it and did not restart it
        pg_server.start()
    return pg_server.create_database(f"t{os.getpid()}_{next(_names)}")
