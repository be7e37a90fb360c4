"""The SQLite store: ``STATE_DIR/edge.db`` in WAL mode, ``synchronous=FULL``.

Every change is one ``BEGIN IMMEDIATE`` transaction: it takes the database's write
lock first (waiting up to ``busy_timeout``), reads what the rules need, and commits
before returning. So allocations from several threads or processes are serialized,
never hand out one address twice (a unique index on active dedicated addresses
guards it too) and never pass an org's limit; a failure rolls everything back.
Each thread gets its own connection. The statements live in ``sqlite_rows`` (reads),
``sqlite_writes`` and ``sqlite_deploy``; SQLite's own failures (busy, disk full, I/O)
leave this class as ``StoreUnavailable`` (``sqlite_errors``).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from edge.config.model import AppSpec, MachineSpec, ServiceSpec
from edge.core import ip_moves, ipam
from edge.core.apps import AppRecord, Machine, MachineState, Org, check_slug, parse_machine_state
from edge.core.ipam import AppRef, IpamPolicy, IpAssignment, IpType
from edge.errors import Conflict, NotFound
from edge.store import sqlite_rows as rows
from edge.store import sqlite_writes as writes
from edge.store.base import (
    SYSTEM,
    AuditEntry,
    Caller,
    CreatedApp,
    DeployResult,
    MachineEvent,
    Now,
    OrgScope,
    StoreSnapshot,
)
from edge.store.migrations import migrate
from edge.store.sql import SqlConn
from edge.store.sqlite_deploy import deploy_app
from edge.store.sqlite_errors import store_errors
from edge.store.sqlite_writes import Rules, Tx

DB_FILE = "edge.db"


def move_target(tx: Tx, app: rows.StoredApp) -> ip_moves.MoveTarget:
    record = app.record
    return ip_moves.MoveTarget(
        record.name, record.org, record.services, rows.app_ips(tx.conn, app.id)
    )


class SqliteStore:
    """The embedded store (``edge.store.base.Store`` states every method's contract)."""

    def __init__(
        self,
        path: Path,
        policy: IpamPolicy,
        regions: Collection[str],
        *,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.path = path
        self.policy = policy
        self.regions = frozenset(regions)
        self._rules = Rules(policy, self.regions, entropy)
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        with self._errors():
            migrate(self._conn(), str(path))

    @classmethod
    def open(cls, state_dir: Path, policy: IpamPolicy, regions: Collection[str]) -> SqliteStore:
        """The store in ``state_dir`` (which must exist), created and migrated if needed."""
        return cls(state_dir / DB_FILE, policy, regions)

    # --- connections and transactions ----------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._connections.append(conn)
        self._local.conn = conn
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _discard(self, conn: sqlite3.Connection) -> None:
        """Forget a connection that may be left mid-transaction; the next call reconnects."""
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        self._local.conn = None
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def _errors(self) -> AbstractContextManager[None]:
        return store_errors(self.path, self._busy_timeout)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._discard(conn)

    @contextmanager
    def _write(self, by: Caller, now: Now, bump: bool = True) -> Iterator[Tx]:
        """A BEGIN IMMEDIATE transaction that commits (bumping the version if it changed
        anything and ``bump``) or rolls back."""
        with self._errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            changes = conn.total_changes
            try:
                yield Tx(conn, self._clock() if now is None else now, by)
                if bump and conn.total_changes != changes:
                    conn.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'"
                    )
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise

    @contextmanager
    def _read(self) -> Iterator[SqlConn]:
        """A read transaction: every query in it sees the same committed state."""
        with self._errors():
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    # --- change tracking -----------------------------------------------------------------

    def version(self) -> int:
        with self._read() as conn:
            return rows.read_version(conn)

    def snapshot(self) -> StoreSnapshot:
        with self._read() as conn:
            return rows.read_snapshot(conn)

    # --- tokens and orgs -----------------------------------------------------------------

    def admin_token_hash(self) -> str | None:
        with self._read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'admin_token'").fetchone()
        return None if row is None else str(row[0])

    def set_admin_token_hash(self, token_hash: str, *, by: Caller, now: Now = None) -> None:
        with self._write(by, now) as tx:
            tx.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('admin_token', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (token_hash,),
            )
            tx.audit("admin.token", "set the admin token", org=None)

    def create_org(self, slug: str, token_hash: str, *, by: Caller, now: Now = None) -> Org:
        check_slug(slug)
        with self._write(by, now) as tx:
            if tx.conn.execute("SELECT 1 FROM orgs WHERE slug = ?", (slug,)).fetchone():
                raise Conflict(f"org {slug!r} already exists")
            tx.conn.execute(
                "INSERT INTO orgs (slug, token_hash, created_at) VALUES (?, ?, ?)",
                (slug, token_hash, int(tx.now)),
            )
            tx.audit("org.create", f"created org {slug}", org=slug, target=slug)
            return Org(slug, int(tx.now))

    def get_org(self, slug: str) -> Org:
        with self._read() as conn:
            sql = "SELECT slug, created_at FROM orgs WHERE slug = ?"
            row = conn.execute(sql, (slug,)).fetchone()
        if row is None:
            raise NotFound(f"org {slug!r} not found")
        return Org(row[0], int(row[1]))

    def list_orgs(self) -> tuple[Org, ...]:
        with self._read() as conn:
            found = conn.execute("SELECT slug, created_at FROM orgs ORDER BY slug").fetchall()
        return tuple(Org(r[0], int(r[1])) for r in found)

    def org_by_token_hash(self, token_hash: str) -> Org | None:
        with self._read() as conn:
            sql = "SELECT slug, created_at FROM orgs WHERE token_hash = ?"
            row = conn.execute(sql, (token_hash,)).fetchone()
        return None if row is None else Org(row[0], int(row[1]))

    def set_org_token_hash(
        self, slug: str, token_hash: str, *, by: Caller, now: Now = None
    ) -> None:
        with self._write(by, now) as tx:
            sql = "UPDATE orgs SET token_hash = ? WHERE slug = ?"
            if tx.conn.execute(sql, (token_hash, slug)).rowcount == 0:
                raise NotFound(f"org {slug!r} not found")
            tx.audit("org.token", "replaced the org token", org=slug, target=slug)

    # --- apps ----------------------------------------------------------------------------

    def create_app(
        self,
        spec: AppSpec,
        *,
        public_ips: bool = True,
        ipv6: bool = False,
        by: Caller,
        now: Now = None,
    ) -> CreatedApp:
        types = ipam.initial_types(public_ips=public_ips, ipv6=ipv6)
        ipam.resolve_region(spec.primary_region, spec.primary_region, self.regions)
        with self._write(by, now) as tx:
            return writes.create_app(tx, self._rules, spec, types)

    def deploy_app(
        self, spec: AppSpec, *, by: Caller, now: Now = None, public_ips: bool = True
    ) -> DeployResult:
        with self._write(by, now) as tx:
            return deploy_app(tx, self._rules, spec, public_ips=public_ips)

    def get_app(self, name: str, *, org: OrgScope = None) -> AppRecord:
        with self._read() as conn:
            return rows.find_app(conn, name, org).record

    def list_apps(self, *, org: OrgScope = None) -> tuple[AppRecord, ...]:
        with self._read() as conn:
            return rows.list_live_apps(conn, org)

    def update_services(
        self, name: str, services: tuple[ServiceSpec, ...], *, by: Caller, now: Now = None
    ) -> AppRecord:
        with self._write(by, now) as tx:
            app = rows.find_app(tx.conn, name, tx.by.org)
            return writes.set_services(tx, app, services).record

    def destroy_app(self, name: str, *, by: Caller, now: Now = None) -> tuple[IpAssignment, ...]:
        with self._write(by, now) as tx:
            app = rows.find_app(tx.conn, name, tx.by.org)
            released = rows.app_ips(tx.conn, app.id)
            for assignment in released:
                writes.release(tx, app, assignment, "the app was destroyed")
            tx.conn.execute("DELETE FROM machines WHERE app_id = ?", (app.id,))
            tx.conn.execute("UPDATE apps SET destroyed_at = ? WHERE id = ?", (tx.now, app.id))
            tx.audit_app(app, "app.destroy", name, f"destroyed app, released {len(released)} IP(s)")
        return released

    # --- machines ------------------------------------------------------------------------

    def list_machines(self, app: str, *, org: OrgScope = None) -> tuple[Machine, ...]:
        with self._read() as conn:
            return rows.app_machines(conn, rows.find_app(conn, app, org).id)

    def add_machine(self, app: str, spec: MachineSpec, *, by: Caller, now: Now = None) -> Machine:
        with self._write(by, now) as tx:
            found = rows.find_app(tx.conn, app, tx.by.org)
            return writes.insert_machine(tx, self._rules, found, spec)

    def set_machine_state(
        self,
        app: str,
        machine_id: str,
        state: MachineState,
        *,
        by: Caller,
        now: Now = None,
        reason: str | None = None,
    ) -> Machine:
        state = parse_machine_state(state)
        with self._write(by, now) as tx:
            found = rows.find_app(tx.conn, app, tx.by.org)
            return writes.set_machine_state(tx, found, machine_id, state, reason)

    def record_machine_event(
        self,
        app: str,
        machine_id: str,
        kind: str,
        detail: str = "",
        *,
        exit_code: int | None = None,
        now: Now = None,
    ) -> None:
        with self._write(SYSTEM, now, bump=False) as tx:
            found = rows.find_app(tx.conn, app, None)
            writes.insert_machine_event(tx, found, machine_id, kind, detail, exit_code)

    def list_machine_events(
        self, app: str, machine_id: str, *, org: OrgScope = None, limit: int = 50
    ) -> tuple[MachineEvent, ...]:
        with self._read() as conn:
            found = rows.find_app(conn, app, org)
            return rows.read_machine_events(conn, found, machine_id, limit)

    def remove_machine(self, app: str, machine_id: str, *, by: Caller, now: Now = None) -> Machine:
        with self._write(by, now) as tx:
            found = rows.find_app(tx.conn, app, tx.by.org)
            machine = rows.find_machine(tx.conn, found, machine_id)
            writes.delete_machine(tx, found, machine)
            return machine

    # --- IP assignments ------------------------------------------------------------------

    def allocate_ip(
        self,
        app: str,
        ip_type: IpType = "v4",
        region: str | None = None,
        *,
        by: Caller,
        now: Now = None,
    ) -> IpAssignment:
        ip_type = ipam.parse_ip_type(ip_type)
        with self._write(by, now) as tx:
            found = rows.find_app(tx.conn, app, tx.by.org)
            record = found.record
            tcp_ports = ipam.raw_tcp_ports(record.services)
            ref = AppRef(app, record.org, record.primary_region, tcp_ports)
            state = rows.ipam_state(tx.conn, found)
            new = ipam.plan_allocation(
                self.policy, ref, ip_type, region, state, regions=self.regions, now=tx.now
            )
            writes.insert_assignment(tx, found, new)
        return new

    def list_ips(self, app: str, *, org: OrgScope = None) -> tuple[IpAssignment, ...]:
        with self._read() as conn:
            return rows.app_ips(conn, rows.find_app(conn, app, org).id)

    def release_ip(self, app: str, address: str, *, by: Caller, now: Now = None) -> IpAssignment:
        canonical = ipam.normalize_address(address)
        with self._write(by, now) as tx:
            found = rows.find_app(tx.conn, app, tx.by.org)
            assignment = ipam.check_release(app, rows.app_ips(tx.conn, found.id), canonical)
            writes.release(tx, found, assignment, "released on request")
        return assignment

    def move_ip(
        self, address: str, from_app: str, to_app: str, *, by: Caller, now: Now = None
    ) -> IpAssignment:
        with self._write(by, now) as tx:
            source = rows.find_app(tx.conn, from_app, tx.by.org)
            target = rows.find_app(tx.conn, to_app, tx.by.org)
            if target.org_id != source.org_id:  # as if it did not exist: no org is revealed
                raise NotFound(f"app {to_app!r} not found")
            held = ip_moves.check_move(
                address, from_app, rows.app_ips(tx.conn, source.id), move_target(tx, target)
            )
            writes.move_assignment(tx, source, target, held)
        return ip_moves.moved(held, to_app)

    def list_active_ips(self) -> tuple[IpAssignment, ...]:
        with self._read() as conn:
            return rows.active_ips(conn)

    # --- audit ---------------------------------------------------------------------------

    def list_audit(
        self, *, org: OrgScope = None, app: str | None = None, limit: int = 100
    ) -> tuple[AuditEntry, ...]:
        with self._read() as conn:
            return rows.read_audit(conn, org, app, limit)
