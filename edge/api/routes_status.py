"""What the edge is doing: ``/v1/status`` and ``/v1/apps/{app}/route`` (explanations)."""

from __future__ import annotations

from aiohttp import web

from edge.api.app_context import CONTEXT
from edge.api.auth import IDENTITY
from edge.api.bodies import whole_number
from edge.errors import StoreUnavailable
from edge.runtime.replay_explain import recent_replays, replay_view
from edge.runtime.status import route_view, status_view

routes = web.RouteTableDef()


@routes.get("/v1/status")
async def status(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    dataplane = context.dataplane()
    try:
        snapshot = await context.store.call(context.store.store.snapshot)
    except StoreUnavailable:
        if dataplane.last_snapshot is None:
            raise
        snapshot = dataplane.last_snapshot  # degraded: what this node serves now
    body = status_view(dataplane, snapshot, context.catalogue, identity.org_scope)
    if context.cluster is not None:
        body["cluster"] = await context.cluster()
    return web.json_response(body)


@routes.get("/v1/apps/{app}/route")
async def route(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    app = request.match_info["app"]
    await context.store.call(context.store.store.get_app, app, org=identity.org_scope)
    query = request.query
    dataplane = context.dataplane()
    body = route_view(
        dataplane,
        app,
        query.get("from", context.config.edge.local_region),
        whole_number(query.get("port"), "port"),
        query.get("prefer"),
    )
    replay = query.get("replay")
    if replay is not None and body["pop"] is not None:
        service = dataplane.state.snapshot.apps[app].services[body["port"]]
        body["replay"] = replay_view(dataplane, app, service, body["pop"], body["port"], replay)
    body["recent_replays"] = recent_replays(dataplane, app)
    return web.json_response(body)
