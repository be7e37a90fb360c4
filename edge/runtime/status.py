"""Status and route explanations, built from the store and the running data plane.

Everything here reads: the snapshot, live counters, listeners and the traffic log.
It feeds ``GET /v1/status``, ``GET /v1/apps/{app}/route``, ``edgectl status``,
``edgectl route`` and the dashboard.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from edge.core.anycast import pops_by_rtt
from edge.core.regions import RegionCatalogue
from edge.core.route_headers import parse_regions
from edge.core.routing import RouteRequest, ServiceRoutes, explain, load_band
from edge.errors import BadRequest, NotFound
from edge.runtime.dataplane import DataPlane
from edge.runtime.health_checks import NO_CHECKS
from edge.store import StoreSnapshot

MS = 1000.0


def _place(catalogue: RegionCatalogue, code: str) -> dict[str, float]:
    region = catalogue[code]
    return {"latitude": region.latitude, "longitude": region.longitude}


def pops_view(dataplane: DataPlane, catalogue: RegionCatalogue) -> list[dict[str, Any]]:
    up = set(dataplane.state.pops_up)
    return [
        {"code": pop, "up": pop in up, **_place(catalogue, pop)}
        for pop in dataplane.config.edge.pops
    ]


def machines_view(
    dataplane: DataPlane, snapshot: StoreSnapshot, app: str, catalogue: RegionCatalogue
) -> list[dict[str, Any]]:
    out = []
    for machine in (m for m in snapshot.machines if m.app == app):
        live = dataplane.machine_view(machine)
        first = live["services"][0] if live["services"] else {}
        out.append(
            {
                "id": machine.id,
                "region": machine.region,
                "state": machine.state,
                "demo": machine.demo,
                "soft_limit": first.get("soft_limit"),
                "hard_limit": first.get("hard_limit"),
                **live,
                **_place(catalogue, machine.region),
            }
        )
    return out


def status_view(
    dataplane: DataPlane,
    snapshot: StoreSnapshot,
    catalogue: RegionCatalogue,
    org: str | None,
) -> dict[str, Any]:
    apps = [a for a in snapshot.apps if org is None or a.org == org]
    names = {a.name for a in apps}
    now = time.time()
    return {
        "edge": dataplane.gate.view(),  # the edge's own connections and descriptors
        "pops": pops_view(dataplane, catalogue),
        "apps": [
            {
                "name": app.name,
                "org": app.org,
                "primary_region": app.primary_region,
                "ips": [
                    {"ip": ip.address, "type": ip.type, "region": ip.region}
                    for ip in snapshot.ips
                    if ip.app == app.name
                ],
                "machines": machines_view(dataplane, snapshot, app.name, catalogue),
            }
            for app in apps
        ],
        "listeners": [
            row
            for row in dataplane.listeners.reports()
            if row.get("app") in names or (row.get("app") is None and org is None)
        ],
        "flows": [
            {"app": a, "client_region": c, "pop": p, "machine_region": m, "rate": round(r, 3)}
            for (a, c, p, m), r in dataplane.state.traffic.flows(now)
            if a in names
        ],
        "replays": dataplane.state.replays.flows(names, now),
        "recent": [
            {
                "at": d.at,
                "app": d.app,
                "client_region": d.client_region,
                "pop": d.pop,
                "machine_id": d.machine_id,
                "machine_region": d.machine_region,
                "reason": d.reason,
            }
            for d in reversed(dataplane.state.traffic.recent)
            if d.app in names
        ][:30],
    }


def route_view(
    dataplane: DataPlane,
    app: str,
    from_region: str,
    port: int | None,
    prefer: str | None,
) -> dict[str, Any]:
    state = dataplane.state
    from_region = from_region.strip().lower()
    if from_region not in state.valid_regions:
        raise BadRequest(f"from: unknown region {from_region!r}")
    routes = state.snapshot.apps.get(app)
    if routes is None or not routes.services:
        raise NotFound(f"app {app!r} has no services to route to")
    service = _service(routes.services, port, app)
    ranked = pops_by_rtt(from_region, dataplane.config.edge.pops, state.model)
    pop = state.ingress(from_region)
    answer: dict[str, Any] = {
        "app": app,
        "from": from_region,
        "port": port or next(iter(routes.services)),
        "pops": [
            {"pop": p, "rtt_ms": round(rtt * MS, 1), "up": p in state.pops_up} for p, rtt in ranked
        ],
        "pop": pop,
    }
    answer["last_cold_start"] = cold_start_json(dataplane, app)
    if pop is None:
        return {**answer, "chosen": None, "reason": "no_pop", "detail": "every PoP is withdrawn"}
    return {**answer, **_explain(service, pop, prefer, dataplane)}


def cold_start_json(dataplane: DataPlane, app: str) -> dict[str, Any] | None:
    """The app's latest autostart: which machine, how long requests waited for it."""
    cold = dataplane.autostart.last.get(app)
    if cold is None:
        return None
    return {
        "machine_id": cold.machine_id,
        "region": cold.region,
        "waited_ms": round(cold.seconds * 1000, 1),
        "waiters": cold.waiters,
        "at": cold.at,
        "text": cold.sentence(),
    }


def _service(services: Mapping[int, ServiceRoutes], port: int | None, app: str) -> ServiceRoutes:
    if port is None:
        return next(iter(services.values()))
    service = services.get(port)
    if service is None:
        raise NotFound(f"app {app!r} has no service on port {port}")
    return service


def _explain(
    service: ServiceRoutes, pop: str, prefer: str | None, dataplane: DataPlane
) -> dict[str, Any]:
    state = dataplane.state
    prefer_regions = (
        parse_regions(prefer.encode(), state.valid_regions, state.aliases, pop) if prefer else ()
    )
    request = RouteRequest(pop=pop, client_key="explain", prefer_regions=prefer_regions)
    return explain_request(service, request, dataplane)


def explain_request(
    service: ServiceRoutes, request: RouteRequest, dataplane: DataPlane
) -> dict[str, Any]:
    """Every machine of ``service`` as routing sees it for ``request``, and the choice."""
    state = dataplane.state
    found = explain(service, request, state.model, state.clock())
    chosen = found.decision.endpoint
    checked = bool(service.spec.tcp_checks or service.spec.http_checks)
    passing = "passing" if checked else NO_CHECKS
    return {
        "strategy": found.strategy,
        "panic": found.panic,
        "candidates": [
            {
                "machine_id": v.machine_id,
                "region": v.region,
                "rtt_ms": round(v.rtt * MS, 1),
                "load": v.active,
                "band": v.band,
                "health": passing if v.healthy else "not passing",
                "ejected": v.ejected,
                "candidate": v.candidate,
                "why_not": v.why_not,
            }
            for v in found.endpoints
        ],
        "chosen": None
        if chosen is None
        else {
            "machine_id": chosen.machine_id,
            "region": chosen.region,
            "band": load_band(chosen.stats, service.spec.concurrency),
        },
        "reason": found.decision.reason,
        "detail": found.decision.detail,
    }
