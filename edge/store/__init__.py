"""Persistence behind a small interface: ``Store`` (``base``), SQLite by default.

``open_store(state_dir, policy, regions)`` opens ``STATE_DIR/edge.db``.
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


def open_store(state_dir: Path, policy: IpamPolicy, regions: Collection[str]) -> Store:
    """The store in ``state_dir`` (created and migrated as needed)."""
    return SqliteStore.open(state_dir, policy, regions)
