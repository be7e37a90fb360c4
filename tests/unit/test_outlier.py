"""Outlier detection: consecutive failures, ejection time, the ejection cap, return."""

from __future__ import annotations

import pytest

from edge.config.model import OutlierSpec
from edge.core.outlier import (
    Ejection,
    ejection_time,
    is_ejected,
    may_eject,
    record_failure,
    record_success,
)
from edge.core.routing import EndpointStats
from tests.unit.test_routing import chosen, make_service, route, stats

SPEC = OutlierSpec()  # 5 failures, 30 s base, 300 s cap, 10 %
NOW = 1000.0


def fleet(size: int) -> list[EndpointStats]:
    return [EndpointStats() for _ in range(size)]


def fail(
    target: EndpointStats, service: list[EndpointStats], times: int, now: float = NOW
) -> Ejection | None:
    ejection = None
    for _ in range(times):
        ejection = record_failure(target, service, SPEC, now)
    return ejection


def test_ejection_time_grows_with_each_ejection_and_is_capped() -> None:
    assert [ejection_time(SPEC, n) for n in (1, 2, 3, 9, 10, 11, 50)] == [
        30.0, 60.0, 90.0, 270.0, 300.0, 300.0, 300.0,
    ]  # fmt: skip
    spec = OutlierSpec.model_validate({"base_ejection_time": "10s", "max_ejection_time": "25s"})
    assert [ejection_time(spec, n) for n in (1, 2, 3)] == [10.0, 20.0, 25.0]


def test_consecutive_failures_eject() -> None:
    service = fleet(2)
    target = service[0]
    assert fail(target, service, 4) is None
    assert target.consecutive_failures == 4
    assert not is_ejected(target, NOW)
    assert fail(target, service, 1) == Ejection(until=NOW + 30.0, seconds=30.0, count=1)
    assert is_ejected(target, NOW)
    assert target.ejections == 1
    assert target.consecutive_failures == 0


def test_a_success_ends_the_streak() -> None:
    service = fleet(2)
    target = service[0]
    fail(target, service, 4)
    record_success(target)
    assert fail(target, service, 4) is None
    assert fail(target, service, 1) is not None


def test_an_ejected_machine_returns_when_its_time_is_up() -> None:
    service = fleet(2)
    target = service[0]
    fail(target, service, 5)
    assert is_ejected(target, NOW + 29.9)
    assert not is_ejected(target, NOW + 30.0)


def test_failures_while_ejected_do_not_count_or_extend() -> None:
    service = fleet(2)
    target = service[0]
    fail(target, service, 5)
    assert fail(target, service, 20, now=NOW + 10) is None
    assert target.ejected_until == NOW + 30.0
    assert target.consecutive_failures == 0


def test_each_ejection_lasts_longer() -> None:
    service = fleet(2)
    target = service[0]
    now = NOW
    lengths = []
    for _ in range(12):
        ejection = fail(target, service, 5, now=now)
        assert ejection is not None
        lengths.append(ejection.seconds)
        now = ejection.until  # back in rotation, and failing again
    assert lengths == [30.0 * n for n in range(1, 11)] + [300.0, 300.0]
    assert target.ejections == 12


def test_max_ejection_percent() -> None:
    assert may_eject(0, 10, 10)
    assert not may_eject(1, 10, 10)
    assert may_eject(1, 20, 10)
    assert not may_eject(2, 20, 10)
    assert may_eject(2, 4, 75)
    assert not may_eject(3, 4, 75)


@pytest.mark.parametrize("percent", [0, 10, 30])
def test_at_least_one_machine_may_always_be_ejected(percent: int) -> None:
    assert may_eject(0, 3, percent)
    assert not may_eject(1, 3, percent)


def test_the_cap_holds_a_second_machine_back_until_a_place_frees() -> None:
    service = fleet(3)
    first, second = service[0], service[1]
    assert fail(first, service, 5) is not None
    assert fail(second, service, 7) is None  # 10 % of 3: only one out at a time
    assert not is_ejected(second, NOW)
    assert second.consecutive_failures == 7
    later = NOW + 30.0  # the first is back: the next failure ejects the second
    assert fail(second, service, 1, now=later) == Ejection(later + 30.0, 30.0, 1)


def test_half_may_be_ejected_when_allowed() -> None:
    spec = OutlierSpec(max_ejection_percent=50)
    service = fleet(4)
    ejected = [record_failure(s, service, spec, NOW) for s in service for _ in range(5)]
    assert sum(1 for s in service if is_ejected(s, NOW)) == 2
    assert sum(1 for e in ejected if e is not None) == 2


def test_configurable_threshold() -> None:
    spec = OutlierSpec(consecutive_failures=2)
    service = fleet(2)
    assert record_failure(service[0], service, spec, NOW) is None
    assert record_failure(service[0], service, spec, NOW) is not None


def test_routing_avoids_an_ejected_machine_until_it_returns() -> None:
    service = make_service({"l1": "lhr", "l2": "lhr", "f1": "fra"})
    target = stats(service, "l1")
    fail(target, list(service.started_stats), 5)
    picks = {chosen(route(service, seed=seed, now=NOW)) for seed in range(50)}
    assert picks == {"l2"}
    picks = {chosen(route(service, seed=seed, now=NOW + 30.0)) for seed in range(50)}
    assert picks == {"l1", "l2"}
