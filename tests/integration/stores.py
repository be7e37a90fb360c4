"""The store contract suite's backends: SQLite in the test's directory, or PostgreSQL in
a database of its own on the session's private server (``tests.pg``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.config.regions import default_catalogue
from edge.core.ipam import IpamPolicy
from edge.store import SqliteStore
from edge.store.postgres import PostgresStore

REGIONS = default_catalogue().codes()
BACKENDS = ("sqlite", "postgresql")


def open_location(location: str, **policy: Any) -> SqliteStore:
    """The store at ``location``: a ``postgresql://`` URL, else an SQLite file path."""
    if location.startswith("postgresql://"):
        return PostgresStore(location, IpamPolicy(**policy), REGIONS)
    return SqliteStore(Path(location), IpamPolicy(**policy), REGIONS)


@dataclass(frozen=True)
class StoreAt:
    """Where this test's store lives; ``open`` it as often as the test restarts."""

    kind: str
    location: str

    def open(self, **policy: Any) -> SqliteStore:
        return open_location(self.location, **policy)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> StoreAt:
    if request.param == "postgresql":
        return StoreAt("postgresql", request.getfixturevalue("pg_url"))
    return StoreAt("sqlite", str(tmp_path / "edge.db"))
