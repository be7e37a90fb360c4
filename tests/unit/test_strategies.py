"""The balancing strategies, slow start, peak EWMA and Maglev."""

from __future__ import annotations

import math
import random

import pytest

from edge.core.latency import EWMA_DEFAULT_RTT, observe_rtt, peak_ewma
from edge.core.maglev import TABLE_SIZE, build_table
from edge.core.routing import EndpointStats, RouteRequest, decide
from edge.core.strategies import p2c_cost, slow_start_factor
from tests.unit.test_routing import MODEL, NOW, chosen, make_service, route, spec, stats


def share(picks: list[str | None], machine_id: str) -> float:
    return picks.count(machine_id) / len(picks)


def many(service: object, count: int, **wishes: object) -> list[str | None]:
    rng = random.Random(42)
    request = RouteRequest(pop=str(wishes.pop("pop", "lhr")), **wishes)  # type: ignore[arg-type]
    return [chosen(decide(service, request, MODEL, NOW, rng)) for _ in range(count)]  # type: ignore[arg-type]


# --- slow start -----------------------------------------------------------------------------


def test_slow_start_factor_ramps_linearly_from_ten_percent() -> None:
    s = EndpointStats()
    s.ready_since = 100.0
    assert slow_start_factor(s, 100.0, 60.0) == pytest.approx(0.1)
    assert slow_start_factor(s, 90.0, 60.0) == pytest.approx(0.1)
    assert slow_start_factor(s, 130.0, 60.0) == pytest.approx(0.55)
    assert slow_start_factor(s, 160.0, 60.0) == 1.0
    assert slow_start_factor(s, 100.0, 0.0) == 1.0  # slow start off
    assert slow_start_factor(EndpointStats(), 0.0, 60.0) == 1.0  # never became ready


def test_slow_start_makes_nearest_skip_a_new_machine_mostly() -> None:
    service = make_service({"old": "lhr", "new": "lhr"}, spec(slow_start="60s"))
    stats(service, "new").ready_since = NOW  # factor 0.1: chosen 0.1 / 1.1 of the time
    assert 0.06 < share(many(service, 3000), "new") < 0.12
    stats(service, "new").ready_since = NOW - 60  # fully ramped: half
    assert 0.45 < share(many(service, 3000), "new") < 0.55


def test_weights_split_ties_in_nearest() -> None:
    service = make_service({"a": "lhr", "b": "lhr"}, weights={"a": 1, "b": 3})
    assert 0.72 < share(many(service, 3000), "b") < 0.78


# --- weighted_latency ------------------------------------------------------------------------


def test_weighted_latency_is_proportional_to_weight_over_rtt_squared() -> None:
    service = make_service({"l1": "lhr", "f1": "fra"}, spec(strategy="weighted_latency"))
    near, far = MODEL.rtt("lhr", "lhr"), MODEL.rtt("lhr", "fra")
    expected = (1 / far**2) / (1 / near**2 + 1 / far**2)
    picks = many(service, 6000)
    assert share(picks, "f1") == pytest.approx(expected, abs=0.015)
    assert route(service).reason == "weighted_latency"


def test_weighted_latency_exponent_and_weight() -> None:
    service = make_service(
        {"l1": "lhr", "f1": "fra"},
        spec(strategy="weighted_latency", latency_exponent=1.0),
        weights={"f1": 4},
    )
    near, far = MODEL.rtt("lhr", "lhr"), MODEL.rtt("lhr", "fra")
    expected = (4 / far) / (1 / near + 4 / far)
    assert share(many(service, 6000), "f1") == pytest.approx(expected, abs=0.02)


def test_weighted_latency_prefers_machines_below_soft() -> None:
    service = make_service(
        {"l1": "lhr", "f1": "fra"}, spec(strategy="weighted_latency", concurrency={"soft_limit": 2})
    )
    stats(service, "l1").active = 2
    assert set(many(service, 200)) == {"f1"}


# --- least_connections -----------------------------------------------------------------------


def test_least_connections_takes_the_fewest_active_even_far_away() -> None:
    service = make_service(
        {"l1": "lhr", "l2": "lhr", "s1": "syd"}, spec(strategy="least_connections")
    )
    stats(service, "l1").active = 3
    stats(service, "l2").active = 2
    decision = route(service)
    assert (chosen(decision), decision.reason) == ("s1", "least_connections")


def test_least_connections_ties_go_nearer_then_random() -> None:
    service = make_service(
        {"l1": "lhr", "l2": "lhr", "s1": "syd"}, spec(strategy="least_connections")
    )
    assert set(many(service, 100)) == {"l1", "l2"}
    stats(service, "l1").active = 1
    assert set(many(service, 50)) == {"l2"}
    far_first = make_service({"s1": "syd", "l1": "lhr"}, spec(strategy="least_connections"))
    assert set(many(far_first, 20)) == {"l1"}


