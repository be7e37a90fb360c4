"""Writing the SQLite store: the statements of every change, each one audited.

Every function runs inside one ``BEGIN IMMEDIATE`` transaction (a ``Tx``) that the
store opens and commits; none of them commits or catches anything itself.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Collection
from dataclasses import dataclass

from edge.config.model import AppSpec, MachineSpec, ServiceSpec
from edge.core import ipam
from edge.core.apps import (
    MACHINE_ID_BYTES,
    AppRecord,
    Machine,
    MachineState,
    machine_from_spec,
    new_machine_id,
    services_to_json,
)
from edge.core.ipam import AppRef, IpamPolicy, IpAssignment, IpType
from edge.errors import Conflict, NotFound
from edge.store.base import Caller, CreatedApp
from edge.store.sql import SqlConn
from edge.store.sqlite_rows import StoredApp, app_by_id, app_ips, find_machine, ipam_state


@dataclass(frozen=True, slots=True)
class Rules:
    """What the writes check against: the IPAM policy, the region codes, id entropy."""

    policy: IpamPolicy
    regions: frozenset[str]
    entropy: Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class Tx:
    """One write transaction: its connection, its time and who asked."""

    conn: SqlConn
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

    def audit_app(self, app: StoredApp, action: str, target: str, detail: str) -> None:
        self.audit(action, detail, org=app.record.org, app=app.record.name, target=target)


# --- apps --------------------------------------------------------------------------------


def insert_app(tx: Tx, spec: AppSpec) -> StoredApp:
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
    app = StoredApp(int(row[0]), int(org[0]), record)
    tx.audit_app(app, "app.create", spec.app, f"created app in {spec.primary_region}")
    return app


def create_app(tx: Tx, rules: Rules, spec: AppSpec, types: tuple[IpType, ...]) -> CreatedApp:
    """The app with its machines and its first IPs of ``types`` (the first is primary)."""
    ipam.resolve_region(spec.primary_region, spec.primary_region, rules.regions)
    app = insert_app(tx, spec)
    named = {m.id for m in spec.machines if m.id is not None}
    machines = tuple(insert_machine(tx, rules, app, m, named) for m in spec.machines)
    ref = AppRef(spec.app, spec.org, spec.primary_region)
    state = ipam_state(tx.conn, app)
    planned = ipam.plan_app_ips(rules.policy, ref, types, state, regions=rules.regions, now=tx.now)
    for assignment in planned:
        insert_assignment(tx, app, assignment)
    return CreatedApp(app.record, planned, machines)


def set_services(tx: Tx, app: StoredApp, services: tuple[ServiceSpec, ...]) -> StoredApp:
    """Conflict (nothing written) when the app holds the shared IPv4 and a port is raw TCP."""
    if any(ip.shared for ip in app_ips(tx.conn, app.id)):
        ipam.check_shared_v4_ports(app.record.name, ipam.raw_tcp_ports(services))
    sql = "UPDATE apps SET services = ? WHERE id = ?"
    tx.conn.execute(sql, (services_to_json(services), app.id))
    tx.audit_app(app, "app.update", app.record.name, f"set {len(services)} service(s)")
    return app_by_id(tx.conn, app.id)


def set_primary_region(tx: Tx, app: StoredApp, region: str) -> StoredApp:
    tx.conn.execute("UPDATE apps SET primary_region = ? WHERE id = ?", (region, app.id))
    detail = f"moved the primary region from {app.record.primary_region} to {region}"
    tx.audit_app(app, "app.update", app.record.name, detail)
    return app_by_id(tx.conn, app.id)


# --- IP assignments ----------------------------------------------------------------------


def insert_assignment(tx: Tx, app: StoredApp, new: IpAssignment) -> None:
    tx.conn.execute(
        "INSERT INTO ip_assignments (address, type, region, app_id, org_id, is_primary, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (new.address, new.type, new.region, app.id, app.org_id, new.primary, new.created_at),
    )
    primary = " (primary)" if new.primary else ""
    detail = f"allocated {new.type} {new.address} in {new.region}{primary}"
    tx.audit_app(app, "ip.allocate", new.address, detail)


def release(tx: Tx, app: StoredApp, assignment: IpAssignment, why: str) -> None:
    tx.conn.execute(
        "UPDATE ip_assignments SET released_at = ? "
        "WHERE app_id = ? AND address = ? AND released_at IS NULL",
        (tx.now, app.id, assignment.address),
    )
    detail = f"released {assignment.type} {assignment.address} ({why})"
    tx.audit_app(app, "ip.release", assignment.address, detail)


def move_assignment(tx: Tx, source: StoredApp, target: StoredApp, held: IpAssignment) -> None:
    """Hand ``held`` from ``source`` to ``target``: the same row (its created time and
    history stay), never the target's primary; audited on both apps."""
    tx.conn.execute(
        "UPDATE ip_assignments SET app_id = ?, is_primary = 0 "
        "WHERE app_id = ? AND address = ? AND released_at IS NULL",
        (target.id, source.id, held.address),
    )
    what = f"{held.type} {held.address}"
    tx.audit_app(source, "ip.move", held.address, f"moved {what} to app {target.record.name}")
    detail = f"moved {what} here from app {source.record.name}"
    tx.audit_app(target, "ip.move", held.address, detail)


