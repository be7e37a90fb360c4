"""``GET /v1/apps/{app}/catchment``: simulated clients from every region, routed live.

The numbers come from ``edge.core.catchment.simulate`` over the daemon's current routing
snapshot (withdrawn PoPs, machine state, health and load included); ``edgectl catchment``
prints and plots them, and the dashboard can draw the same.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from edge.api.app_context import CONTEXT
from edge.api.auth import IDENTITY
from edge.api.bodies import whole_number
from edge.core.catchment import (
    WEIGHT_PRESETS,
    Catchment,
    RegionCatchment,
    Summary,
    World,
    resolve_weights,
    simulate,
)
from edge.core.regions import Region, RegionCatalogue
from edge.core.routing import Endpoint, ServiceRoutes
from edge.errors import NotFound

routes = web.RouteTableDef()

DEFAULT_CLIENTS = 1000
MS = 1000.0


@functools.cache
def population() -> Mapping[str, float]:
    """Metro populations (millions) shipped in ``edge/data/population.yaml``."""
    text = resources.files("edge").joinpath("data/population.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return {str(k): float(v) for k, v in data.items()}


def _service(services: Mapping[int, ServiceRoutes], port: int | None, app: str) -> ServiceRoutes:
    if not services:
        raise NotFound(f"app {app!r} has no services to route to")
    if port is None:
        return next(iter(services.values()))
    service = services.get(port)
    if service is None:
        raise NotFound(f"app {app!r} has no service on port {port}")
    return service


@routes.get("/v1/apps/{app}/catchment")
async def catchment(request: web.Request) -> web.Response:
    identity, context = request[IDENTITY], request.app[CONTEXT]
    app = request.match_info["app"]
    await context.store.call(context.store.store.get_app, app, org=identity.org_scope)
    query = request.query
    given = whole_number(query.get("clients"), "clients")
    clients = DEFAULT_CLIENTS if given is None else given
    spec = query.get("weights") or "population"
    state = context.dataplane().state
    routes_of_app = state.snapshot.apps.get(app)
    services = routes_of_app.services if routes_of_app is not None else {}
    port = whole_number(query.get("port"), "port")
    service = _service(services, port, app)
    current = [region.code for region in context.catalogue.current()]
    weights = resolve_weights(spec, current, population(), state.valid_regions)
    world = World(service, state.pops_up, state.model, time.monotonic())
    rng = random.Random(f"{app}|{clients}|{spec}")  # the same question, the same answer
    # Up to MAX_CLIENTS decisions: in a thread, so the data plane's loop keeps turning.
    result = await asyncio.to_thread(simulate, world, weights, clients, rng)
    chosen_port = port if port is not None else next(iter(services))
    header = {
        "app": app,
        "port": chosen_port,
        "weights": spec if spec in WEIGHT_PRESETS else "custom",
        "pops": [{"code": p, "up": p in state.pops_up} for p in context.config.edge.pops],
    }
    return web.json_response({**header, **catchment_json(result, service, context.catalogue)})


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * MS, 1)


def region_json(row: RegionCatchment) -> dict[str, Any]:
    return {
        "region": row.region,
        "share": round(row.share, 5),
        "clients": row.clients,
        "pop": row.pop,
        "access_ms": _ms(row.access),
        "served": [
            {
                "machine_region": leg.machine_region,
                "clients": leg.clients,
                "backhaul_ms": _ms(leg.backhaul),
                "rtt_ms": _ms(leg.rtt),
                "reasons": dict(leg.reasons),
            }
            for leg in row.legs
        ],
        "unserved": row.unserved,
        "why_unserved": row.why_unserved,
    }


def catchment_json(
    result: Catchment, service: ServiceRoutes, catalogue: RegionCatalogue
) -> dict[str, Any]:
    """The simulation as JSON, with the machines and places it mentions (for maps)."""
    return {
        "strategy": result.strategy,
        "clients": result.summary.clients,
        "regions": [region_json(row) for row in result.regions],
        "machines": [machine_json(ep) for ep in service.endpoints],
        "distribution": [{"rtt_ms": _ms(rtt), "clients": n} for rtt, n in result.distribution],
        "summary": summary_json(result.summary),
        "places": {region.code: place_json(region) for region in catalogue},
    }


def machine_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.machine_id,
        "region": endpoint.region,
        "started": endpoint.started,
        "healthy": endpoint.stats.healthy,
    }


def place_json(region: Region) -> dict[str, Any]:
    return {"name": region.city, "latitude": region.latitude, "longitude": region.longitude}


def summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "clients": summary.clients,
        "served": summary.served,
        "unserved": summary.clients - summary.served,
        "median_ms": _ms(summary.median),
        "p95_ms": _ms(summary.p95),
        "mean_ms": _ms(summary.mean),
    }
