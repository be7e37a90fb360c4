"""``deploy_app`` on SQLite: create an app from its file, or bring it in line with it.

Runs inside the caller's one write transaction, so a failure anywhere (an unknown
region, the org's IP limit) leaves the app exactly as it was. Only what differs is
written and audited: deploying the same file twice writes nothing the second time.
"""

from __future__ import annotations

from dataclasses import replace

from edge.config.model import AppSpec
from edge.core import ip_moves, ipam
from edge.core.apps import MachineSync, plan_machine_sync
from edge.errors import Conflict, NotFound
from edge.store.base import Caller, DeployResult
from edge.store.sqlite_rows import (
    StoredApp,
    app_machines,
    find_app,
    find_live_app,
    org_dedicated_ips,
)
from edge.store.sqlite_writes import (
    Rules,
    Tx,
    create_app,
    delete_machine,
    insert_machine,
    move_assignment,
    set_primary_region,
    set_services,
    update_machine,
)


def deploy_app(tx: Tx, rules: Rules, spec: AppSpec, *, public_ips: bool) -> DeployResult:
    """Create ``spec.app`` as ``create_app`` would, or update it to match ``spec``."""
    for region in (spec.primary_region, *(m.region for m in spec.machines)):
        ipam.resolve_region(region, region, rules.regions)
    existing = find_live_app(tx.conn, spec.app)
    if existing is None:
        created = _create(tx, rules, spec, public_ips=public_ips)
        moved = claim_declared_ips(tx, rules, find_app(tx.conn, spec.app, None), spec)
        return replace(created, moved_ips=moved)
    check_owner(tx.by, existing, spec)
    app, app_updated = _update_app(tx, existing, spec)
    sync = plan_machine_sync(app_machines(tx.conn, app.id), spec.machines)
    added = _apply_sync(tx, rules, app, sync)
    moved = claim_declared_ips(tx, rules, app, spec)
    return DeployResult(
        app=app.record,
        created=False,
        ips=(),
        machines=app_machines(tx.conn, app.id),
        added=added,
        updated=tuple(u.machine.id for u in sync.update),
        removed=tuple(m.id for m in sync.remove),
        app_updated=app_updated,
        moved_ips=moved,
    )


def _create(tx: Tx, rules: Rules, spec: AppSpec, *, public_ips: bool) -> DeployResult:
    types = ipam.initial_types(public_ips=public_ips, ipv6=False)
    created = create_app(tx, rules, spec, types)
    return DeployResult(
        app=created.app,
        created=True,
        ips=created.ips,
        machines=created.machines,
        added=tuple(m.id for m in created.machines),
        updated=(),
        removed=(),
    )


def claim_declared_ips(tx: Tx, rules: Rules, app: StoredApp, spec: AppSpec) -> tuple[str, ...]:
    """Move to ``app`` every address its services list under ``ips:`` that another app
    of the org holds (``edge.core.ip_moves.plan_declared``); the moved addresses."""
    declared = ip_moves.declared_ips(spec.services)
    if not declared:
        return ()
    org_ips = org_dedicated_ips(tx.conn, app.org_id)
    plan = ip_moves.plan_declared(
        app.record.name, app.record.org, declared, org_ips, rules.policy.shared_v4
    )
    for held in plan:
        source = find_app(tx.conn, held.app, None)
        move_assignment(tx, source, app, held)
    return tuple(held.address for held in plan)


def check_owner(by: Caller, app: StoredApp, spec: AppSpec) -> None:
    """An org caller sees only its own apps; the file must name the app's org."""
    owner = app.record.org
    if by.org is not None and by.org != owner:
        raise NotFound(f"app {spec.app!r} not found")
    if spec.org == owner:
        return
    if by.org is not None:
        raise NotFound(f"org {spec.org!r} not found")
    raise Conflict(
        f"app {spec.app!r} belongs to org {owner!r}, not {spec.org!r}; "
        f"set org: {owner} in the file, or choose another app name"
    )


def _update_app(tx: Tx, app: StoredApp, spec: AppSpec) -> tuple[StoredApp, bool]:
    """Set the primary region and the services where they differ; whether any did."""
    updated = app
    if updated.record.primary_region != spec.primary_region:
        updated = set_primary_region(tx, updated, spec.primary_region)
    if updated.record.services != spec.services:
        updated = set_services(tx, updated, spec.services)
    return updated, updated is not app


def _apply_sync(tx: Tx, rules: Rules, app: StoredApp, sync: MachineSync) -> tuple[str, ...]:
    """Remove, update, then add machines; the ids of the added ones."""
    for machine in sync.remove:
        delete_machine(tx, app, machine)
    for update in sync.update:
        update_machine(tx, rules, app, update.machine, update.spec, ", ".join(update.changes))
    reserved = {m.id for m in sync.remove} | {s.id for s in sync.add if s.id is not None}
    return tuple(insert_machine(tx, rules, app, spec, reserved).id for spec in sync.add)
