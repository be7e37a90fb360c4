"""Passive health (outlier detection): eject a machine that keeps failing real traffic.

Envoy's consecutive-5xx detector, kept on the ``EndpointStats`` routing already reads:

- a connect failure or a 5xx answer (the machine's, or the edge's 502/504 for it) is
  one failure; a non-5xx answer (or, for raw TCP, a connection that opens) ends the
  streak;
- ``consecutive_failures`` in a row eject the machine for ``base_ejection_time`` times
  the number of its ejections, this one included, capped at ``max_ejection_time``;
- at most ``max_ejection_percent`` of the service's started machines are out at once,
  but one may always be (Envoy's rule, so that small fleets still eject);
- an ejected machine returns by itself when ``ejected_until`` has passed: routing
  compares it with the time of each decision. Its failures meanwhile (it only gets
  traffic in panic mode) neither count nor lengthen the ejection.

Unlike Envoy, the ejection count never decays: the multiplier only grows, up to the cap.

These functions update the stats given, as ``edge.core.latency.observe_rtt`` does: the
runtime owns those objects, and the time is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.config.model import OutlierSpec
from edge.core.routing import EndpointStats


@dataclass(frozen=True, slots=True)
class Ejection:
    """A machine just ejected: until when, for how long, and its ejections so far."""

    until: float
    seconds: float
    count: int


def ejection_time(spec: OutlierSpec, ejections: int) -> float:
    """How long the ``ejections``-th ejection lasts."""
    return min(spec.base_ejection_time * ejections, spec.max_ejection_time)


def may_eject(ejected_now: int, machines: int, max_percent: int) -> bool:
    """Whether one more of ``machines`` may be ejected while ``ejected_now`` already are."""
    return ejected_now == 0 or (ejected_now + 1) * 100 <= max_percent * machines


def is_ejected(stats: EndpointStats, now: float) -> bool:
    return stats.ejected_until > now


def record_success(stats: EndpointStats) -> None:
    stats.consecutive_failures = 0


def record_failure(
    stats: EndpointStats, service: Sequence[EndpointStats], spec: OutlierSpec, now: float
) -> Ejection | None:
    """Count one failure of the machine; eject it when that makes enough in a row.

    ``service`` is the stats of the service's started machines (``stats`` among them).
    When the percentage forbids an ejection the streak keeps growing, so the machine
    goes as soon as a place frees up.
    """
    if is_ejected(stats, now):
        return None
    stats.consecutive_failures += 1
    if stats.consecutive_failures < spec.consecutive_failures:
        return None
    ejected_now = sum(1 for other in service if is_ejected(other, now))
    if not may_eject(ejected_now, max(len(service), 1), spec.max_ejection_percent):
        return None
    stats.ejections += 1
    seconds = ejection_time(spec, stats.ejections)
    stats.ejected_until = now + seconds
    stats.consecutive_failures = 0  # after it returns, it takes a new streak to go again
    return Ejection(stats.ejected_until, seconds, stats.ejections)
