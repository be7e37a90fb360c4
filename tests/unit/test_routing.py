"""The routing snapshot and the platform's routing rules, on small fixed fleets."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from edge.config.model import ConcurrencySpec, LatencySpec, ServiceSpec
from edge.config.regions import default_catalogue
from edge.core.latency import LatencyModel
from edge.core.routing import (
    AppDeployment,
    EndpointStats,
    Machine,
    RouteDecision,
    RouteRequest,
    RoutingSnapshot,
    ServiceRoutes,
    build_snapshot,
    decide,
    explain,
    load_band,
    resolve_port,
)

MODEL = LatencyModel.build(LatencySpec(), default_catalogue())
NOW = 1000.0


def spec(**fields: object) -> ServiceSpec:
    return ServiceSpec.model_validate({"ports": [{"port": 80, "handlers": ["http"]}], **fields})


def make_service(
    placement: Mapping[str, str],
    service: ServiceSpec | None = None,
    stopped: tuple[str, ...] = (),
    weights: Mapping[str, int] | None = None,
) -> ServiceRoutes:
    """One app 'app' with machines id -> region; fresh stats for every machine."""
    machines = tuple(
        Machine(
            id=mid,
            app="app",
            region=region,
            host="127.0.0.1",
            weight=(weights or {}).get(mid, 1),
            started=mid not in stopped,
        )
        for mid, region in placement.items()
    )
    app = AppDeployment("app", "org", "lhr", (service or spec(),), machines)
    snapshot = build_snapshot([app], MODEL, "edge.test", lambda *_: EndpointStats())
    return snapshot.apps["app"].services[80]


def stats(service: ServiceRoutes, machine_id: str) -> EndpointStats:
    return service.by_machine[machine_id].stats


def route(
    service: ServiceRoutes, pop: str = "lhr", seed: int = 0, now: float = NOW, **wishes: object
) -> RouteDecision:
    request = RouteRequest(pop=pop, **wishes)  # type: ignore[arg-type]
    return decide(service, request, MODEL, now, random.Random(seed))


def chosen(decision: RouteDecision) -> str | None:
    return decision.endpoint.machine_id if decision.endpoint else None


FLEET = {"l1": "lhr", "l2": "lhr", "f1": "fra", "i1": "iad", "s1": "syd"}


# --- the snapshot ------------------------------------------------------------------------


def test_resolve_port() -> None:
    mapped = Machine(
        id="m", app="a", region="lhr", host="h", ports={8080: 18080}, explicit_port=7000
    )
    explicit = Machine(id="m", app="a", region="lhr", host="h", explicit_port=7000)
    plain = Machine(id="m", app="a", region="lhr", host="h")
    assert resolve_port(mapped, 8080, single_internal=False) == 18080
    assert resolve_port(mapped, 9000, single_internal=True) == 7000
    assert resolve_port(explicit, 8080, single_internal=True) == 7000
    assert resolve_port(explicit, 8080, single_internal=False) == 8080
    assert resolve_port(plain, 8080, single_internal=True) == 8080


def two_service_app(explicit_port: int | None = 7000) -> AppDeployment:
    web = ServiceSpec.model_validate(
        {"internal_port": 8080, "ports": [{"port": 80, "handlers": ["http"]}, {"port": 443}]}
    )
    db = ServiceSpec.model_validate({"internal_port": 5432, "ports": [{"port": 5432}]})
    machines = (
        Machine(id="a1", app="web", region="lhr", host="10.0.0.1", ports={8080: 18080}),
        Machine(id="a2", app="web", region="fra", host="10.0.0.2", explicit_port=explicit_port),
        Machine(id="a3", app="web", region="fra", host="10.0.0.3", started=False),
    )
    return AppDeployment("web", "acme", "lhr", (web, db), machines)


def test_snapshot_groups_services_ports_and_machines() -> None:
    calls: list[tuple[str, str, int]] = []

    def stats_for(app: str, machine_id: str, port: int) -> EndpointStats:
        calls.append((app, machine_id, port))
        return EndpointStats()

    snapshot = build_snapshot([two_service_app()], MODEL, "edge.test", stats_for, pops=["lhr"])
    app = snapshot.apps["web"]
    assert (app.name, app.org, app.primary_region) == ("web", "acme", "lhr")
    assert app.services[80] is app.services[443]
    assert app.services[5432] is not app.services[80]
    assert app.ports[443].port == 443
    web = app.services[80]
    assert [ep.port for ep in web.endpoints] == [18080, 8080, 8080]  # two internal ports
    assert [ep.port for ep in app.services[5432].endpoints] == [5432, 5432, 5432]
    assert [ep.machine_id for ep in web.by_region["fra"]] == ["a2", "a3"]
    assert [ep.machine_id for ep in web.started_by_region["fra"]] == ["a2"]
    assert [ep.machine_id for ep in web.started] == ["a1", "a2"]
    assert web.by_machine["a3"].started is False
    assert sorted(set(calls)) == sorted(
        (("web", m, p) for m in ("a1", "a2", "a3") for p in (8080, 5432)),
    )
    assert snapshot.pops == ("lhr",)


def test_explicit_port_used_when_the_app_has_one_internal_port() -> None:
    machine = Machine(id="m1", app="one", region="lhr", host="h", explicit_port=7000)
    app = AppDeployment("one", "o", "lhr", (spec(),), (machine,))
    snapshot = build_snapshot([app], MODEL, "edge.test", lambda *_: EndpointStats())
    assert snapshot.apps["one"].services[80].endpoints[0].port == 7000


def test_stats_survive_a_rebuild() -> None:
    kept: dict[tuple[str, str, int], EndpointStats] = {}

    def stats_for(app: str, machine_id: str, port: int) -> EndpointStats:
        return kept.setdefault((app, machine_id, port), EndpointStats())

    first = build_snapshot([two_service_app()], MODEL, "edge.test", stats_for)
    first.apps["web"].services[80].by_machine["a1"].stats.active = 7
    second = build_snapshot([two_service_app(explicit_port=None)], MODEL, "edge.test", stats_for)
    assert second.apps["web"].services[80].by_machine["a1"].stats.active == 7
    assert second.apps["web"].services[5432].by_machine["a1"].stats.active == 0


@pytest.mark.parametrize(
    ("host", "app"),
    [
        (b"web.edge.test", "web"),
        (b"WEB.Edge.TEST", "web"),
        (b"web.edge.test:8443", "web"),
        (b"web.edge.test.", "web"),
        (b"nope.edge.test", None),
        (b"www.web.edge.test", None),
        (b"web.other.test", None),
        (b"edge.test", None),
        (b"[::1]:80", None),
        (b"", None),
    ],
)
def test_host_to_app(host: bytes, app: str | None) -> None:
    snapshot: RoutingSnapshot = build_snapshot(
        [two_service_app()], MODEL, "Edge.Test", lambda *_: EndpointStats()
    )
    assert snapshot.host_to_app(host) == app


def test_load_bands() -> None:
    limits = ConcurrencySpec(soft_limit=2, hard_limit=4)
    s = EndpointStats()
    bands = []
    for active in range(6):
        s.active = active
        bands.append(load_band(s, limits))
    assert bands == ["below_soft", "below_soft", "soft", "soft", "hard", "hard"]
    s.active = 10_000
    assert load_band(s, ConcurrencySpec(soft_limit=2)) == "soft"  # no hard limit


# --- nearest, soft and hard limits, cross region ----------------------------------------


def test_nearest_region_and_random_ties() -> None:
    service = make_service(FLEET)
    picks = {chosen(route(service, seed=seed)) for seed in range(40)}
    assert picks == {"l1", "l2"}
    decision = route(service)
    assert decision.reason == "nearest"
    assert decision.detail == ""
    assert route(service, pop="syd").endpoint.region == "syd"  # type: ignore[union-attr]
    assert route(service, pop="ord").endpoint.region == "iad"  # type: ignore[union-attr]


def test_same_seed_same_choice() -> None:
    service = make_service(FLEET)
    assert chosen(route(service, seed=7)) == chosen(route(service, seed=7))


def test_below_soft_beats_soft_in_the_same_region() -> None:
    service = make_service(FLEET, spec(concurrency={"soft_limit": 5}))
    stats(service, "l1").active = 5
    for seed in range(20):
        decision = route(service, seed=seed)
        assert (chosen(decision), decision.reason) == ("l2", "nearest")


def test_soft_band_is_used_before_leaving_the_region() -> None:
    service = make_service(FLEET, spec(concurrency={"soft_limit": 5}))
    stats(service, "l1").active = 9
    stats(service, "l2").active = 6  # both over soft; fra is idle but farther
    decision = route(service)
    assert (chosen(decision), decision.reason) == ("l2", "spill_over_soft")


def test_hard_limit_sends_traffic_to_the_next_region() -> None:
    service = make_service(FLEET, spec(concurrency={"soft_limit": 5, "hard_limit": 8}))
    stats(service, "l1").active = 8
    stats(service, "l2").active = 8
    decision = route(service)
    assert (chosen(decision), decision.reason) == ("f1", "cross_region")
    assert "lhr" in decision.detail


def test_unhealthy_and_ejected_machines_are_skipped() -> None:
    service = make_service(FLEET)
    stats(service, "l1").healthy = False
    stats(service, "l2").ejected_until = NOW + 5
    assert (chosen(route(service)), route(service).reason) == ("f1", "cross_region")
    assert chosen(route(service, now=NOW + 5)) == "l2"  # the ejection is over


def test_maint_and_drain_take_machines_out() -> None:
    service = make_service(FLEET)
    stats(service, "l1").admin = "maint"
    stats(service, "l2").admin = "drain"
    decision = route(service)
    assert (chosen(decision), decision.reason) == ("f1", "cross_region")


def test_nearest_region_means_nearest_with_a_started_machine() -> None:
    service = make_service({"l1": "lhr", "f1": "fra"}, stopped=("l1",))
    decision = route(service)
    assert (chosen(decision), decision.reason) == ("f1", "nearest")


def test_cross_region_goes_to_the_next_nearest() -> None:
    service = make_service(FLEET, spec(concurrency={"soft_limit": 1, "hard_limit": 3}))
    for mid in ("l1", "l2", "f1"):
        stats(service, mid).active = 3
    stats(service, "i1").active = 2  # in the soft band, still the nearest with room
    decision = route(service)
    assert (chosen(decision), decision.reason) == ("i1", "cross_region")


def test_every_machine_at_hard_limit_is_no_candidate() -> None:
    service = make_service(
        {"l1": "lhr", "f1": "fra"}, spec(concurrency={"soft_limit": 1, "hard_limit": 1})
    )
    stats(service, "l1").active = 1
    stats(service, "f1").active = 1
    decision = route(service)
    assert decision.endpoint is None
    assert decision.reason == "no_candidate"
    assert "2 at hard limit" in decision.detail


def test_no_started_machines() -> None:
    service = make_service({"l1": "lhr"}, stopped=("l1",))
    decision = route(service)
    assert (decision.endpoint, decision.reason) == (None, "no_candidate")
    assert "no started machines" in decision.detail


# --- panic ---------------------------------------------------------------------------------


PANIC_FLEET = {"l1": "lhr", "f1": "fra", "f2": "fra", "i1": "iad"}


def test_panic_routes_across_unhealthy_machines() -> None:
    service = make_service(PANIC_FLEET)
    for mid in ("f1", "f2", "i1"):
        stats(service, mid).healthy = False  # 1 of 4 healthy: below 50%
    decision = route(service, pop="fra")
    assert decision.reason == "panic"
    assert chosen(decision) in {"f1", "f2"}


def test_no_panic_at_the_threshold() -> None:
    service = make_service(PANIC_FLEET)
    stats(service, "f1").healthy = False
    stats(service, "f2").ejected_until = NOW + 30  # 2 of 4 healthy: exactly 50%
    decision = route(service, pop="fra")
    assert (chosen(decision), decision.reason) == ("l1", "cross_region")


def test_panic_disabled_by_a_zero_threshold() -> None:
    service = make_service(PANIC_FLEET, spec(panic_threshold=0.0))
    for mid in ("f1", "f2", "i1"):
        stats(service, mid).healthy = False
    assert (chosen(route(service, pop="fra")), route(service, pop="fra").reason) == (
        "l1",
        "cross_region",
    )
    stats(service, "l1").healthy = False
    assert route(service, pop="fra").reason == "no_candidate"


def test_panic_still_respects_hard_limit_and_exclude() -> None:
    service = make_service(PANIC_FLEET, spec(concurrency={"soft_limit": 1, "hard_limit": 2}))
    for mid in ("f1", "f2", "i1"):
        stats(service, mid).healthy = False
    stats(service, "f1").active = 2
    decision = route(service, pop="fra", exclude=frozenset({"f2"}))
    assert chosen(decision) == "l1"
    assert decision.reason == "retry"


def test_machines_in_maintenance_do_not_count_for_panic() -> None:
    service = make_service(PANIC_FLEET)
    for mid in ("f1", "f2"):
        stats(service, mid).admin = "maint"
    stats(service, "i1").healthy = False  # 1 of the 2 in rotation is healthy: 50%
    decision = route(service, pop="fra")
    # Not panic; and fra, though all in maintenance, is still the nearest region.
    assert (chosen(decision), decision.reason) == ("l1", "cross_region")


# --- retries --------------------------------------------------------------------------------


def test_exclude_means_retry_elsewhere() -> None:
    service = make_service(FLEET)
    decision = route(service, exclude=frozenset({"l1"}))
    assert (chosen(decision), decision.reason) == ("l2", "retry")
    assert "nearest" in decision.detail
    decision = route(service, exclude=frozenset({"l1", "l2"}))
    assert (chosen(decision), decision.reason) == ("f1", "retry")
    assert "cross_region" in decision.detail


def test_everything_tried_is_no_candidate() -> None:
    service = make_service({"l1": "lhr"})
    decision = route(service, exclude=frozenset({"l1"}))
    assert (decision.endpoint, decision.reason) == (None, "no_candidate")
    assert "already tried" in decision.detail


# --- client wishes ---------------------------------------------------------------------------


def test_prefer_region_in_order() -> None:
    service = make_service(FLEET)
    assert (chosen(route(service, prefer_regions=("syd",))), "s1") == ("s1", "s1")
    assert route(service, prefer_regions=("syd",)).reason == "prefer_region"
    stats(service, "s1").healthy = False
    decision = route(service, prefer_regions=("syd", "iad"))
    assert (chosen(decision), decision.reason) == ("i1", "prefer_region")


def test_prefer_region_falls_back_to_normal_routing() -> None:
    service = make_service(FLEET)
    decision = route(service, prefer_regions=("nrt",))
    assert decision.reason == "nearest"
    assert decision.endpoint is not None
    assert decision.endpoint.region == "lhr"
    assert "preferred region" in decision.detail
    assert "nrt" in decision.detail


def test_force_region_never_falls_back() -> None:
    service = make_service(FLEET)
    decision = route(service, force_regions=("iad",))
    assert (chosen(decision), decision.reason) == ("i1", "force_region")
    decision = route(service, force_regions=("nrt", "gru"))
    assert (decision.endpoint, decision.reason) == (None, "no_candidate")
    assert "nrt, gru" in decision.detail
    stats(service, "i1").healthy = False
    assert route(service, force_regions=("iad",)).endpoint is None


def test_force_region_keeps_the_load_bands() -> None:
    service = make_service(
        {"i1": "iad", "i2": "iad", "l1": "lhr"}, spec(concurrency={"soft_limit": 3})
    )
    stats(service, "i1").active = 3
    for seed in range(10):
        assert chosen(route(service, seed=seed, force_regions=("iad",))) == "i2"


def test_prefer_instance() -> None:
    service = make_service(FLEET)
    decision = route(service, prefer_instance="s1")
    assert (chosen(decision), decision.reason) == ("s1", "prefer_instance")
    stats(service, "s1").healthy = False
    decision = route(service, prefer_instance="s1")
    assert decision.reason == "nearest"
    assert decision.detail == "preferred instance s1 unavailable: failing health checks"


def test_force_instance() -> None:
    service = make_service(FLEET)
    decision = route(service, force_instance="s1")
    assert (chosen(decision), decision.reason) == ("s1", "force_instance")
    stats(service, "s1").healthy = False
    decision = route(service, force_instance="s1")
    assert (decision.endpoint, decision.reason) == (None, "no_candidate")
    assert decision.detail == "forced instance s1: failing health checks"
    assert route(service, force_instance="zz").detail == "forced instance zz: no such machine"
    tried = route(service, force_instance="l1", exclude=frozenset({"l1"}))
    assert tried.detail == "forced instance l1: already tried"


def test_force_instance_wins_over_regions() -> None:
    service = make_service(FLEET)
    decision = route(service, force_instance="i1", force_regions=("syd",))
    assert chosen(decision) == "i1"


# --- explanations ----------------------------------------------------------------------------


def test_explain_lists_every_endpoint_nearest_first() -> None:
    service = make_service(
        FLEET, spec(concurrency={"soft_limit": 2, "hard_limit": 3}), stopped=("s1",)
    )
    stats(service, "l1").active = 3
    stats(service, "l2").active = 2
    stats(service, "f1").ejected_until = NOW + 10
    request = RouteRequest(pop="lhr", client_key="192.0.2.1")
    report = explain(service, request, MODEL, NOW)
    assert [v.machine_id for v in report.endpoints] == ["l1", "l2", "f1", "i1", "s1"]
    views = {v.machine_id: v for v in report.endpoints}
    assert views["l1"].band == "hard" and views["l1"].why_not == "at hard limit"
    assert views["l2"].band == "soft" and views["l2"].candidate
    assert views["f1"].ejected and views["f1"].why_not.startswith("ejected")
    assert views["s1"].why_not == "not started"
    assert views["l1"].rtt == MODEL.rtt("lhr", "lhr")
    assert report.decision == explain(service, request, MODEL, NOW).decision
    assert (chosen(report.decision), report.decision.reason) == ("l2", "spill_over_soft")
    assert not report.panic
    assert report.strategy == "nearest"
