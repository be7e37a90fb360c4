"""The runtime's side of fly-replay and of port policies.

- ``replay_app_service``: a request replayed to another app (``fly-replay: app=...``)
  goes to that app's service on the same public port (else its first HTTP service),
  and only within the replaying app's org (PA05 otherwise; PA04 for an unknown app).
- ``as_replay``: a routing decision for a replayed request says so in its reason.
- ``port_policy``: a port's ``http_options`` as the relay's ``PortPolicy`` (built once per
  routing view: edge.runtime.routing_state).
- ``ReplayLog``: the last replays, for ``edgectl route`` and the dashboard's flows.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from typing import Any

from edge.config.model import HttpSpec, PortSpec
from edge.core.error_codes import ErrorCode
from edge.core.replay import ReplayRoute
from edge.core.replay_cache import SessionCacheSpec
from edge.core.routing import RouteDecision, RoutingSnapshot, ServiceRoutes
from edge.dataplane.contract import NoUpstream, PortPolicy, ReplayReport, RouteHints

RECENT_REPLAYS = 100
REPLAY_WINDOW = 30.0  # seconds of replays the dashboard shows
ReplayRecord = ReplayReport


def replay_app_service(
    snapshot: RoutingSnapshot, hints: RouteHints, port: int
) -> ServiceRoutes | NoUpstream:
    """The service of the app a request was replayed to, if the replaying app may."""
    replay = hints.replay
    assert replay is not None and replay.app is not None
    target = snapshot.apps.get(replay.app)
    if target is None:
        return NoUpstream(
            502, f"fly-replay target app {replay.app!r} does not exist", replay.source_app,
            code=ErrorCode.PA04,
        )  # fmt: skip
    source = snapshot.apps.get(replay.source_app or "")
    if source is None or source.org != target.org:
        return NoUpstream(
            403,
            f"fly-replay target app {replay.app!r} is in another org than "
            f"{replay.source_app!r}: replays stay within an org",
            replay.source_app,
            code=ErrorCode.PA05,
        )
    service = target.services.get(port)
    if service is None:
        http = [p for p, routes in target.services.items() if target.ports[p].is_http]
        service = target.services[http[0]] if http else None
    if service is None:
        return NoUpstream(
            502, f"fly-replay target app {replay.app!r} has no HTTP service", replay.source_app,
            code=ErrorCode.PA04,
        )  # fmt: skip
    return service


def as_replay(decision: RouteDecision, replay: ReplayRoute) -> RouteDecision:
    """The decision for a replayed request: the reason names the replay, the detail why."""
    if decision.endpoint is None:
        return dataclasses.replace(decision, detail=f"{replay.why}; {decision.detail}")
    return RouteDecision(decision.endpoint, "replay", f"{replay.why}; {decision.reason}")


def port_policy(port: PortSpec, http: HttpSpec) -> PortPolicy:
    options = port.http_options
    lines: list[bytes] = []
    remove: set[bytes] = set()
    for name, value in options.response.headers.items():
        remove.add(name.lower().encode())  # a set header replaces the machine's own
        values = value if isinstance(value, list) else [] if value is False else [value]
        lines.extend(f"{name}: {v}\r\n".encode("latin-1", "replace") for v in values)
    caches = tuple(
        SessionCacheSpec(c.path_prefix, c.ttl_seconds, c.type, c.name) for c in options.replay_cache
    )
    return PortPolicy(
        set_lines=b"".join(lines),
        remove=frozenset(remove),
        pristine=options.response.pristine,
        idle_timeout=options.idle_timeout,
        replay_buffer=http.replay_buffer,
        replay_caches=caches,
    )


class ReplayLog:
    """The last replays (bounded), newest last."""

    def __init__(self, size: int = RECENT_REPLAYS) -> None:
        self._recent: deque[ReplayReport] = deque(maxlen=size)

    def append(self, report: ReplayReport) -> None:
        self._recent.append(report)

    def __iter__(self) -> Iterator[ReplayReport]:
        return iter(self._recent)

    def for_app(self, app: str) -> list[ReplayReport]:
        return [r for r in self._recent if app in (r.app, r.target_app)]

    def flows(
        self, apps: set[str], now: float, window: float = REPLAY_WINDOW
    ) -> list[dict[str, Any]]:
        """Replays of the last ``window`` seconds by (app, from region, to region, result),
        for the dashboard map: each is an arc from the replaying machine's region."""
        counts: dict[tuple[str, str, str, str], int] = {}
        for r in self._recent:
            if r.at >= now - window and r.app in apps and r.target_region:
                key = (r.app, r.source_region, r.target_region, r.result)
                counts[key] = counts.get(key, 0) + 1
        return [
            {"app": a, "from_region": f, "to_region": t, "result": res, "count": n}
            for (a, f, t, res), n in sorted(counts.items())
        ]
