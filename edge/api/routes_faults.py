"""Fault injection: ``/v1/faults`` (add, list, remove one, clear) and ``/v1/faults/reset``.

PoP and region faults touch every org's traffic, so they need the admin token; a
machine fault may be added by the org that owns the machine's app.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from edge.api.app_context import CONTEXT, ApiContext
from edge.api.auth import IDENTITY, Identity
from edge.api.bodies import Body, read_body
from edge.api.render import fault_json
from edge.config.types import parse_duration
from edge.core.faults import Fault, FaultKind
from edge.errors import BadRequest, NotFound

routes = web.RouteTableDef()


class AddFault(Body):
    kind: FaultKind
    machine: str | None = None
    app: str | None = None
    region: str | None = None
    pop: str | None = None
    stream: Literal["upstream", "downstream"] = "downstream"
    latency: str | float = 0
    jitter: str | float = 0
    rate: float = 0  # KB/s
    timeout: str | float = 0
    delay: str | float = 0
    bytes: int = 0


def _seconds(name: str, value: str | float) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


async def _scope(body: AddFault, identity: Identity, context: ApiContext) -> tuple[Any, str]:
    given = [(s, v) for s, v in (("machine", body.machine), ("region", body.region),
             ("pop", body.pop)) if v]  # fmt: skip
    if len(given) != 1:
        raise BadRequest("give exactly one scope: machine (with app), region or pop")
    scope, target = given[0]
    if scope != "machine":
        target = target.strip().lower()  # region and PoP codes are case-insensitive
    if scope == "machine":
        if not body.app:
            raise BadRequest("app: a machine fault needs the machine's app")
        machines = await context.store.call(
            context.store.store.list_machines, body.app, org=identity.org_scope
        )
        if target not in {m.id for m in machines}:
            raise NotFound(f"machine: app {body.app!r} has no machine {target!r}")
    else:
        identity.require_admin(f"a {scope} fault")
        known = context.config.edge.pops if scope == "pop" else context.catalogue.codes()
        if target not in known:
            raise BadRequest(f"{scope}: unknown {scope} {target!r}; known: {', '.join(known)}")
    return scope, target


@routes.post("/v1/faults")
async def add_fault(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    body = await read_body(request, AddFault)
    scope, target = await _scope(body, identity, context)
    fault = Fault(
        id="",
        kind=body.kind,
        scope=scope,
        target=target,
        app=body.app if scope == "machine" else None,
        org=identity.org_scope,
        stream=body.stream,
        latency=_seconds("latency", body.latency),
        jitter=_seconds("jitter", body.jitter),
        rate=body.rate,
        timeout=_seconds("timeout", body.timeout),
        delay=_seconds("delay", body.delay),
        bytes=body.bytes,
    )
    added = context.dataplane().faults.add(fault)
    return web.json_response(fault_json(added), status=201)


@routes.get("/v1/faults")
async def list_faults(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    faults = context.dataplane().faults.listed(identity.org_scope)
    return web.json_response({"faults": [fault_json(f) for f in faults]})


@routes.delete("/v1/faults/{id}")
async def remove_fault(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    context.dataplane().faults.remove(request.match_info["id"], identity.org_scope)
    return web.Response(status=204)


def _clear(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    gone = context.dataplane().faults.clear(identity.org_scope)
    return web.json_response({"removed": len(gone)})


@routes.delete("/v1/faults")
async def clear_faults(request: web.Request) -> web.Response:
    return _clear(request)


@routes.post("/v1/faults/reset")
async def reset_faults(request: web.Request) -> web.Response:
    return _clear(request)
