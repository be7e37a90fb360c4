"""IP assignments of an app: ``/v1/apps/{app}/ip_assignments``."""

from __future__ import annotations

from aiohttp import web

from edge.api.app_context import CONTEXT
from edge.api.auth import IDENTITY
from edge.api.bodies import Body, read_body
from edge.api.render import ip_json
from edge.core.ipam import IpType, normalize_address

routes = web.RouteTableDef()


class AllocateIp(Body):
    type: IpType = "v4"
    region: str | None = None


@routes.get("/v1/apps/{app}/ip_assignments")
async def list_ips(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    ips = await context.store.call(
        context.store.store.list_ips, request.match_info["app"], org=identity.org_scope
    )
    return web.json_response({"ips": [ip_json(a) for a in ips]})


@routes.post("/v1/apps/{app}/ip_assignments")
async def allocate_ip(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    body = await read_body(request, AllocateIp)
    with context.counting("allocate"):
        assignment = await context.store.call(
            context.store.store.allocate_ip,
            request.match_info["app"],
            body.type,
            body.region,
            by=identity.caller,
        )
    # Answer only once the new address's listeners are bound (or have failed).
    listeners = await context.changed()
    answer = ip_json(assignment)
    answer["listeners"] = listeners.for_addresses([assignment.address])
    return web.json_response(answer, status=201)


@routes.delete("/v1/apps/{app}/ip_assignments/{ip}")
async def release_ip(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    address = normalize_address(request.match_info["ip"])
    with context.counting("release"):
        await context.store.call(
            context.store.store.release_ip, request.match_info["app"], address, by=identity.caller
        )
    await context.changed()
    return web.Response(status=204)


class MoveIp(Body):
    app: str  # the app of the same org that serves the address from now on


@routes.post("/v1/apps/{app}/ip_assignments/{ip}/move")
async def move_ip(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    address = normalize_address(request.match_info["ip"])
    body = await read_body(request, MoveIp)
    with context.counting("move"):
        moved = await context.store.call(
            context.store.store.move_ip,
            address,
            request.match_info["app"],
            body.app,
            by=identity.caller,
        )
    # As for an allocation: answer once the address's listeners serve the target app.
    listeners = await context.changed()
    answer = ip_json(moved)
    answer["app"] = moved.app
    answer["listeners"] = listeners.for_addresses([moved.address])
    return web.json_response(answer)
