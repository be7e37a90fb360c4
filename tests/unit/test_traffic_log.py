"""The traffic log's flow rates: an exponentially decaying rate per flow, bounded history."""

from __future__ import annotations

import math

import pytest

from edge.runtime.traffic import RATE_TIME_CONSTANT, Decision, TrafficLog, _Rate


def decision(at: float, app: str = "web") -> Decision:
    return Decision(at, app, "syd", "syd", "m1", "lhr", "nearest")


@pytest.mark.parametrize("times", [[100.0], [100.0, 100.5, 101.0], [100.0, 140.0, 140.001]])
def test_the_inlined_hit_is_the_rates_own_arithmetic(times: list[float]) -> None:
    log, rate = TrafficLog(), _Rate(times[0])
    for at in times:
        log.record(decision(at))
        rate.hit(at)
    ((key, value),) = log.flows(times[-1])
    assert key == ("web", "syd", "syd", "lhr")
    assert value == rate.decayed(times[-1])  # bit for bit


def test_a_rate_decays_and_a_quiet_flow_is_forgotten() -> None:
    log = TrafficLog(size=2)
    for at in (100.0, 100.0, 100.0):
        log.record(decision(at))
    ((_, value),) = log.flows(100.0)
    assert value == pytest.approx(3 / RATE_TIME_CONSTANT)
    ((_, later),) = log.flows(105.0)
    assert later == pytest.approx(value * math.exp(-1))
    assert len(log.recent) == 2  # the ring is bounded
    assert log.flows(200.0) == []
