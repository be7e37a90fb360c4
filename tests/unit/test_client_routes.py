"""A client's plain requests share one RouteRequest; anything that steers routing does not."""

from __future__ import annotations

import random

import pytest

from edge.config.model import EdgeConfig
from edge.config.regions import default_catalogue
from edge.core.latency import LatencyModel
from edge.core.replay import ReplayRoute
from edge.core.route_headers import route_request
from edge.dataplane.contract import ClientInfo, RouteHints
from edge.runtime.client_routes import ClientRoutes
from edge.runtime.routing_state import RoutingState

CLIENT = ClientInfo("127.0.0.9", 40000, "127.0.0.1", 80)


def clients() -> ClientRoutes:
    config = EdgeConfig.model_validate({"edge": {"pops": ["lhr"], "local_region": "lhr"}})
    model = LatencyModel.build(config.latency, default_catalogue())
    return ClientRoutes(RoutingState(config, model, random.Random(1)))


@pytest.mark.parametrize("hints", [None, RouteHints(), RouteHints(host=b"a.example")])
def test_a_plain_request_is_built_once_and_is_what_route_request_makes(
    hints: RouteHints | None,
) -> None:
    routes = clients()
    first = routes.request("lhr", CLIENT, hints, frozenset())
    assert routes.request("lhr", CLIENT, hints, frozenset()) is first
    state = routes.state
    assert first == route_request(
        "lhr", CLIENT.peer_ip, hints, state.valid_regions, frozenset(), state.aliases
    )
    assert routes.request("iad", CLIENT, hints, frozenset()).pop == "iad"


STEERED = [
    (RouteHints(prefer_region=b"iad"), frozenset[str]()),
    (RouteHints(force_region=b"syd"), frozenset[str]()),
    (RouteHints(prefer_instance=b"m1"), frozenset[str]()),
    (RouteHints(force_instance=b"m1"), frozenset[str]()),
    (RouteHints(replay=ReplayRoute("web", "web", regions=("iad",))), frozenset[str]()),
    (None, frozenset({"m1"})),  # a retry
]


@pytest.mark.parametrize(("hints", "exclude"), STEERED)
def test_a_steered_request_or_a_retry_is_parsed_each_time(
    hints: RouteHints | None, exclude: frozenset[str]
) -> None:
    routes = clients()
    request = routes.request("lhr", CLIENT, hints, exclude)
    state = routes.state
    expected = route_request(
        "lhr", CLIENT.peer_ip, hints, state.valid_regions, exclude, state.aliases
    )
    assert request == expected
    assert request != routes.request("lhr", CLIENT, None, frozenset())