# --- machines ----------------------------------------------------------------------------


def _new_machine_id(tx: Tx, rules: Rules, app: StoredApp, reserved: Collection[str]) -> str:
    sql = "SELECT id FROM machines WHERE app_id = ?"
    taken = {r[0] for r in tx.conn.execute(sql, (app.id,))}
    machine_id = None
    while machine_id is None or machine_id in taken or machine_id in reserved:
        machine_id = new_machine_id(rules.entropy(MACHINE_ID_BYTES))
    return machine_id


def insert_machine(
    tx: Tx, rules: Rules, app: StoredApp, spec: MachineSpec, reserved: Collection[str] = ()
) -> Machine:
    """A new machine with ``spec.id``, or a new id that is none of ``reserved``."""
    ipam.resolve_region(spec.region, spec.region, rules.regions)
    machine_id = spec.id or _new_machine_id(tx, rules, app, reserved)
    sql = "SELECT 1 FROM machines WHERE app_id = ? AND id = ?"
    if spec.id is not None and tx.conn.execute(sql, (app.id, spec.id)).fetchone():
        raise Conflict(f"app {app.record.name!r} already has a machine {spec.id!r}")
    m = machine_from_spec(spec, machine_id, app.record.name, tx.now)
    values = (m.id, app.id, m.region, m.state, m.address, json.dumps(m.ports), m.weight)
    tx.conn.execute(
        "INSERT INTO machines (id, app_id, region, state, address, ports, weight, demo, "
        "created_at, updated_at, process) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*values, m.demo, m.created_at, m.updated_at, _process_json(m)),
    )
    where = m.address or ("demo" if m.demo else "command " + shlex.join(_command(m)))
    detail = f"added machine in {m.region} at {where}, {m.state}"
    tx.audit_app(app, "machine.add", m.id, detail)
    insert_machine_event(tx, app, m.id, "created", f"{where}, {m.state} (by {tx.by.actor})", None)
    return m


def update_machine(
    tx: Tx, rules: Rules, app: StoredApp, machine: Machine, spec: MachineSpec, detail: str
) -> Machine:
    """Give ``machine`` everything ``spec`` sets, keeping its id and creation time."""
    ipam.resolve_region(spec.region, spec.region, rules.regions)
    m = machine_from_spec(spec, machine.id, app.record.name, tx.now)
    values = (m.region, m.state, m.address, json.dumps(m.ports), m.weight, m.demo, tx.now)
    tx.conn.execute(
        "UPDATE machines SET region = ?, state = ?, address = ?, ports = ?, weight = ?, "
        "demo = ?, updated_at = ?, process = ? WHERE app_id = ? AND id = ?",
        (*values, _process_json(m), app.id, machine.id),
    )
    tx.audit_app(app, "machine.update", machine.id, detail)
    return find_machine(tx.conn, app, machine.id)


def _process_json(machine: Machine) -> str | None:
    return None if machine.process is None else machine.process.model_dump_json()


def _command(machine: Machine) -> tuple[str, ...]:
    return () if machine.process is None else machine.process.command


def set_machine_state(
    tx: Tx, app: StoredApp, machine_id: str, state: MachineState, reason: str | None = None
) -> Machine:
    before = find_machine(tx.conn, app, machine_id)
    if before.state == state:
        return before  # nothing to change: no audit entry, no version change
    tx.conn.execute(
        "UPDATE machines SET state = ?, updated_at = ? WHERE app_id = ? AND id = ?",
        (state, tx.now, app.id, machine_id),
    )
    detail = f"machine {state}" + (f": {reason}" if reason else "")
    tx.audit_app(app, f"machine.{state}", machine_id, detail)
    verb = {"started": "start", "stopped": "stop", "suspended": "suspend"}[state]
    why = "" if not reason else ": " + reason.removeprefix(f"{tx.by.actor}: ")
    insert_machine_event(tx, app, machine_id, verb, f"by {tx.by.actor}{why}", None)
    return find_machine(tx.conn, app, machine_id)


MACHINE_EVENTS_KEPT = 200  # per machine; older events are deleted as new ones come


def insert_machine_event(
    tx: Tx, app: StoredApp, machine_id: str, kind: str, detail: str, exit_code: int | None
) -> None:
    tx.conn.execute(
        "INSERT INTO machine_events (app_id, machine_id, at, kind, exit_code, detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (app.id, machine_id, tx.now, kind, exit_code, detail),
    )
    tx.conn.execute(
        "DELETE FROM machine_events WHERE app_id = ? AND machine_id = ? AND id <= ("
        "SELECT id FROM machine_events WHERE app_id = ? AND machine_id = ? "
        "ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (app.id, machine_id, app.id, machine_id, MACHINE_EVENTS_KEPT),
    )


def delete_machine(tx: Tx, app: StoredApp, machine: Machine) -> None:
    sql = "DELETE FROM machines WHERE app_id = ? AND id = ?"
    tx.conn.execute(sql, (app.id, machine.id))
    tx.audit_app(app, "machine.remove", machine.id, f"removed machine in {machine.region}")
