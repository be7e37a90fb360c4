"""Machines of an app: ``/v1/apps/{app}/machines`` (list, add, start, stop, remove)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from edge.api.app_context import CONTEXT, ApiContext
from edge.api.auth import IDENTITY
from edge.api.bodies import Body, port_keys, read_body
from edge.api.render import machine_json
from edge.config.model import MachineSpec
from edge.core.apps import Machine
from edge.core.ipam import format_time
from edge.errors import Conflict

routes = web.RouteTableDef()


class AddMachine(Body):
    region: str
    id: str | None = None
    address: str | None = None
    ports: dict[str, int] = Field(default_factory=dict)
    weight: int = 1
    demo: bool = False
    state: str = "started"


def _spec(context: ApiContext, body: AddMachine) -> MachineSpec:
    data: dict[str, Any] = body.model_dump(exclude_none=True)
    data["ports"] = port_keys(body.ports)
    # The machine is checked as part of a stand-in app whose own fields are valid, so a
    # problem names the machine's field ("region: unknown region 'xyz'"), once.
    local = context.config.edge.local_region
    fields = ("region", "id", "address", "ports", "weight", "demo", "state")
    spec = context.validate_app(
        {"app": "x", "primary_region": local, "machines": [data]},
        renames={f"machines[0].{name}": name for name in fields} | {"machines[0]": "machine"},
    )
    return spec.machines[0]


async def _machine_answer(request: web.Request, machine: Machine) -> dict[str, Any]:
    return machine_json(machine, request.app[CONTEXT].live_machine(machine))


@routes.get("/v1/apps/{app}/machines")
async def list_machines(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    machines = await context.store.call(
        context.store.store.list_machines, request.match_info["app"], org=identity.org_scope
    )
    answer = [await _machine_answer(request, m) for m in machines]
    return web.json_response({"machines": answer})


@routes.post("/v1/apps/{app}/machines")
async def add_machine(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    body = await read_body(request, AddMachine)
    machine = await context.store.call(
        context.store.store.add_machine,
        request.match_info["app"],
        _spec(context, body),
        by=identity.caller,
    )
    await context.changed()
    return web.json_response(await _machine_answer(request, machine), status=201)


async def _find(request: web.Request) -> Machine:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    app, machine_id = request.match_info["app"], request.match_info["id"]
    machines = await context.store.call(
        context.store.store.list_machines, app, org=identity.org_scope
    )
    for machine in machines:
        if machine.id == machine_id:
            return machine
    raise web.HTTPNotFound(text=f"machine {machine_id!r} not found in app {app!r}")


@routes.get("/v1/apps/{app}/machines/{id}")
async def get_machine(request: web.Request) -> web.Response:
    return web.json_response(await _machine_answer(request, await _find(request)))


async def _set_state(request: web.Request, state: str) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    await _find(request)
    machine = await context.store.call(
        context.store.store.set_machine_state,
        request.match_info["app"],
        request.match_info["id"],
        state,  # type: ignore[arg-type]
        by=identity.caller,
    )
    await context.changed()
    return web.json_response(await _machine_answer(request, machine))


@routes.post("/v1/apps/{app}/machines/{id}/start")
async def start_machine(request: web.Request) -> web.Response:
    return await _set_state(request, "started")


@routes.post("/v1/apps/{app}/machines/{id}/stop")
async def stop_machine(request: web.Request) -> web.Response:
    return await _set_state(request, "stopped")


@routes.delete("/v1/apps/{app}/machines/{id}")
async def remove_machine(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    await _find(request)
    await context.store.call(
        context.store.store.remove_machine,
        request.match_info["app"],
        request.match_info["id"],
        by=identity.caller,
    )
    await context.changed()
    return web.Response(status=204)


class AdminState(Body):
    state: Literal["maint", "drain", "ready"]


@routes.post("/v1/apps/{app}/machines/{id}/admin")
async def set_admin(request: web.Request) -> web.Response:
    """Operator states: maint (out of rotation, not checked), drain (no new traffic), ready."""
    context = request.app[CONTEXT]
    machine = await _find(request)
    body = await read_body(request, AdminState)
    changed = context.dataplane().health.set_admin(machine.app, machine.id, body.state)
    if not changed:
        raise Conflict(
            f"machine {machine.id!r} is in no service of app {machine.app!r} (or not started): "
            f"there is no traffic to put in {body.state}"
        )
    return web.json_response(await _machine_answer(request, machine))


@routes.get("/v1/apps/{app}/checks")
async def list_checks(request: web.Request) -> web.Response:
    """Recent health-check results of every machine of the app, newest first."""
    identity, context = request[IDENTITY], request.app[CONTEXT]
    app = request.match_info["app"]
    machines = await context.store.call(
        context.store.store.list_machines, app, org=identity.org_scope
    )
    health = context.dataplane().health
    rows = [
        {
            "machine_id": machine.id,
            "region": machine.region,
            "internal_port": row.internal_port,
            "check": row.check,
            "at": format_time(row.at),
            "ok": row.ok,
            "output": row.output,
            "duration_ms": round(row.duration * 1000, 1),
        }
        for machine in machines
        for row in health.results(app, machine.id)
    ]
    rows.sort(key=lambda row: str(row["at"]), reverse=True)
    return web.json_response({"checks": rows})
