"""Persistence behind a small interface: ``Store`` (``base``), SQLite by default.

``open_store(state_dir, policy, regions)`` opens ``STATE_DIR/edge.db``; with
``url="postgresql://..."`` it opens the PostgreSQL control plane (``postgres``).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from edge.core.ipam import IpamPolicy
from edge.store.base import (
    ADMIN,
    SYSTEM,
    AuditEntry,
    Caller,
    CreatedApp,
    DeployResult,
    MachineEvent,
    Store,
    StoreSnapshot,
)
from edge.store.sqlite import DB_FILE, SqliteStore

__all__ = [
    "ADMIN",
    "DB_FILE",
    "SYSTEM",
    "AuditEntry",
    "Caller",
    "CreatedApp",
    "DeployResult",
    "MachineEvent",
    "SqliteStore",
    "Store",
    "StoreSnapshot",
    "open_store",
]


def open_store(
    state_dir: Path,
    policy: IpamPolicy,
    regions: Collection[str],
    *,
    url: str | None = None,
    node: str = "edge",
) -> Store:
    """The store in ``state_dir`` (created and migrated as needed), or, given a
    ``postgresql://`` ``url``, the shared control plane there (``node`` names this one)."""
    if url is not None:
        from edge.store.postgres import PostgresStore

        return PostgresStore(url, policy, regions, node=node)
    return SqliteStore.open(state_dir, policy, regions)
