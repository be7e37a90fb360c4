"""What traffic is doing now, for the status API and the dashboard.

Flows (client region -> PoP -> machine region, per app) carry an exponentially
decaying request rate, so the dashboard can size them without keeping history; the
last routing decisions are kept in a ring. Both are bounded: flows by apps x regions x
PoPs, decisions by the ring's size.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

RATE_TIME_CONSTANT = 5.0  # seconds: how quickly a flow's rate forgets the past
RECENT_DECISIONS = 100
_HIT = 1.0 / RATE_TIME_CONSTANT

FlowKey = tuple[str, str, str, str]  # (app, client region, pop, machine region)


class Decision(NamedTuple):
    """One routing decision, as the status API shows it. A NamedTuple: one is made per
    request, and a frozen dataclass costs about three times as much to create."""

    at: float  # unix time
    app: str
    client_region: str
    pop: str
    machine_id: str
    machine_region: str
    reason: str


class _Rate:
    __slots__ = ("stamp", "value")

    def __init__(self, now: float) -> None:
        self.value = 0.0
        self.stamp = now

    def decayed(self, now: float) -> float:
        return self.value * math.exp(-(now - self.stamp) / RATE_TIME_CONSTANT)

    def hit(self, now: float) -> None:
        self.value = self.decayed(now) + 1.0 / RATE_TIME_CONSTANT
        self.stamp = now


class TrafficLog:
    def __init__(self, size: int = RECENT_DECISIONS) -> None:
        self._flows: dict[FlowKey, _Rate] = {}
        self.recent: deque[Decision] = deque(maxlen=size)

    def record(self, decision: Decision) -> None:
        key = (decision.app, decision.client_region, decision.pop, decision.machine_region)
        rate = self._flows.get(key)
        at = decision.at
        if rate is None:
            rate = self._flows[key] = _Rate(at)
        # _Rate.hit, inlined: this runs once per request (the same arithmetic, bit for bit)
        rate.value = rate.value * math.exp((rate.stamp - at) / RATE_TIME_CONSTANT) + _HIT
        rate.stamp = at
        self.recent.append(decision)

    def flows(self, now: float, floor: float = 0.01) -> list[tuple[FlowKey, float]]:
        """Flows with their current rate (requests or connections per second)."""
        out = []
        for key, rate in list(self._flows.items()):
            value = rate.decayed(now)
            if value < floor:
                del self._flows[key]  # forget flows that went quiet
            else:
                out.append((key, value))
        return sorted(out, key=lambda item: -item[1])
