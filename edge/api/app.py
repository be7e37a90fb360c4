"""The aiohttp application of the control plane: every route and middleware."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import __version__
from edge.api import (
    routes_apps,
    routes_catchment,
    routes_faults,
    routes_ips,
    routes_machines,
    routes_process,
    routes_status,
)
from edge.api.app_context import CONTEXT, ApiContext
from edge.api.auth import TokenCheck, auth_middleware
from edge.api.errors import error_middleware
from edge.api.openapi import openapi_document
from edge.api.routes_ui import routes as ui_routes
from edge.api.ui_login import LOGINS
from edge.api.ui_login import routes as ui_login_routes

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    body = {
        "status": "ok",
        **context.status(),
        "version": __version__,
        "uptime_seconds": round(time.time() - context.started_at, 3),
    }
    return web.json_response(body)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    merged = None
    if context.merged_metrics is not None and request.query.get("worker") != "self":
        merged = await context.merged_metrics()
    payload = merged if merged is not None else generate_latest(context.metrics.registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    regions = tuple(sorted(context.catalogue.codes()))
    return web.json_response(openapi_document(regions, tuple(context.config.edge.pops)))


def build_api(context: ApiContext, tokens: TokenCheck) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(tokens)], client_max_size=1024 * 1024
    )
    app[CONTEXT] = context
    app[LOGINS] = tokens.logins
    tables: tuple[web.RouteTableDef, ...] = (routes, routes_apps.routes, routes_ips.routes)
    tables = (*tables, routes_machines.routes, routes_process.routes)
    for table in (*tables, routes_status.routes, routes_catchment.routes, routes_faults.routes):
        app.router.add_routes(table)
    app.router.add_routes(ui_routes)  # the dashboard: /ui
    app.router.add_routes(ui_login_routes)  # and its one-step sign-in (edgectl ui)
    return app