def test_least_connections_divides_by_weight() -> None:
    service = make_service(
        {"a": "lhr", "b": "lhr"}, spec(strategy="least_connections"), weights={"a": 2}
    )
    stats(service, "a").active = 3  # (3 + 1) / 2 = 2
    stats(service, "b").active = 2  # (2 + 1) / 1 = 3
    assert set(many(service, 20)) == {"a"}


# --- p2c_peak_ewma --------------------------------------------------------------------------


def test_observe_rtt_jumps_up_and_decays_down() -> None:
    s = EndpointStats()
    observe_rtt(s, 0.050, now=10.0)
    assert (s.ewma_rtt, s.ewma_stamp) == (0.050, 10.0)
    observe_rtt(s, 0.200, now=11.0)
    assert s.ewma_rtt == 0.200  # the peak is taken at once
    observe_rtt(s, 0.100, now=21.0)
    keep = math.exp(-1.0)
    assert s.ewma_rtt == pytest.approx(0.200 * keep + 0.100 * (1 - keep))


def test_peak_ewma_relaxes_towards_the_prior() -> None:
    s = EndpointStats()
    assert peak_ewma(s, 5.0, prior=0.040) == 0.040  # never measured
    observe_rtt(s, 0.300, now=0.0)
    assert peak_ewma(s, 0.0, 0.040) == pytest.approx(0.300)
    assert peak_ewma(s, 10.0, 0.040) == pytest.approx(0.040 + 0.260 * math.exp(-1.0))
    assert peak_ewma(s, 1000.0, 0.040) == pytest.approx(0.040)


def test_p2c_cost_uses_load_and_the_model_for_unmeasured_machines() -> None:
    service = make_service({"l1": "lhr", "s1": "syd"})
    near, far = service.by_machine["l1"], service.by_machine["s1"]
    assert p2c_cost(near, MODEL.rtt("lhr", "lhr"), NOW, 0.0) == EWMA_DEFAULT_RTT
    assert p2c_cost(far, MODEL.rtt("lhr", "syd"), NOW, 0.0) == MODEL.rtt("lhr", "syd")
    near.stats.active = 3
    assert p2c_cost(near, MODEL.rtt("lhr", "lhr"), NOW, 0.0) == pytest.approx(4 * EWMA_DEFAULT_RTT)


def test_p2c_keeps_the_cheaper_of_two() -> None:
    service = make_service({"a": "lhr", "b": "lhr"}, spec(strategy="p2c_peak_ewma"))
    observe_rtt(stats(service, "a"), 0.100, NOW)
    observe_rtt(stats(service, "b"), 0.005, NOW)
    assert set(many(service, 50)) == {"b"}
    stats(service, "b").active = 40  # 0.005 * 41 > 0.100 * 1
    assert set(many(service, 50)) == {"a"}
    assert route(service).reason == "p2c_peak_ewma"


def test_p2c_never_picks_the_most_expensive_of_three() -> None:
    service = make_service({"a": "lhr", "b": "lhr", "c": "lhr"}, spec(strategy="p2c_peak_ewma"))
    stats(service, "c").active = 10
    picks = many(service, 600)
    assert "c" not in picks
    assert 0.4 < share(picks, "a") < 0.6


# --- maglev ------------------------------------------------------------------------------------


def test_maglev_table_spreads_evenly_and_by_weight() -> None:
    shares = build_table(["a", "b", "c"]).shares()
    assert sum(shares) == TABLE_SIZE
    assert max(shares) - min(shares) <= 1
    assert build_table(["a", "b"], [1, 2]).shares() == [21846, 43691]  # as in Envoy's docs


def test_maglev_table_edge_cases() -> None:
    empty = build_table([])
    assert empty.lookup("k") is None
    assert list(empty.probe("k")) == []
    with pytest.raises(ValueError, match="positive weight"):
        build_table(["a"], [0])
    with pytest.raises(ValueError, match="positive weight"):
        build_table(["a", "b"], [1])
    table = build_table(["a", "b", "c"], size=101)
    assert sorted(table.probe("key")) == [0, 1, 2]
    assert next(iter(table.probe("key"))) == table.lookup("key")


def test_maglev_is_deterministic() -> None:
    names = [f"m{i}" for i in range(7)]
    assert build_table(names).slots == build_table(names).slots


def test_maglev_removing_one_backend_moves_few_other_keys() -> None:
    names = [f"machine-{i}" for i in range(10)]
    before = build_table(names)
    after = build_table([n for n in names if n != "machine-3"])
    kept = moved = 0
    for k in range(20000):
        key = f"198.51.100.{k}"
        old = before.names[before.lookup(key)]  # type: ignore[index]
        new = after.names[after.lookup(key)]  # type: ignore[index]
        if old == "machine-3":
            continue
        kept += 1
        moved += old != new
    assert moved / kept < 0.03


