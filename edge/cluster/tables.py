"""The tables the nodes (or the workers of one node) share outside the change feed:
who is up (``nodes``), health verdicts (``machine_health``) and load (``machine_load``).

One set of statements (``?`` placeholders, SQL both engines share) on two homes:
``PgSharedTables`` in the PostgreSQL control plane (schema: ``pg_migrations`` v2), and
``SqliteSharedTables`` in ``STATE_DIR/workers.db`` for the workers of one node on the
SQLite store (scratch state: made at start, no migrations). These writes bump no
version and send no NOTIFY: they are not changes to routing's configuration.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.errors import StoreUnavailable
from edge.store.postgres import PgConnection, PostgresStore
from edge.store.sql import SqlConn

Key = tuple[str, str, int]  # (app, machine_id, internal_port)
HealthRow = tuple[str, str, str, int, bool, float]  # node, app, machine, port, passing, at
LoadRow = tuple[str, str, str, int, int, float]  # node, app, machine, port, count, at


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One edge node (or worker) as the shared tables last heard of it."""

    name: str
    pops: tuple[str, ...]
    api: str
    started_at: float
    last_seen: float
    applied_version: int
    serving: str  # a short summary: "12 listeners, 3 apps"


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one node reads back when it publishes: everyone's nodes, the others' health
    verdicts and non-zero load."""

    nodes: tuple[NodeRow, ...]
    health: tuple[HealthRow, ...]
    load: tuple[LoadRow, ...]


class SharedTables(Protocol):
    def heartbeat(self, node: NodeRow) -> None: ...

    def nodes(self) -> tuple[NodeRow, ...]: ...

    def exchange(
        self, node: str, now: float, verdicts: dict[Key, bool], load: dict[Key, int]
    ) -> Exchange: ...


# --- the statements ----------------------------------------------------------------------

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS nodes (
        name TEXT PRIMARY KEY, pops TEXT NOT NULL, api TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
        applied_version BIGINT NOT NULL, serving TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS machine_health (
        node TEXT NOT NULL, app TEXT NOT NULL, machine_id TEXT NOT NULL,
        internal_port INTEGER NOT NULL, passing INTEGER NOT NULL,
        checked_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (node, app, machine_id, internal_port))""",
    """CREATE TABLE IF NOT EXISTS machine_load (
        node TEXT NOT NULL, app TEXT NOT NULL, machine_id TEXT NOT NULL,
        internal_port INTEGER NOT NULL, concurrency INTEGER NOT NULL,
        published_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (node, app, machine_id, internal_port))""",
)
_UPSERT_NODE = (
    "INSERT INTO nodes (name, pops, api, started_at, last_seen, applied_version, serving) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET pops = excluded.pops, "
    "api = excluded.api, started_at = excluded.started_at, last_seen = excluded.last_seen, "
    "applied_version = excluded.applied_version, serving = excluded.serving"
)
_UPSERT_HEALTH = (
    "INSERT INTO machine_health (node, app, machine_id, internal_port, passing, checked_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node, app, machine_id, internal_port) "
    "DO UPDATE SET passing = excluded.passing, checked_at = excluded.checked_at"
)
_UPSERT_LOAD = (
    "INSERT INTO machine_load (node, app, machine_id, internal_port, concurrency, "
    "published_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node, app, machine_id, "
    "internal_port) DO UPDATE SET concurrency = excluded.concurrency, "
    "published_at = excluded.published_at"
)


def write_heartbeat(conn: SqlConn, node: NodeRow) -> None:
    pops = ",".join(node.pops)
    conn.execute(
        _UPSERT_NODE,
        (node.name, pops, node.api, node.started_at, node.last_seen, node.applied_version,
         node.serving),
    )  # fmt: skip


def read_nodes(conn: SqlConn) -> tuple[NodeRow, ...]:
    found = conn.execute(
        "SELECT name, pops, api, started_at, last_seen, applied_version, serving "
        "FROM nodes ORDER BY name"
    ).fetchall()
    return tuple(
        NodeRow(r[0], tuple(p for p in r[1].split(",") if p), r[2], r[3], r[4], int(r[5]), r[6])
        for r in found
    )


def publish_and_read(
    conn: SqlConn, node: str, now: float, verdicts: dict[Key, bool], load: dict[Key, int]
) -> Exchange:
    for key, ok in verdicts.items():
        conn.execute(_UPSERT_HEALTH, (node, *key, ok, now))
    for key, count in load.items():
        conn.execute(_UPSERT_LOAD, (node, *key, count, now))
    health = conn.execute(
        "SELECT node, app, machine_id, internal_port, passing, checked_at "
        "FROM machine_health WHERE node != ?",
        (node,),
    ).fetchall()
    loads = conn.execute(
        "SELECT node, app, machine_id, internal_port, concurrency, published_at "
        "FROM machine_load WHERE node != ? AND concurrency > 0",
        (node,),
    ).fetchall()
    return Exchange(
        read_nodes(conn),
        tuple((r[0], r[1], r[2], int(r[3]), bool(r[4]), float(r[5])) for r in health),
        tuple((r[0], r[1], r[2], int(r[3]), int(r[4]), float(r[5])) for r in loads),
    )


# --- the two homes -----------------------------------------------------------------------


class _Tables:
    """The three calls, each one transaction of the home's ``_tx``."""

    def _tx(self) -> AbstractContextManager[SqlConn]:
        raise NotImplementedError

    def heartbeat(self, node: NodeRow) -> None:
        with self._tx() as conn:
            write_heartbeat(conn, node)

    def nodes(self) -> tuple[NodeRow, ...]:
        with self._tx() as conn:
            return read_nodes(conn)

    def exchange(
        self, node: str, now: float, verdicts: dict[Key, bool], load: dict[Key, int]
    ) -> Exchange:
        with self._tx() as conn:
            return publish_and_read(conn, node, now, verdicts, load)


class PgSharedTables(_Tables):
    """The shared tables in the PostgreSQL control plane, on the store's pool."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    @contextmanager
    def _tx(self) -> Iterator[SqlConn]:
        with self.store._session() as raw, raw.transaction():
            yield PgConnection(raw)


class SqliteSharedTables(_Tables):
    """The shared tables of one node's workers: ``STATE_DIR/workers.db``, scratch state."""

    FILE = "workers.db"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self._tx() as conn:
            for statement in SCHEMA:
                conn.execute(statement)

    @classmethod
    def fresh(cls, state_dir: Path) -> SqliteSharedTables:
        """Start over: what earlier workers published means nothing now."""
        for suffix in ("", "-wal", "-shm"):
            (state_dir / (cls.FILE + suffix)).unlink(missing_ok=True)
        return cls(state_dir / cls.FILE)

    @contextmanager
    def _tx(self) -> Iterator[SqlConn]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")  # scratch: republished every 0.5 s
            self._local.conn = conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"cannot use {self.path}: {exc}") from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
