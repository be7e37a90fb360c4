"""The runtime's replay rules: the target app within the org, the decision's reason."""

from __future__ import annotations

import pytest

from edge.config.model import HttpSpec, LatencySpec, PortSpec, ServiceSpec
from edge.config.regions import default_catalogue
from edge.core.error_codes import ErrorCode
from edge.core.latency import LatencyModel
from edge.core.replay import ReplayRoute
from edge.core.routing import (
    AppDeployment,
    EndpointStats,
    Machine,
    RouteDecision,
    ServiceRoutes,
    build_snapshot,
)
from edge.dataplane.contract import NoUpstream, ReplayReport, RouteHints
from edge.runtime.replay_routing import ReplayLog, as_replay, replay_app_service
from edge.runtime.routing_state import routing_view

MODEL = LatencyModel.build(LatencySpec(), default_catalogue())


def service(*ports: tuple[int, tuple[str, ...]]) -> ServiceSpec:
    return ServiceSpec(ports=tuple(PortSpec(port=p, handlers=h) for p, h in ports))


def app(name: str, org: str, spec: ServiceSpec) -> AppDeployment:
    machine = Machine(id=f"{name}-1", app=name, region="lhr", host="127.0.0.1", ports={8080: 9000})
    return AppDeployment(name, org, "lhr", (spec,), (machine,))


SNAPSHOT = build_snapshot(
    [
        app("web", "acme", service((80, ("http",)))),
        app("api", "acme", service((80, ("http",)))),
        app("admin", "acme", service((9000, ("http",)))),
        app("raw", "acme", service((7000, ()))),
        app("theirs", "other", service((80, ("http",)))),
    ],
    MODEL,
    "edge.test",
    lambda *_: EndpointStats(),
)


def target(name: str, port: int = 80) -> ServiceRoutes | NoUpstream:
    route = ReplayRoute(app=name, source_app="web")
    return replay_app_service(SNAPSHOT, RouteHints(replay=route), port)


@pytest.mark.parametrize(
    ("name", "port", "app_name", "code"),
    [
        ("web", 80, "web", None),  # the same app
        ("api", 80, "api", None),  # same org, same port
        ("admin", 80, "admin", None),  # same org: its first http service
        ("raw", 80, None, ErrorCode.PA04),  # no http service
        ("nope", 80, None, ErrorCode.PA04),
        ("theirs", 80, None, ErrorCode.PA05),
    ],
)
def test_replay_app_service(
    name: str, port: int, app_name: str | None, code: ErrorCode | None
) -> None:
    found = target(name, port)
    if code is None:
        assert isinstance(found, ServiceRoutes) and found.app == app_name
    else:
        assert isinstance(found, NoUpstream) and found.code == code
        assert found.status == (403 if code == ErrorCode.PA05 else 502)


def test_as_replay_names_the_replay() -> None:
    route = ReplayRoute(app="web", source_app="web", why="replay from m1: region=lhr")
    endpoint = next(iter(SNAPSHOT.apps["web"].services.values())).endpoints[0]
    chosen = as_replay(RouteDecision(endpoint, "force_region", ""), route)
    assert (chosen.reason, chosen.detail) == ("replay", "replay from m1: region=lhr; force_region")
    none = as_replay(
        RouteDecision(None, "no_candidate", "no candidate in forced region(s) fra"), route
    )
    assert none.reason == "no_candidate" and none.detail.startswith("replay from m1")


def test_the_routing_view_holds_each_service_ports_policy_built_once() -> None:
    view = routing_view(SNAPSHOT, HttpSpec(replay_buffer=4096))
    assert set(view.policies) == {
        ("web", 80),
        ("api", 80),
        ("admin", 9000),
        ("raw", 7000),
        ("theirs", 80),
    }
    assert view.policies[("web", 80)].replay_buffer == 4096
    assert view.services[("web", 80)] is SNAPSHOT.apps["web"].services[80]
    assert set(view.services) == set(view.policies)
    assert view.no_policy.replay_buffer == 4096  # a service reached on a port it lacks


def test_replay_log_flows_within_the_window() -> None:
    log = ReplayLog(size=3)
    for at, target_region in ((100.0, "lhr"), (125.0, "lhr"), (126.0, "iad"), (127.0, "")):
        log.append(ReplayReport(at, "web", "m1", "syd", "region=lhr", "replayed",
                                target_region=target_region))  # fmt: skip
    assert [r.at for r in log] == [125.0, 126.0, 127.0]  # bounded
    assert log.flows({"web"}, now=140.0) == [
        {"app": "web", "from_region": "syd", "to_region": "iad", "result": "replayed", "count": 1},
        {"app": "web", "from_region": "syd", "to_region": "lhr", "result": "replayed", "count": 1},
    ]
    assert log.flows({"web"}, now=200.0) == [] and log.flows({"other"}, now=140.0) == []
