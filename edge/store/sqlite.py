"""The SQLite store: ``STATE_DIR/edge.db`` in WAL mode, ``synchronous=FULL``.

Every change is one ``BEGIN IMMEDIATE`` transaction: it takes the database's write
lock first (waiting up to ``busy_timeout``), reads what the rules need, and commits
before returning. So allocations from several threads or processes are serialized,
never hand out one address twice (a unique index on active dedicated addresses
guards it too) and never pass an org's limit; a failure rolls everything back.
Each thread gets its own connection.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.config.model import AppSpec, MachineSpec, ServiceSpec
from edge.core import ipam
from edge.core.apps import (
    MACHINE_ID_BYTES,
    AppRecord,
    Machine,
    MachineState,
    Org,
    check_slug,
    machine_from_spec,
    new_machine_id,
    parse_machine_state,
    services_from_json,
    services_to_json,
)
from edge.core.ipam import AppRef, IpamPolicy, IpamState, IpAssignment, IpType
from edge.errors import Conflict, NotFound
from edge.store.base import AuditEntry, Caller, CreatedApp, Now, OrgScope, StoreSnapshot
from edge.store.migrations import migrate

DB_FILE = "edge.db"

_IP_SELECT = (
    "SELECT i.address, i.type, i.region, a.name, o.slug, i.created_at, i.is_primary "
    "FROM ip_assignments i JOIN apps a ON a.id = i.app_id JOIN orgs o ON o.id = i.org_id "
)
_APP_SELECT = (
    "SELECT a.id, a.name, o.slug, a.primary_region, a.created_at, a.services, o.id "
    "FROM apps a JOIN orgs o ON o.id = a.org_id "
)
_MACHINE_SELECT = (
    "SELECT m.id, a.name, m.region, m.state, m.address, m.ports, m.weight, m.demo, "
    "m.created_at, m.updated_at FROM machines m JOIN apps a ON a.id = m.app_id "
)
_DEDICATED = "type != 'shared_v4'"


@dataclass(frozen=True, slots=True)
class _App:
    id: int
    org_id: int
    record: AppRecord


@dataclass(frozen=True, slots=True)
class _Tx:
    """One write transaction: its connection, its time and who asked."""

    conn: sqlite3.Connection
    now: float
    by: Caller

    def audit(
        self,
        action: str,
        detail: str,
        *,
        org: str | None,
        app: str | None = None,
        target: str | None = None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO audit (at, actor, action, org, app, target, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.now, self.by.actor, action, org, app, target, detail),
        )

    def audit_app(self, app: _App, action: str, target: str, detail: str) -> None:
        self.audit(action, detail, org=app.record.org, app=app.record.name, target=target)


def _assignment(row: sqlite3.Row) -> IpAssignment:
    ip_type = ipam.parse_ip_type(row[1])
    return IpAssignment(
        row[0], ip_type, row[2], row[3], row[4], int(row[5]), ip_type == "shared_v4", bool(row[6])
    )


def _app(row: sqlite3.Row) -> _App:
    record = AppRecord(row[1], row[2], row[3], int(row[4]), services_from_json(row[5]))
    return _App(int(row[0]), int(row[6]), record)


def _machine(row: sqlite3.Row) -> Machine:
    ports = tuple((int(k), int(v)) for k, v in json.loads(row[5]))
    state = parse_machine_state(row[3])
    return Machine(
        row[0], row[1], row[2], state, row[4], ports, int(row[6]), bool(row[7]), int(row[8]), row[9]
    )


def _find_app(conn: sqlite3.Connection, name: str, org: OrgScope) -> _App:
    sql = _APP_SELECT + "WHERE a.name = ? AND a.destroyed_at IS NULL AND (? IS NULL OR o.slug = ?)"
    row = conn.execute(sql, (name, org, org)).fetchone()
    if row is None:
        raise NotFound(f"app {name!r} not found")
    return _app(row)


def _find_machine(conn: sqlite3.Connection, app: _App, machine_id: str) -> Machine:
    sql = _MACHINE_SELECT + "WHERE m.app_id = ? AND m.id = ?"
    row = conn.execute(sql, (app.id, machine_id)).fetchone()
    if row is None:
        raise NotFound(f"app {app.record.name!r} has no machine {machine_id!r}")
    return _machine(row)


def _app_ips(conn: sqlite3.Connection, app_id: int) -> tuple[IpAssignment, ...]:
    sql = _IP_SELECT + "WHERE i.app_id = ? AND i.released_at IS NULL ORDER BY i.id"
    return tuple(_assignment(r) for r in conn.execute(sql, (app_id,)))


def _ipam_state(conn: sqlite3.Connection, app: _App) -> IpamState:
    """What the allocation rules need, read inside the allocating transaction."""
    org_count = conn.execute(
        "SELECT COUNT(*) FROM ip_assignments "
        f"WHERE org_id = ? AND released_at IS NULL AND {_DEDICATED}",
        (app.org_id,),
    ).fetchone()[0]
    in_use = conn.execute(
        f"SELECT address FROM ip_assignments WHERE released_at IS NULL AND {_DEDICATED}"
    )
    released = conn.execute(
        "SELECT address, MAX(released_at) FROM ip_assignments "
        f"WHERE released_at IS NOT NULL AND {_DEDICATED} GROUP BY address"
    )
    return IpamState(
        app_ips=_app_ips(conn, app.id),
        org_count=int(org_count),
        in_use=frozenset(r[0] for r in in_use),
        released={r[0]: float(r[1]) for r in released},
    )


def _insert_app(tx: _Tx, spec: AppSpec) -> _App:
    org = tx.conn.execute("SELECT id FROM orgs WHERE slug = ?", (spec.org,)).fetchone()
    if org is None or tx.by.org not in (None, spec.org):
        raise NotFound(f"org {spec.org!r} not found")
    sql = "SELECT 1 FROM apps WHERE name = ? AND destroyed_at IS NULL"
    if tx.conn.execute(sql, (spec.app,)).fetchone():
        raise Conflict(f"app {spec.app!r} already exists; choose another name")
    created = int(tx.now)
    row = tx.conn.execute(
        "INSERT INTO apps (name, org_id, primary_region, services, created_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (spec.app, org[0], spec.primary_region, services_to_json(spec.services), created),
    ).fetchone()
    record = AppRecord(spec.app, spec.org, spec.primary_region, created, spec.services)
    app = _App(int(row[0]), int(org[0]), record)
    tx.audit_app(app, "app.create", spec.app, f"created app in {spec.primary_region}")
    return app


def _insert_assignment(tx: _Tx, app: _App, new: IpAssignment) -> None:
    tx.conn.execute(
        "INSERT INTO ip_assignments (address, type, region, app_id, org_id, is_primary, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (new.address, new.type, new.region, app.id, app.org_id, new.primary, new.created_at),
    )
    primary = " (primary)" if new.primary else ""
    detail = f"allocated {new.type} {new.address} in {new.region}{primary}"
    tx.audit_app(app, "ip.allocate", new.address, detail)


def _release(tx: _Tx, app: _App, assignment: IpAssignment, why: str) -> None:
    tx.conn.execute(
        "UPDATE ip_assignments SET released_at = ? "
        "WHERE app_id = ? AND address = ? AND released_at IS NULL",
        (tx.now, app.id, assignment.address),
    )
    detail = f"released {assignment.type} {assignment.address} ({why})"
    tx.audit_app(app, "ip.release", assignment.address, detail)


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
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._entropy = entropy
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
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
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    @contextmanager
    def _write(self, by: Caller, now: Now) -> Iterator[_Tx]:
        """A BEGIN IMMEDIATE transaction that bumps the version and commits, or rolls back."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _Tx(conn, self._clock() if now is None else now, by)
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query in it sees the same committed state."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # --- change tracking -----------------------------------------------------------------

    def version(self) -> int:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0])

    def snapshot(self) -> StoreSnapshot:
        with self._read() as conn:
            version = int(
                conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]
            )
            apps = conn.execute(_APP_SELECT + "WHERE a.destroyed_at IS NULL ORDER BY a.name")
            machines = conn.execute(
                _MACHINE_SELECT + "WHERE a.destroyed_at IS NULL ORDER BY a.name, m.pk"
            )
            ips = conn.execute(_IP_SELECT + "WHERE i.released_at IS NULL ORDER BY i.id")
            return StoreSnapshot(
                version,
                tuple(_app(r).record for r in apps),
                tuple(_machine(r) for r in machines),
                tuple(_assignment(r) for r in ips),
            )

    # --- tokens and orgs -----------------------------------------------------------------

    def admin_token_hash(self) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'admin_token'").fetchone()
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
        sql = "SELECT slug, created_at FROM orgs WHERE slug = ?"
        row = self._conn().execute(sql, (slug,)).fetchone()
        if row is None:
            raise NotFound(f"org {slug!r} not found")
        return Org(row[0], int(row[1]))

    def list_orgs(self) -> tuple[Org, ...]:
        rows = self._conn().execute("SELECT slug, created_at FROM orgs ORDER BY slug")
        return tuple(Org(r[0], int(r[1])) for r in rows)

    def org_by_token_hash(self, token_hash: str) -> Org | None:
        sql = "SELECT slug, created_at FROM orgs WHERE token_hash = ?"
        row = self._conn().execute(sql, (token_hash,)).fetchone()
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
            app = _insert_app(tx, spec)
            machines = tuple(self._insert_machine(tx, app, m) for m in spec.machines)
            ref = AppRef(spec.app, spec.org, spec.primary_region)
            state = _ipam_state(tx.conn, app)
            planned = ipam.plan_app_ips(
                self.policy, ref, types, state, regions=self.regions, now=tx.now
            )
            for assignment in planned:
                _insert_assignment(tx, app, assignment)
        return CreatedApp(app.record, planned, machines)

    def get_app(self, name: str, *, org: OrgScope = None) -> AppRecord:
        with self._read() as conn:
            return _find_app(conn, name, org).record

    def list_apps(self, *, org: OrgScope = None) -> tuple[AppRecord, ...]:
        sql = _APP_SELECT + "WHERE a.destroyed_at IS NULL AND (? IS NULL OR o.slug = ?)"
        with self._read() as conn:
            return tuple(_app(r).record for r in conn.execute(sql + " ORDER BY a.name", (org, org)))

    def update_services(
        self, name: str, services: tuple[ServiceSpec, ...], *, by: Caller, now: Now = None
    ) -> AppRecord:
        with self._write(by, now) as tx:
            app = _find_app(tx.conn, name, tx.by.org)
            sql = "UPDATE apps SET services = ? WHERE id = ?"
            tx.conn.execute(sql, (services_to_json(services), app.id))
            tx.audit_app(app, "app.update", name, f"set {len(services)} service(s)")
            return _app(
                tx.conn.execute(_APP_SELECT + "WHERE a.id = ?", (app.id,)).fetchone()
            ).record

    def destroy_app(self, name: str, *, by: Caller, now: Now = None) -> tuple[IpAssignment, ...]:
        with self._write(by, now) as tx:
            app = _find_app(tx.conn, name, tx.by.org)
            released = _app_ips(tx.conn, app.id)
            for assignment in released:
                _release(tx, app, assignment, "the app was destroyed")
            tx.conn.execute("DELETE FROM machines WHERE app_id = ?", (app.id,))
            tx.conn.execute("UPDATE apps SET destroyed_at = ? WHERE id = ?", (tx.now, app.id))
            tx.audit_app(app, "app.destroy", name, f"destroyed app, released {len(released)} IP(s)")
        return released

    # --- machines ------------------------------------------------------------------------

    def _insert_machine(self, tx: _Tx, app: _App, spec: MachineSpec) -> Machine:
        ipam.resolve_region(spec.region, spec.region, self.regions)
        sql = "SELECT id FROM machines WHERE app_id = ?"
        taken = {r[0] for r in tx.conn.execute(sql, (app.id,))}
        machine_id = spec.id
        if machine_id is not None and machine_id in taken:
            raise Conflict(f"app {app.record.name!r} already has a machine {machine_id!r}")
        while machine_id is None or machine_id in taken:
            machine_id = new_machine_id(self._entropy(MACHINE_ID_BYTES))
        m = machine_from_spec(spec, machine_id, app.record.name, tx.now)
        values = (m.id, app.id, m.region, m.state, m.address, json.dumps(m.ports), m.weight)
        tx.conn.execute(
            "INSERT INTO machines (id, app_id, region, state, address, ports, weight, demo, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, m.demo, m.created_at, m.updated_at),
        )
        detail = f"added machine in {m.region} at {m.address or 'demo'}, {m.state}"
        tx.audit_app(app, "machine.add", m.id, detail)
        return m

    def list_machines(self, app: str, *, org: OrgScope = None) -> tuple[Machine, ...]:
        with self._read() as conn:
            found = _find_app(conn, app, org)
            rows = conn.execute(_MACHINE_SELECT + "WHERE m.app_id = ? ORDER BY m.pk", (found.id,))
            return tuple(_machine(r) for r in rows)

    def add_machine(self, app: str, spec: MachineSpec, *, by: Caller, now: Now = None) -> Machine:
        with self._write(by, now) as tx:
            return self._insert_machine(tx, _find_app(tx.conn, app, tx.by.org), spec)

    def set_machine_state(
        self, app: str, machine_id: str, state: MachineState, *, by: Caller, now: Now = None
    ) -> Machine:
        state = parse_machine_state(state)
        with self._write(by, now) as tx:
            found = _find_app(tx.conn, app, tx.by.org)
            _find_machine(tx.conn, found, machine_id)
            tx.conn.execute(
                "UPDATE machines SET state = ?, updated_at = ? WHERE app_id = ? AND id = ?",
                (state, tx.now, found.id, machine_id),
            )
            tx.audit_app(found, f"machine.{state}", machine_id, f"machine {state}")
            return _find_machine(tx.conn, found, machine_id)

    def remove_machine(self, app: str, machine_id: str, *, by: Caller, now: Now = None) -> Machine:
        with self._write(by, now) as tx:
            found = _find_app(tx.conn, app, tx.by.org)
            machine = _find_machine(tx.conn, found, machine_id)
            sql = "DELETE FROM machines WHERE app_id = ? AND id = ?"
            tx.conn.execute(sql, (found.id, machine_id))
            tx.audit_app(
                found, "machine.remove", machine_id, f"removed machine in {machine.region}"
            )
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
            found = _find_app(tx.conn, app, tx.by.org)
            ref = AppRef(app, found.record.org, found.record.primary_region)
            state = _ipam_state(tx.conn, found)
            new = ipam.plan_allocation(
                self.policy, ref, ip_type, region, state, regions=self.regions, now=tx.now
            )
            _insert_assignment(tx, found, new)
        return new

    def list_ips(self, app: str, *, org: OrgScope = None) -> tuple[IpAssignment, ...]:
        with self._read() as conn:
            return _app_ips(conn, _find_app(conn, app, org).id)

    def release_ip(self, app: str, address: str, *, by: Caller, now: Now = None) -> IpAssignment:
        canonical = ipam.normalize_address(address)
        with self._write(by, now) as tx:
            found = _find_app(tx.conn, app, tx.by.org)
            assignment = ipam.check_release(app, _app_ips(tx.conn, found.id), canonical)
            _release(tx, found, assignment, "released on request")
        return assignment

    def list_active_ips(self) -> tuple[IpAssignment, ...]:
        rows = self._conn().execute(_IP_SELECT + "WHERE i.released_at IS NULL ORDER BY i.id")
        return tuple(_assignment(r) for r in rows)

    # --- audit ---------------------------------------------------------------------------

    def list_audit(
        self, *, org: OrgScope = None, app: str | None = None, limit: int = 100
    ) -> tuple[AuditEntry, ...]:
        rows = self._conn().execute(
            "SELECT id, at, actor, action, org, app, target, detail FROM audit "
            "WHERE (? IS NULL OR org = ?) AND (? IS NULL OR app = ?) ORDER BY id DESC LIMIT ?",
            (org, org, app, app, limit),
        )
        return tuple(AuditEntry(*r) for r in rows)
