"""Catchment simulation on a fixed snapshot: deterministic, pure, and faithful to routing."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

import pytest

from edge.config.model import LatencySpec, ServiceSpec
from edge.config.regions import default_catalogue
from edge.core.catchment import (
    Catchment,
    World,
    allocate,
    parse_weight_list,
    percentile,
    resolve_weights,
    simulate,
    summarize,
)
from edge.core.latency import LatencyModel
from edge.core.routing import AppDeployment, EndpointStats, Machine, ServiceRoutes, build_snapshot
from edge.errors import BadRequest

CATALOGUE = default_catalogue()
MODEL = LatencyModel.build(LatencySpec(), CATALOGUE)
POPS = ("lhr", "iad", "syd", "nrt")
FLEET = {"l1": "lhr", "l2": "lhr", "i1": "iad", "s1": "syd"}
NOW = 1000.0


def make_service(
    placement: Mapping[str, str] = FLEET, stopped: tuple[str, ...] = (), **fields: object
) -> ServiceRoutes:
    machines = tuple(
        Machine(id=mid, app="app", region=region, host="127.0.0.1", started=mid not in stopped)
        for mid, region in placement.items()
    )
    spec = ServiceSpec.model_validate({"ports": [{"port": 80, "handlers": ["http"]}], **fields})
    app = AppDeployment("app", "org", "lhr", (spec,), machines)
    return (
        build_snapshot([app], MODEL, "edge.test", lambda *_: EndpointStats())
        .apps["app"]
        .services[80]
    )


def run(
    service: ServiceRoutes,
    weights: Mapping[str, float],
    clients: int = 100,
    pops: tuple[str, ...] = POPS,
    seed: int = 1,
) -> Catchment:
    return simulate(World(service, pops, MODEL, NOW), weights, clients, random.Random(seed))


def row(result: Catchment, region: str) -> tuple[str | None, list[tuple[str, int]], int]:
    found = next(r for r in result.regions if r.region == region)
    return found.pop, [(leg.machine_region, leg.clients) for leg in found.legs], found.unserved


def rtt(*hops: str) -> float:
    return sum(MODEL.rtt(a, b) for a, b in itertools.pairwise(hops))


# --- weights -------------------------------------------------------------------------------


def test_allocate_uses_largest_remainders_and_always_sums_to_the_total() -> None:
    assert allocate({"a": 1.0, "b": 1.0, "c": 1.0}, 10) == {"a": 4, "b": 3, "c": 3}
    assert allocate({"a": 37.2, "b": 5.3}, 1000) == {"a": 875, "b": 125}
    assert allocate({"a": 2.0, "b": 1.0}, 1) == {"a": 1, "b": 0}
    for clients in (1, 7, 999, 10_000):
        assert sum(allocate({"x": 0.3, "y": 1.7, "z": 5.0}, clients).values()) == clients


def test_weight_presets_and_lists() -> None:
    known = CATALOGUE.codes()
    regions = ["lhr", "nrt", "ams"]
    assert resolve_weights("uniform", regions, {}, known) == {"lhr": 1.0, "nrt": 1.0, "ams": 1.0}
    population = {"lhr": 14.3, "nrt": 37.2}  # ams missing: it gets no clients
    assert resolve_weights("population", regions, population, known) == population
    assert resolve_weights(" lhr:3, nrt : 1.5,syd:0", regions, {}, known) == {
        "lhr": 3.0,
        "nrt": 1.5,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lhr", "'lhr' is not REGION:WEIGHT"),
        ("lhr:x", "lhr: 'x' is not a number"),
        ("lhr:-1", "lhr: must be a finite number >= 0"),
        ("lhr:nan", "lhr: must be a finite number >= 0"),
        ("xyz:1,lhr:1", "unknown region(s) xyz"),
        ("lhr:0", "give at least one region a weight above 0"),
        ("", "give at least one region a weight above 0"),
    ],
)
def test_bad_weight_lists_are_explained(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_weight_list(text, CATALOGUE.codes())
    assert caught.value.message.startswith("weights: ")
    assert message in caught.value.message


# --- where clients land ----------------------------------------------------------------------


def test_each_region_lands_on_its_nearest_pop_and_nearest_machine_region() -> None:
    result = run(make_service(), {"nrt": 1.0, "lhr": 1.0, "cdg": 2.0, "jnb": 1.0}, clients=50)
    assert row(result, "nrt") == ("nrt", [("syd", 10)], 0)
    assert row(result, "lhr") == ("lhr", [("lhr", 10)], 0)
    assert row(result, "cdg") == ("lhr", [("lhr", 20)], 0)
    assert [r.region for r in result.regions] == ["cdg", "nrt", "lhr", "jnb"]  # by share
    nrt = next(r for r in result.regions if r.region == "nrt")
    assert nrt.access == MODEL.rtt("nrt", "nrt")
    assert nrt.legs[0].backhaul == MODEL.rtt("nrt", "syd")
    assert nrt.legs[0].rtt == rtt("nrt", "nrt", "syd")
    assert nrt.legs[0].reasons == (("nearest", 10),)


def test_a_withdrawn_pop_sends_its_clients_to_the_next_nearest() -> None:
    result = run(make_service(), {"nrt": 1.0}, clients=10, pops=("lhr", "iad", "syd"))
    assert row(result, "nrt") == ("syd", [("syd", 10)], 0)
    assert result.regions[0].legs[0].rtt == rtt("nrt", "syd", "syd")


def test_stopped_and_unhealthy_machines_are_routed_around() -> None:
    # Without syd, Tokyo's next nearest machine region is iad: Tokyo-Ashburn is measured
    # at 166 ms, Tokyo-London at 243 ms (it was lhr under the old one-inflation model).
    assert row(run(make_service(stopped=("s1",)), {"nrt": 1.0}), "nrt")[1] == [("iad", 100)]
    service = make_service()
    service.by_machine["s1"].stats.healthy = False
    assert row(run(service, {"nrt": 1.0}), "nrt")[1] == [("iad", 100)]


def test_spill_over_across_regions_shows_as_cross_region() -> None:
    service = make_service(concurrency={"type": "requests", "soft_limit": 1, "hard_limit": 2})
    service.by_machine["s1"].stats.active = 2  # at its hard limit
    result = run(service, {"syd": 1.0}, clients=5)
    assert row(result, "syd")[1] == [("iad", 5)]
    assert result.regions[0].legs[0].reasons == (("cross_region", 5),)


def test_a_strategy_can_split_one_region_over_several_machine_regions() -> None:
    service = make_service(strategy="weighted_latency", latency_exponent=0.5)
    result = run(service, {"nrt": 1.0}, clients=400)
    legs = row(result, "nrt")[1]
    assert {region for region, _ in legs} == {"syd", "lhr", "iad"}
    assert sum(n for _, n in legs) == 400
    assert legs == sorted(legs, key=lambda leg: -leg[1])
    assert run(service, {"nrt": 1.0}, clients=400) == result  # same seed, same answer


def test_no_pop_up_and_no_machine_leave_clients_unserved() -> None:
    nowhere = run(make_service(), {"lhr": 1.0, "nrt": 1.0}, clients=10, pops=())
    assert row(nowhere, "lhr") == (None, [], 5)
    assert nowhere.regions[0].why_unserved == "no PoP is up"
    assert nowhere.summary.served == 0 and nowhere.summary.median is None
    stopped = run(make_service(stopped=tuple(FLEET)), {"lhr": 1.0}, clients=10)
    assert row(stopped, "lhr") == ("lhr", [], 10)
    assert "no started machines" in stopped.regions[0].why_unserved


def test_a_region_too_small_for_a_client_still_shows_where_it_would_go() -> None:
    result = run(make_service(), {"nrt": 1000.0, "syd": 1.0}, clients=10)
    assert row(result, "syd") == ("syd", [("syd", 0)], 0)
    assert result.summary.clients == 10 and result.summary.served == 10
    assert result.distribution == ((rtt("nrt", "nrt", "syd"), 10),)


def test_client_count_is_bounded() -> None:
    with pytest.raises(BadRequest, match="clients: must be between 1 and 10000"):
        run(make_service(), {"lhr": 1.0}, clients=0)
    with pytest.raises(BadRequest):
        run(make_service(), {"lhr": 1.0}, clients=10_001)


# --- the summary -----------------------------------------------------------------------------


def test_percentiles_are_nearest_rank_over_clients() -> None:
    distribution = ((0.010, 50), (0.020, 45), (0.200, 5))
    assert percentile(distribution, 0.5) == 0.010
    assert percentile(distribution, 0.51) == 0.020
    assert percentile(distribution, 0.95) == 0.020
    assert percentile(distribution, 0.96) == 0.200
    assert percentile((), 0.5) is None
    summary = summarize(distribution, 110)
    assert (summary.clients, summary.served) == (110, 100)
    assert summary.mean == pytest.approx((0.5 + 0.9 + 1.0) / 100)


def test_summary_over_a_fixed_world() -> None:
    weights = {"lhr": 14.3, "nrt": 37.2, "ewr": 19.5, "syd": 5.3}
    result = run(make_service(), weights, clients=1000)
    assert {r.region: r.clients for r in result.regions} == {
        "nrt": 488,  # 487.55 and 255.57 have the largest remainders
        "ewr": 256,
        "lhr": 187,
        "syd": 69,
    }
    assert row(result, "ewr") == ("iad", [("iad", 256)], 0)
    assert result.distribution == (
        (rtt("lhr", "lhr", "lhr"), 187 + 69),  # syd -> syd -> syd is as short
        (rtt("ewr", "iad", "iad"), 256),
        (rtt("nrt", "nrt", "syd"), 488),
    )
    assert result.summary.median == rtt("ewr", "iad", "iad")  # client 500 of 1000
    assert result.summary.p95 == rtt("nrt", "nrt", "syd")
