"""Reading the SQLite store: the SELECTs, rows mapped to stored values, the lookups.

Every function takes a connection that is already in a transaction (a read or a
write one) and only reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge.config.model import ProcessSpec
from edge.core import ipam
from edge.core.apps import AppRecord, Machine, parse_machine_state, services_from_json
from edge.core.ipam import IpamState, IpAssignment
from edge.errors import NotFound
from edge.store.base import AuditEntry, MachineEvent, OrgScope, StoreSnapshot
from edge.store.sql import SqlConn

IP_SELECT = (
    "SELECT i.address, i.type, i.region, a.name, o.slug, i.created_at, i.is_primary "
    "FROM ip_assignments i JOIN apps a ON a.id = i.app_id JOIN orgs o ON o.id = i.org_id "
)
APP_SELECT = (
    "SELECT a.id, a.name, o.slug, a.primary_region, a.created_at, a.services, o.id "
    "FROM apps a JOIN orgs o ON o.id = a.org_id "
)
MACHINE_SELECT = (
    "SELECT m.id, a.name, m.region, m.state, m.address, m.ports, m.weight, m.demo, "
    "m.created_at, m.updated_at, m.process FROM machines m JOIN apps a ON a.id = m.app_id "
)
_DEDICATED = "type != 'shared_v4'"
_LIVE_APP = APP_SELECT + "WHERE a.name = ? AND a.destroyed_at IS NULL "


@dataclass(frozen=True, slots=True)
class StoredApp:
    """An app with its row ids, as the writes need it."""

    id: int
    org_id: int
    record: AppRecord


# --- rows to values ----------------------------------------------------------------------


def assignment_from_row(row: Any) -> IpAssignment:
    ip_type = ipam.parse_ip_type(row[1])
    return IpAssignment(
        row[0], ip_type, row[2], row[3], row[4], int(row[5]), ip_type == "shared_v4", bool(row[6])
    )


def app_from_row(row: Any) -> StoredApp:
    record = AppRecord(row[1], row[2], row[3], int(row[4]), services_from_json(row[5]))
    return StoredApp(int(row[0]), int(row[6]), record)


def machine_from_row(row: Any) -> Machine:
    ports = tuple((int(k), int(v)) for k, v in json.loads(row[5]))
    state = parse_machine_state(row[3])
    process = None if row[10] is None else ProcessSpec.model_validate_json(row[10])
    return Machine(
        *(row[0], row[1], row[2], state, row[4], ports, int(row[6]), bool(row[7])),
        *(int(row[8]), row[9], process),
    )


# --- lookups -----------------------------------------------------------------------------


def read_version(conn: SqlConn) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])


def find_live_app(conn: SqlConn, name: str) -> StoredApp | None:
    """The live app called ``name`` in any org, or None."""
    row = conn.execute(_LIVE_APP, (name,)).fetchone()
    return None if row is None else app_from_row(row)


def find_app(conn: SqlConn, name: str, org: OrgScope) -> StoredApp:
    """The live app ``name`` if it is in ``org`` (any org for None); else NotFound."""
    row = conn.execute(_LIVE_APP + "AND (? IS NULL OR o.slug = ?)", (name, org, org)).fetchone()
    if row is None:
        raise NotFound(f"app {name!r} not found")
    return app_from_row(row)


def app_by_id(conn: SqlConn, app_id: int) -> StoredApp:
    return app_from_row(conn.execute(APP_SELECT + "WHERE a.id = ?", (app_id,)).fetchone())


def list_live_apps(conn: SqlConn, org: OrgScope) -> tuple[AppRecord, ...]:
    sql = APP_SELECT + "WHERE a.destroyed_at IS NULL AND (? IS NULL OR o.slug = ?) ORDER BY a.name"
    return tuple(app_from_row(r).record for r in conn.execute(sql, (org, org)))


def find_machine(conn: SqlConn, app: StoredApp, machine_id: str) -> Machine:
    sql = MACHINE_SELECT + "WHERE m.app_id = ? AND m.id = ?"
    row = conn.execute(sql, (app.id, machine_id)).fetchone()
    if row is None:
        raise NotFound(f"app {app.record.name!r} has no machine {machine_id!r}")
    return machine_from_row(row)


def app_machines(conn: SqlConn, app_id: int) -> tuple[Machine, ...]:
    """The app's machines in the order they were added."""
    rows = conn.execute(MACHINE_SELECT + "WHERE m.app_id = ? ORDER BY m.pk", (app_id,))
    return tuple(machine_from_row(r) for r in rows)


def app_ips(conn: SqlConn, app_id: int) -> tuple[IpAssignment, ...]:
    """The app's active assignments in allocation order (the primary first)."""
    sql = IP_SELECT + "WHERE i.app_id = ? AND i.released_at IS NULL ORDER BY i.id"
    return tuple(assignment_from_row(r) for r in conn.execute(sql, (app_id,)))


def active_ips(conn: SqlConn) -> tuple[IpAssignment, ...]:
    rows = conn.execute(IP_SELECT + "WHERE i.released_at IS NULL ORDER BY i.id")
    return tuple(assignment_from_row(r) for r in rows)


def org_dedicated_ips(conn: SqlConn, org_id: int) -> dict[str, IpAssignment]:
    """The org's active dedicated assignments by address (any of its apps)."""
    sql = IP_SELECT + f"WHERE i.org_id = ? AND i.released_at IS NULL AND i.{_DEDICATED}"
    return {r[0]: assignment_from_row(r) for r in conn.execute(sql, (org_id,))}


def ipam_state(conn: SqlConn, app: StoredApp) -> IpamState:
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
        app_ips=app_ips(conn, app.id),
        org_count=int(org_count),
        in_use=frozenset(r[0] for r in in_use),
        released={r[0]: float(r[1]) for r in released},
    )


def read_snapshot(conn: SqlConn) -> StoreSnapshot:
    apps = conn.execute(APP_SELECT + "WHERE a.destroyed_at IS NULL ORDER BY a.name")
    machines = conn.execute(MACHINE_SELECT + "WHERE a.destroyed_at IS NULL ORDER BY a.name, m.pk")
    return StoreSnapshot(
        read_version(conn),
        tuple(app_from_row(r).record for r in apps),
        tuple(machine_from_row(r) for r in machines),
        active_ips(conn),
    )


def read_audit(conn: SqlConn, org: OrgScope, app: str | None, limit: int) -> tuple[AuditEntry, ...]:
    rows = conn.execute(
        "SELECT id, at, actor, action, org, app, target, detail FROM audit "
        "WHERE (? IS NULL OR org = ?) AND (? IS NULL OR app = ?) ORDER BY id DESC LIMIT ?",
        (org, org, app, app, limit),
    )
    return tuple(AuditEntry(*r) for r in rows)


def read_machine_events(
    conn: SqlConn, app: StoredApp, machine_id: str, limit: int
) -> tuple[MachineEvent, ...]:
    rows = conn.execute(
        "SELECT at, kind, exit_code, detail FROM machine_events "
        "WHERE app_id = ? AND machine_id = ? ORDER BY id DESC LIMIT ?",
        (app.id, machine_id, limit),
    )
    return tuple(MachineEvent(machine_id, float(r[0]), r[1], r[2], r[3]) for r in rows)
