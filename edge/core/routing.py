"""The routing snapshot and the routing decision.

``build_snapshot`` turns the deployed apps into an immutable ``RoutingSnapshot``; the
runtime rebuilds it whole when apps or machines change and swaps it in. Live load and
health are not in the snapshot's values but in one mutable ``EndpointStats`` per
(machine, service), which the runtime keeps across rebuilds (``stats_for``) and updates
in place, so the hot path reads current load without a rebuild.

``decide`` applies, in order: fly-force-instance-id (that machine or nothing),
fly-prefer-instance-id, fly-force-region (those regions in order, never elsewhere),
fly-prefer-region (in order, then on), then the service's strategy. The default,
nearest, is the platform's (flyio-behaviour.md section 3): below the soft limit in the
nearest region, else that region's soft band, and another region only when no machine
of the nearer one can take it (unhealthy, ejected, out of rotation or at hard limit).
Envoy's panic threshold sits under all of it. Who is a candidate and the strategies
are in ``edge.core.strategies``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from edge.config.model import ConcurrencySpec, PortSpec, ServiceSpec
from edge.core import strategies
from edge.core.latency import LatencyModel
from edge.core.maglev import MaglevTable, build_table
from edge.core.strategies import (
    Routed,
    Situation,
    candidate_filter,
    in_panic,
    is_candidate,
    no_candidate_summary,
    why_not,
)

# fmt: off
Reason = Literal[
    "nearest", "prefer_region", "force_region", "prefer_instance", "force_instance",
    "spill_over_soft", "cross_region", "panic", "retry", "no_candidate", "replay",
    # the other strategies name themselves
    "weighted_latency", "least_connections", "p2c_peak_ewma", "maglev",
]
# fmt: on
LoadBand = Literal["below_soft", "soft", "hard"]
Admin = Literal["", "maint", "drain"]


class EndpointStats:
    """Live, mutable counters of one (machine, service); written by the runtime only."""

    __slots__ = (
        "active",
        "admin",
        "consecutive_failures",
        "ejected_until",
        "ejections",
        "ewma_rtt",
        "ewma_stamp",
        "healthy",
        "picks",
        "ready_since",
        "remote",
    )

    def __init__(self) -> None:
        self.active = 0  # open connections or in-flight requests (the concurrency type)
        self.consecutive_failures = 0
        self.ejected_until = 0.0  # outlier ejection: out of rotation while now < this
        self.ejections = 0
        self.ewma_rtt = 0.0  # peak-EWMA connect RTT, seconds (strategies.observe_rtt)
        self.ewma_stamp = -1.0  # when ewma_rtt was last updated; negative: never
        self.healthy = True  # the active checks' verdict
        self.admin: Admin = ""  # operator state: maint and drain take it out of rotation
        self.ready_since = float("-inf")  # for slow start: when it last became routable
        self.picks = 0  # times chosen, ever: autostop compares it between passes
        # In a cluster: the other nodes' published load, included in ``active`` so that
        # routing sees the sum (edge.cluster.sharing); this node's own is active - remote.
        self.remote = 0

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"EndpointStats({fields})"


StatsFor = Callable[[str, str, int], EndpointStats]  # (app, machine_id, internal_port)


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    app: str
    region: str
    host: str
    ports: Mapping[int, int] = field(default_factory=dict)  # internal -> host port
    explicit_port: int | None = None  # the port of an ``address: HOST:PORT``
    weight: int = 1
    started: bool = True
    demo: bool = False


@dataclass(frozen=True, slots=True)
class AppDeployment:
    name: str
    org: str
    primary_region: str
    services: tuple[ServiceSpec, ...]
    machines: tuple[Machine, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One machine as the target of one service."""

    app: str
    machine_id: str
    region: str
    host: str
    port: int
    weight: int
    started: bool
    stats: EndpointStats


class Memo:
    """What a service computes on first use and keeps for the snapshot's lifetime.

    Only derived from the service's immutable parts, so it never goes stale; most
    services never need any of it (a maglev table costs ~0.1 s to build).
    """

    __slots__ = ("maglev", "proposals")

    def __init__(self) -> None:
        self.maglev: MaglevTable | None = None
        # weighted_latency, per PoP: cumulative weight / RTT^k over the started endpoints.
        self.proposals: dict[str, tuple[list[float], float]] = {}


