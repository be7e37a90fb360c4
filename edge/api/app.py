"""The aiohttp application of the control plane and its always-present routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import __version__
from edge.api.errors import error_middleware
from edge.runtime.metrics import Metrics


@dataclass(slots=True)
class ApiContext:
    """What the API handlers reach: the daemon's parts, injected at start."""

    metrics: Metrics
    started_at: float = field(default_factory=time.time)
    status: Callable[[], dict[str, Any]] = dict


CONTEXT = web.AppKey("context", ApiContext)


async def healthz(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    body = {
        "status": "ok",
        "version": __version__,
        "uptime_seconds": round(time.time() - context.started_at, 3),
        **context.status(),
    }
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[CONTEXT].metrics.registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def build_api(context: ApiContext) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    app[CONTEXT] = context
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
