"""The PostgreSQL store: one control plane shared by several edge nodes.

It is the SQLite store's logic on another engine: the same statements (``sqlite_rows``,
``sqlite_writes``, ``sqlite_deploy``, run through ``PgConnection``), the same rules, the
same contract (``edge.store.base``), with the differences PostgreSQL needs:

- Every change is one transaction that first takes a transaction-scoped advisory lock,
  the cluster-wide equivalent of SQLite's ``BEGIN IMMEDIATE``: writes from every node
  are serialised, so an allocation's count of the org's addresses and its choice of a
  free one are exact (the unique index on active addresses still guards them).
- A transaction that changed something bumps the version and appends a row to
  ``changes`` (its id is the new version) and sends ``NOTIFY edge_changes`` before it
  commits: other nodes learn of it at once (``edge.cluster.feed``) and, after being
  disconnected, read what they missed from ``changes``.
- Reads are one REPEATABLE READ transaction (one consistent view).
- Connections come from a pool; when the database cannot be reached a call fails fast
  with ``StoreUnavailable`` (503) instead of hanging the API.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from edge.core.ipam import IpamPolicy
from edge.errors import Conflict, StartupError, StoreUnavailable
from edge.store.base import Caller, Now
from edge.store.pg_migrations import migrate
from edge.store.sql import SqlConn, SqlCursor
from edge.store.sqlite import SqliteStore
from edge.store.sqlite_writes import Rules, Tx

# The pool retries in the background while the database is away and would log each try;
# the change feed reports the outage once (edge.cluster.feed).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

WRITE_LOCK = 0x65646765  # "edge": the advisory lock every write transaction holds
CHANNEL = "edge_changes"
DML = ("INSERT", "UPDATE", "DELETE")


@functools.lru_cache(maxsize=512)
def to_pg(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host, port, db = info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname")
    return f"postgresql://{host}:{port}/{db or ''}"


class BoolAsInt(psycopg.adapt.Dumper):
    """Python booleans as 0/1, as sqlite3 sends them: the flags are INTEGER columns."""

    oid = psycopg.postgres.types["int4"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"

    def quote(self, obj: bool) -> bytes:
        return self.dump(obj)


def configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(bool, BoolAsInt)


class PgConnection:
    """A psycopg connection that speaks the store's SQL and counts the rows it changed."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.total_changes = 0

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> SqlCursor:
        cursor = self.raw.execute(to_pg(sql), parameters)
        if cursor.rowcount > 0 and sql.lstrip()[:6].upper() in DML:
            self.total_changes += cursor.rowcount
        return cursor


class PostgresStore(SqliteStore):
    """The shared store (``edge.store.base.Store`` states every method's contract)."""

    def __init__(
        self,
        url: str,
        policy: IpamPolicy,
        regions: Collection[str],
        *,
        node: str = "edge",
        connect_timeout: float = 3.0,
        pool_size: int = 4,
        clock: Callable[[], float] = time.time,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        # SqliteStore's methods need only these attributes and the overrides below.
        self.url = url
        self.where = redact(url)  # named in messages (no password)
        self.path = Path(self.where)
        self.policy = policy
        self.regions = frozenset(regions)
        self.node = node
        self._rules = Rules(policy, self.regions, entropy)
        self._clock = clock
        self._timeout = connect_timeout
        self.reachable = True  # set by the change feed: False fails calls at once
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "cursor_factory": psycopg.ClientCursor},
            configure=configure,
            check=ConnectionPool.check_connection,
            timeout=connect_timeout,
            name=f"edge-store-{node}",
            open=False,
        )
        self._open()

    def _open(self) -> None:
        """Migrate on a first connection of our own (its error is the clear one), then
        open the pool."""
        try:
            timeout = max(1, round(self._timeout))
            with psycopg.connect(self.url, autocommit=True, connect_timeout=timeout) as raw:
                configure(raw)
                migrate(raw, self.where)
        except psycopg.OperationalError as exc:
            raise StartupError(
                f"cannot reach the control plane database {self.where}: {first_line(exc)}; "
                "start PostgreSQL (scripts/cluster up) or check --store"
            ) from None
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close()

    # --- transactions --------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, with every failure to reach the database told as a 503."""
        if not self.reachable:
            raise StoreUnavailable(self._unreachable("is unreachable"))
        try:
            with self._pool.connection() as raw:
                yield raw
        except PoolTimeout:
            raise StoreUnavailable(self._unreachable("did not answer in time")) from None
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(
                f"a concurrent change conflicts with this one ({first_line(exc)}); retry"
            ) from None
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
            raise StoreUnavailable(self._unreachable(f"failed: {first_line(exc)}")) from None

    def _unreachable(self, what: str) -> str:
        return (
            f"the control plane database {self.where} {what}; this node keeps serving "
            "from its last state but cannot make changes now; retry when it is back"
        )

    @contextmanager
    def _write(self, by: Caller, now: Now, bump: bool = True) -> Iterator[Tx]:
        """One serialised write transaction; with ``bump`` (a change routing must see) a
        new version, its changes row and the NOTIFY when it changed anything."""
        with self._session() as raw, raw.transaction():
            conn = PgConnection(raw)
            conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            tx = Tx(conn, self._clock() if now is None else now, by)
            yield tx
            if bump and conn.total_changes:
                self._record_change(conn, tx)

    def _record_change(self, conn: PgConnection, tx: Tx) -> None:
        """The version, the changes row and the NOTIFY: all in the changing transaction."""
        row = conn.execute(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) "
            "WHERE key = 'version' RETURNING value"
        ).fetchone()
        version = int(row[0])
        conn.execute(
            "INSERT INTO changes (id, at, node, actor) VALUES (?, ?, ?, ?)",
            (version, tx.now, self.node, tx.by.actor),
        )
        conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(version)))

    @contextmanager
    def _read(self) -> Iterator[SqlConn]:
        with self._session() as raw, raw.transaction():
            raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield PgConnection(raw)

    # --- change tracking -----------------------------------------------------------------

    def changes_since(self, after: int, limit: int = 1000) -> tuple[tuple[int, float, str], ...]:
        """The changes committed after version ``after``: (id, at, node), oldest first."""
        with self._read() as conn:
            found = conn.execute(
                "SELECT id, at, node FROM changes WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return tuple((int(r[0]), float(r[1]), str(r[2])) for r in found)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