@dataclass(frozen=True, slots=True, eq=False)
class ServiceRoutes:
    """Where one service of an app can go; shared by all of its public ports."""

    app: str
    spec: ServiceSpec
    endpoints: tuple[Endpoint, ...]
    by_region: Mapping[str, tuple[Endpoint, ...]]
    by_machine: Mapping[str, Endpoint]
    started: tuple[Endpoint, ...]  # the only endpoints routing ever considers
    started_by_region: Mapping[str, tuple[Endpoint, ...]]
    started_stats: tuple[EndpointStats, ...]  # for the panic check's tight loop
    uniform_weight: bool
    memo: Memo = field(default_factory=Memo)

    def maglev_table(self) -> MaglevTable:
        table = self.memo.maglev
        if table is None:
            names = [ep.machine_id for ep in self.started]
            table = build_table(names, [ep.weight for ep in self.started])
            self.memo.maglev = table
        return table


@dataclass(frozen=True, slots=True, eq=False)
class AppRoutes:
    name: str
    org: str
    primary_region: str
    services: Mapping[int, ServiceRoutes]  # by public port
    ports: Mapping[int, PortSpec]  # by public port


@dataclass(frozen=True, slots=True, eq=False)
class RoutingSnapshot:
    apps: Mapping[str, AppRoutes]
    model: LatencyModel
    app_domain: str
    pops: tuple[str, ...] = ()

    def host_to_app(self, host: bytes) -> str | None:
        """The app a shared-IPv4 Host or SNI names (``<app>.<app_domain>``), or None."""
        name = host.lower()
        if name.startswith(b"["):
            return None  # an IPv6 literal names no app
        name = name.partition(b":")[0].rstrip(b".")
        suffix = b"." + self.app_domain.lower().encode()
        if not name.endswith(suffix):
            return None
        app = name[: -len(suffix)].decode("ascii", "replace")
        return app if app in self.apps and "." not in app else None


def build_snapshot(
    apps: Iterable[AppDeployment],
    model: LatencyModel,
    app_domain: str,
    stats_for: StatsFor,
    pops: Iterable[str] = (),
) -> RoutingSnapshot:
    routes = {app.name: _app_routes(app, stats_for) for app in apps}
    return RoutingSnapshot(apps=routes, model=model, app_domain=app_domain, pops=tuple(pops))


def _app_routes(app: AppDeployment, stats_for: StatsFor) -> AppRoutes:
    single_internal = len({s.internal_port for s in app.services}) == 1
    services: dict[int, ServiceRoutes] = {}
    ports: dict[int, PortSpec] = {}
    for spec in app.services:
        routes = _service_routes(app, spec, single_internal, stats_for)
        for port in spec.ports:
            services[port.port] = routes
            ports[port.port] = port
    return AppRoutes(app.name, app.org, app.primary_region, services, ports)


def resolve_port(machine: Machine, internal_port: int, single_internal: bool) -> int:
    """Where a machine listens for a service: its port map, its address's port, or as is."""
    mapped = machine.ports.get(internal_port)
    if mapped is not None:
        return mapped
    if machine.explicit_port is not None and single_internal:
        return machine.explicit_port
    return internal_port


def _service_routes(
    app: AppDeployment, spec: ServiceSpec, single_internal: bool, stats_for: StatsFor
) -> ServiceRoutes:
    endpoints = tuple(
        Endpoint(
            app=app.name,
            machine_id=m.id,
            region=m.region,
            host=m.host,
            port=resolve_port(m, spec.internal_port, single_internal),
            weight=m.weight,
            started=m.started,
            stats=stats_for(app.name, m.id, spec.internal_port),
        )
        for m in app.machines
    )
    started = tuple(ep for ep in endpoints if ep.started)
    return ServiceRoutes(
        app=app.name,
        spec=spec,
        endpoints=endpoints,
        by_region=_group_by_region(endpoints),
        by_machine={ep.machine_id: ep for ep in endpoints},
        started=started,
        started_by_region=_group_by_region(started),
        started_stats=tuple(ep.stats for ep in started),
        uniform_weight=len({ep.weight for ep in endpoints}) <= 1,
    )


def _group_by_region(endpoints: tuple[Endpoint, ...]) -> dict[str, tuple[Endpoint, ...]]:
    groups: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        groups.setdefault(ep.region, []).append(ep)
    return {region: tuple(group) for region, group in groups.items()}


# --- the decision ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RouteRequest:
    pop: str  # the ingress PoP's region: distances are measured from here
    client_key: str = ""  # the client's address: what maglev hashes
    prefer_regions: tuple[str, ...] = ()
    force_regions: tuple[str, ...] = ()
    prefer_instance: str | None = None
    force_instance: str | None = None
    exclude: frozenset[str] = frozenset()  # machine ids already tried by this request


@dataclass(frozen=True, slots=True)
class RouteDecision:
    endpoint: Endpoint | None
    reason: Reason
    detail: str = ""  # for people: why no candidate, what a retry or panic overrode