def test_maglev_spreads_keys() -> None:
    table = build_table([f"m{i}" for i in range(5)])
    counts = [0] * 5
    for k in range(10000):
        counts[table.lookup(f"client-{k}")] += 1  # type: ignore[index]
    assert all(1700 < c < 2300 for c in counts)


def test_maglev_decision_follows_the_client_key() -> None:
    service = make_service({f"m{i}": "lhr" for i in range(6)}, spec(strategy="maglev"))
    first = route(service, client_key="203.0.113.9", seed=1)
    assert first.reason == "maglev"
    assert all(
        chosen(route(service, client_key="203.0.113.9", seed=seed)) == chosen(first)
        for seed in range(10)
    )
    spread = {chosen(route(service, client_key=f"203.0.113.{k}")) for k in range(60)}
    assert len(spread) == 6
    assert service.maglev_table() is service.maglev_table()  # built once, cached


def test_maglev_falls_back_past_an_unavailable_machine() -> None:
    service = make_service({f"m{i}": "lhr" for i in range(6)}, spec(strategy="maglev"))
    key = "203.0.113.9"
    usual = chosen(route(service, client_key=key))
    assert usual is not None
    stats(service, usual).healthy = False
    fallback = chosen(route(service, client_key=key))
    assert fallback not in {None, usual}
    assert chosen(route(service, client_key=key, seed=5)) == fallback
    stats(service, usual).healthy = True
    assert chosen(route(service, client_key=key)) == usual


def test_maglev_within_a_forced_region() -> None:
    service = make_service(
        {"l1": "lhr", "l2": "lhr", "s1": "syd", "s2": "syd"}, spec(strategy="maglev")
    )
    picks = {chosen(route(service, client_key=f"k{k}", force_regions=("syd",))) for k in range(40)}
    assert picks == {"s1", "s2"}
    assert route(service, client_key="k1", force_regions=("syd",)).reason == "force_region"


@pytest.mark.parametrize(
    "strategy", ["weighted_latency", "least_connections", "p2c_peak_ewma", "maglev"]
)
def test_every_strategy_respects_candidates(strategy: str) -> None:
    service = make_service({"l1": "lhr", "l2": "lhr", "f1": "fra"}, spec(strategy=strategy))
    stats(service, "l1").healthy = False
    picks = {chosen(route(service, seed=seed, client_key=f"k{seed}")) for seed in range(60)}
    assert "l1" not in picks
    assert route(service, exclude=frozenset({"l2"})).reason == "retry"
    for mid in ("l2", "f1"):
        stats(service, mid).admin = "drain"
    # l1 is now the only machine in rotation and it is unhealthy: panic takes it anyway.
    assert (chosen(route(service, client_key="k")), route(service).reason) == ("l1", "panic")
    stats(service, "l1").admin = "maint"
    assert route(service).reason == "no_candidate"


# --- the samplers that avoid scanning every endpoint ----------------------------------------


def test_weighted_latency_when_every_machine_is_in_the_soft_band() -> None:
    # The sampler only accepts machines below soft, so this is the scanning fallback.
    service = make_service(
        {"l1": "lhr", "f1": "fra"}, spec(strategy="weighted_latency", concurrency={"soft_limit": 1})
    )
    stats(service, "l1").active = 1
    stats(service, "f1").active = 1
    near, far = MODEL.rtt("lhr", "lhr"), MODEL.rtt("lhr", "fra")
    expected = (1 / far**2) / (1 / near**2 + 1 / far**2)
    assert share(many(service, 6000), "f1") == pytest.approx(expected, abs=0.015)


def test_weighted_latency_sampler_thins_by_slow_start() -> None:
    service = make_service(
        {"a": "lhr", "b": "lhr"}, spec(strategy="weighted_latency", slow_start="10s")
    )
    stats(service, "b").ready_since = NOW  # factor 0.1
    assert 0.06 < share(many(service, 4000), "b") < 0.12


@pytest.mark.parametrize("strategy", ["weighted_latency", "p2c_peak_ewma"])
def test_samplers_fall_back_to_a_scan_when_candidates_are_rare(strategy: str) -> None:
    placement = {f"m{i}": "lhr" for i in range(60)}
    service = make_service(placement, spec(strategy=strategy, panic_threshold=0.0))
    for mid in placement:
        stats(service, mid).healthy = mid == "m42"
    assert set(many(service, 30)) == {"m42"}


@pytest.mark.parametrize(
    "strategy", ["nearest", "weighted_latency", "least_connections", "p2c_peak_ewma", "maglev"]
)
def test_no_started_machine_with_every_strategy(strategy: str) -> None:
    service = make_service({"l1": "lhr"}, spec(strategy=strategy), stopped=("l1",))
    decision = route(service, client_key="k")
    assert (decision.endpoint, decision.reason) == (None, "no_candidate")
