"""Explaining fly-replay: what a replay instruction would do, and what replays did.

``replay_view`` answers "if the machine this client reaches answered ``fly-replay:
<value>``, where would the request go, and why": the instruction as parsed (or its
PA03 error), the replaying machine (the one routing chooses now), the target app (and
whether the org allows it), the target regions with aliases expanded from the PoP,
and the target's candidates with the choice, as routing sees them. ``recent_replays``
lists what the relay actually did. Both feed ``GET /v1/apps/{app}/route`` and
``edgectl route``.
"""

from __future__ import annotations

from typing import Any

from edge.core.replay import InvalidReplay, parse_header, replay_route
from edge.core.route_headers import replay_request
from edge.core.routing import RouteRequest, ServiceRoutes, explain
from edge.dataplane.contract import NoUpstream, RouteHints
from edge.errors import BadRequest
from edge.runtime.dataplane import DataPlane
from edge.runtime.replay_routing import replay_app_service
from edge.runtime.status import explain_request


def replay_view(
    dataplane: DataPlane, app: str, service: ServiceRoutes, pop: str, port: int, value: str
) -> dict[str, Any]:
    """The ``replay`` part of a route explanation (see the module docstring)."""
    try:
        instruction = parse_header(value.encode("latin-1", "replace"))
    except InvalidReplay as exc:
        raise BadRequest(f"replay: PA03: {exc}") from None
    state = dataplane.state
    now = state.clock()
    first = explain(service, RouteRequest(pop=pop, client_key="explain"), state.model, now)
    source = first.decision.endpoint
    answer: dict[str, Any] = {"instruction": instruction.describe(), "source": None}
    if source is None:
        return {**answer, "refused": {"code": "PR01", "text": "no machine answers first"}}
    answer["source"] = {"machine_id": source.machine_id, "region": source.region}
    route = replay_route(instruction, source.machine_id, app)
    target = replay_app_service(state.snapshot, RouteHints(replay=route), port)
    answer["target_app"] = route.app
    if isinstance(target, NoUpstream):
        return {**answer, "refused": {"code": target.code, "text": target.reason}}
    request = replay_request(pop, "explain", route, frozenset(), state.aliases)
    regions = request.force_regions or request.prefer_regions
    answer.update(
        {
            "regions": list(regions),
            "forced": bool(request.force_regions),
            "refused": None,
            "fallback": instruction.fallback,
            "timeout_s": instruction.timeout,
        }
    )
    explained = explain_request(target, request, dataplane)
    if explained["chosen"] is not None:  # as the live decision says it (router.as_replay)
        rule = explained["reason"] + (f": {explained['detail']}" if explained["detail"] else "")
        explained.update(reason="replay", detail=f"{route.why}; {rule}")
    return {**answer, **explained}


def recent_replays(dataplane: DataPlane, app: str, limit: int = 10) -> list[dict[str, Any]]:
    """The last replays by or to ``app``, newest first."""
    reports = dataplane.state.replays.for_app(app)[-limit:]
    return [
        {
            "at": round(r.at, 3),
            "app": r.app,
            "source_machine": r.source_machine,
            "source_region": r.source_region,
            "instruction": r.instruction,
            "result": r.result,
            "target_app": r.target_app,
            "target_machine": r.target_machine,
            "target_region": r.target_region,
            "why": r.why,
        }
        for r in reversed(reports)
    ]