def load_band(stats: EndpointStats, concurrency: ConcurrencySpec) -> LoadBand:
    """The platform's three load bands for an endpoint's current load."""
    hard = concurrency.hard_limit
    if hard is not None and stats.active >= hard:
        return "hard"
    return "soft" if stats.active >= concurrency.soft_limit else "below_soft"


def decide(
    service: ServiceRoutes,
    request: RouteRequest,
    model: LatencyModel,
    now: float,
    rng: random.Random,
) -> RouteDecision:
    """Choose the endpoint for one connection or request (see the module docstring)."""
    panic = in_panic(service, now)
    select = candidate_filter(service, request.exclude, now, panic)
    endpoint, reason, detail = _route(Situation(service, request, model, now, rng, select))
    if endpoint is None:
        return RouteDecision(
            None, "no_candidate", detail or no_candidate_summary(service, request.exclude, now)
        )
    # Retry and panic are what an operator most needs to see, so they take the reason;
    # the rule that chose the endpoint moves into the detail.
    if request.exclude:
        tried = ", ".join(sorted(request.exclude))
        return RouteDecision(endpoint, "retry", f"{reason} after {tried}; {detail}".rstrip("; "))
    if panic:
        return RouteDecision(endpoint, "panic", f"{reason}; too few healthy machines")
    return RouteDecision(endpoint, reason, detail)


def _route(s: Situation) -> Routed:
    """The client's explicit wishes first (instance, then regions), then the strategy."""
    request = s.request
    if request.force_instance is not None:
        forced = s.service.by_machine.get(request.force_instance)
        if forced is not None and is_candidate(s.select, forced):
            return forced, "force_instance", ""
        why = why_not(forced, s.service, request.exclude, s.now) or "not available"
        return None, "no_candidate", f"forced instance {request.force_instance}: {why}"
    note = ""
    if request.prefer_instance is not None:
        preferred = s.service.by_machine.get(request.prefer_instance)
        if preferred is not None and is_candidate(s.select, preferred):
            return preferred, "prefer_instance", ""
        why = why_not(preferred, s.service, request.exclude, s.now) or "not available"
        note = f"preferred instance {request.prefer_instance} unavailable: {why}; "
    if request.force_regions:
        return _route_forced_regions(s)
    for region in request.prefer_regions:
        chosen = strategies.pick_in_region(s, region)
        if chosen is not None:
            return chosen, "prefer_region", note.rstrip("; ")
    if request.prefer_regions:
        note += f"no candidate in preferred region(s) {', '.join(request.prefer_regions)}; "
    endpoint, reason, detail = strategies.pick_anywhere(s)
    return endpoint, reason, (note + detail).rstrip("; ")


def _route_forced_regions(s: Situation) -> Routed:
    # In the order given, like the platform's region lists; never anywhere else.
    for region in s.request.force_regions:
        chosen = strategies.pick_in_region(s, region)
        if chosen is not None:
            return chosen, "force_region", ""
    regions = ", ".join(s.request.force_regions)
    return None, "no_candidate", f"no candidate in forced region(s) {regions}"


# --- explanations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointView:
    machine_id: str
    region: str
    rtt: float  # from the request's PoP, seconds
    active: int
    band: LoadBand
    started: bool
    healthy: bool
    ejected: bool
    admin: str
    candidate: bool
    why_not: str  # '' for a candidate


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    pop: str
    strategy: str
    panic: bool
    endpoints: tuple[EndpointView, ...]  # nearest first
    decision: RouteDecision


def explain(
    service: ServiceRoutes, request: RouteRequest, model: LatencyModel, now: float
) -> RouteExplanation:
    """Every endpoint as routing sees it from ``request.pop``, and a decision.

    The decision uses an rng seeded from the request, so the same question gets the same
    answer; a live decision may break ties differently.
    """
    panic = in_panic(service, now)
    candidates = set(
        map(id, candidate_filter(service, request.exclude, now, panic)(service.endpoints))
    )
    rtts = model.matrix[request.pop]
    views = [
        EndpointView(
            machine_id=ep.machine_id,
            region=ep.region,
            rtt=rtts[ep.region],
            active=ep.stats.active,
            band=load_band(ep.stats, service.spec.concurrency),
            started=ep.started,
            healthy=ep.stats.healthy,
            ejected=ep.stats.ejected_until > now,
            admin=ep.stats.admin,
            candidate=id(ep) in candidates,
            why_not="" if id(ep) in candidates else why_not(ep, service, request.exclude, now),
        )
        for ep in service.endpoints
    ]
    views.sort(key=lambda view: (view.rtt, view.machine_id))
    rng = random.Random(f"{request.pop}|{request.client_key}")
    decision = decide(service, request, model, now, rng)
    return RouteExplanation(request.pop, service.spec.strategy, panic, tuple(views), decision)
