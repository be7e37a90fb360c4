"""Machines that edge runs: logs, events, restart, private addresses.

``/v1/apps/{app}/logs`` and ``/v1/apps/{app}/machines/{id}/logs`` (what process
machines wrote, numbered: pass ``since`` to follow), ``.../events`` (the machine's
lifecycle), ``.../restart``, and ``/v1/apps/{app}/ips/private`` (each machine's own
address, as ``flyctl ips private``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.api.app_context import CONTEXT
from edge.api.auth import IDENTITY
from edge.api.render import machine_json
from edge.core.apps import Machine
from edge.core.ipam import format_time
from edge.errors import BadRequest, Conflict, NotFound
from edge.runtime.machine_logs import LogLine

routes = web.RouteTableDef()
MAX_LINES = 5000


def _int(request: web.Request, name: str, default: int, top: int | None = None) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise BadRequest(f"{name}: must be a whole number, not {text!r}")
    value = int(text)
    if top is not None and value > top:
        raise BadRequest(f"{name}: must be at most {top}, not {value}")
    return value


async def _machines(request: web.Request) -> tuple[Machine, ...]:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    return await context.store.call(
        context.store.store.list_machines, request.match_info["app"], org=identity.org_scope
    )


async def _machine(request: web.Request, machine_id: str) -> Machine:
    for machine in await _machines(request):
        if machine.id == machine_id:
            return machine
    raise NotFound(f"machine {machine_id!r} not found in app {request.match_info['app']!r}")


def line_json(line: LogLine) -> dict[str, Any]:
    return {
        "seq": line.seq,
        "at": format_time(line.at),
        "machine_id": line.machine_id,
        "stream": line.stream,
        "line": line.line,
    }


def _logs_answer(request: web.Request, ids: list[str]) -> web.Response:
    logs = request.app[CONTEXT].dataplane().logs
    since = _int(request, "since", 0)
    limit = _int(request, "limit", 500, MAX_LINES)
    lines = logs.lines(request.match_info["app"], ids, since, limit)
    last = lines[-1].seq if lines else max(since, 0)
    return web.json_response({"logs": [line_json(x) for x in lines], "next_since": last})


@routes.get("/v1/apps/{app}/logs")
async def app_logs(request: web.Request) -> web.Response:
    """What the app's process machines wrote (``machine`` narrows it to one)."""
    machines = await _machines(request)
    wanted = request.query.get("machine")
    if wanted is not None and wanted not in {m.id for m in machines}:
        raise NotFound(f"machine {wanted!r} not found in app {request.match_info['app']!r}")
    return _logs_answer(request, [wanted] if wanted else [m.id for m in machines])


@routes.get("/v1/apps/{app}/machines/{id}/logs")
async def machine_logs(request: web.Request) -> web.Response:
    machine = await _machine(request, request.match_info["id"])
    return _logs_answer(request, [machine.id])


@routes.get("/v1/apps/{app}/machines/{id}/events")
async def machine_events(request: web.Request) -> web.Response:
    """The machine, and its lifecycle events newest first (created, start, exited ...)."""
    identity, context = request[IDENTITY], request.app[CONTEXT]
    machine = await _machine(request, request.match_info["id"])
    events = await context.store.call(
        context.store.store.list_machine_events,
        machine.app,
        machine.id,
        org=identity.org_scope,
        limit=_int(request, "limit", 50, 200),
    )
    body = machine_json(machine, context.live_machine(machine))
    body["events"] = [
        {"at": format_time(e.at), "kind": e.kind, "exit_code": e.exit_code, "detail": e.detail}
        for e in events
    ]
    return web.json_response(body)


@routes.post("/v1/apps/{app}/machines/{id}/restart")
async def restart_machine(request: web.Request) -> web.Response:
    """Stop the machine's process (kill_signal, then SIGKILL) and start it again."""
    identity, context = request[IDENTITY], request.app[CONTEXT]
    machine = await _machine(request, request.match_info["id"])
    plane = context.dataplane()
    if machine.process is not None:
        running = plane.processes.supervisor.get(f"{machine.app}/{machine.id}")
        if running is not None:
            await running.stop()
    elif machine.demo:
        await plane.restart_demo(machine)
    else:
        raise Conflict(
            f"machine {machine.id!r} runs at {machine.address}, not under edge: restart it there"
        )
    store = context.store.store
    await context.store.call(
        store.record_machine_event,
        machine.app,
        machine.id,
        "restart",
        f"by {identity.caller.actor}",
    )
    started = await context.store.call(
        store.set_machine_state,
        machine.app,
        machine.id,
        "started",
        by=identity.caller,
        reason="restart",
    )
    await context.changed()
    return web.json_response(machine_json(started, context.live_machine(started)))


@routes.get("/v1/apps/{app}/ips/private")
async def private_ips(request: web.Request) -> web.Response:
    """Each machine's private address: a process machine's own loopback address."""
    plane = request.app[CONTEXT].dataplane()
    rows = []
    for machine in await _machines(request):
        ip = plane.processes.private_ips.get((machine.app, machine.id))
        if ip is None and machine.address:
            ip = machine.address
        rows.append({"id": machine.id, "region": machine.region, "ip": ip})
    return web.json_response({"ips": rows})
