"""How a lab link treats packets (delay, jitter, loss, rate, partition), as pure values.

``parse_fault`` reads ``scripts/lab fault`` arguments (``loss=1%``, ``delay=+50ms``,
``rate=1mbit``, ``partition``, ``clear``); ``schedule`` is the per-packet rule of the
delay line (``edge.lab.wire``): when a frame of ``size`` bytes that arrives ``now``
leaves the link. Frames leave in arrival order, as on a wire (jitter never reorders).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)(us|ms|s)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps)$")
_RATE_UNITS = {
    "bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8,
    "bps": 1.0, "kbps": 1e3, "mbps": 1e6,
}  # fmt: skip
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
MIN_RATE = 1000.0  # bytes per second; below this a link is better partitioned


@dataclass(frozen=True, slots=True)
class Shape:
    """One direction of a link: base delay and the faults added on top."""

    delay: float = 0.0  # seconds, one way (the latency model's share)
    jitter: float = 0.0  # seconds, +- uniform
    extra_delay: float = 0.0  # seconds added by a fault
    loss: float = 0.0  # probability a frame is dropped
    rate: float | None = None  # bytes per second, None: unlimited
    partition: bool = False

    def cleared(self) -> Shape:
        return Shape(delay=self.delay, jitter=self.jitter)

    def describe(self) -> str:
        parts = [f"delay {self.delay * 1000:.2f}ms"]
        if self.jitter:
            parts.append(f"jitter {self.jitter * 1000:.2f}ms")
        if self.extra_delay:
            parts.append(f"+{self.extra_delay * 1000:.1f}ms")
        if self.loss:
            parts.append(f"loss {self.loss * 100:g}%")
        if self.rate is not None:
            parts.append(f"rate {self.rate * 8 / 1000:g}kbit")
        if self.partition:
            parts.append("PARTITIONED")
        return ", ".join(parts)


def parse_fault(items: Sequence[str], base: Shape) -> Shape:
    """The shape after ``items`` are applied to ``base``; ValueError names a bad item."""
    if not items:
        raise ValueError("give at least one of loss=N%, delay=+Nms, rate=Nmbit, partition, clear")
    shape = base
    for item in items:
        key, sep, value = item.partition("=")
        if key == "clear" and not sep:
            shape = shape.cleared()
        elif key == "partition" and not sep:
            shape = replace(shape, partition=True)
        elif key == "loss" and sep:
            shape = replace(shape, loss=_percent(value))
        elif key == "delay" and sep:
            shape = replace(shape, extra_delay=_duration(value))
        elif key == "rate" and sep:
            shape = replace(shape, rate=_rate(value))
        else:
            raise ValueError(
                f"{item!r}: use loss=N%, delay=+Nms, rate=Nmbit (bit/kbit/mbit/gbit), "
                "partition or clear"
            )
    return shape


def _percent(text: str) -> float:
    number = text[:-1] if text.endswith("%") else text
    try:
        value = float(number) / 100
    except ValueError:
        raise ValueError(f"loss={text}: not a percentage (e.g. loss=1%)") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"loss={text}: must be between 0% and 100%")
    return value


def _duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"delay={text}: not a duration (e.g. delay=+50ms)")
    value = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if value > 10.0:
        raise ValueError(f"delay={text}: at most 10s")
    return value


def _rate(text: str) -> float:
    match = _RATE.match(text.lower())
    if match is None:
        raise ValueError(f"rate={text}: not a rate (e.g. rate=1mbit)")
    value = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if value < MIN_RATE:
        raise ValueError(f"rate={text}: at least 8kbit (use partition to cut a link)")
    return value


@dataclass(frozen=True, slots=True)
class Scheduled:
    """The decision for one frame: dropped, or when it leaves and when the link is free."""

    drop: bool
    due: float = 0.0
    free_at: float = 0.0


def schedule(
    shape: Shape,
    now: float,
    size: int,
    last_due: float,
    free_at: float,
    loss_draw: float,
    jitter_draw: float,
) -> Scheduled:
    """When a frame arriving ``now`` leaves the link.

    ``loss_draw`` and ``jitter_draw`` are uniform in [0, 1) (the caller's rng). With a
    rate the frame first waits for the link to be free and then for its own
    serialisation; then it travels ``delay + extra_delay +- jitter``, never leaving
    before the frame ahead of it.
    """
    if shape.partition or loss_draw < shape.loss:
        return Scheduled(drop=True)
    sent = now
    if shape.rate is not None:
        sent = max(now, free_at) + size / shape.rate
        free_at = sent
    travel = shape.delay + shape.extra_delay + shape.jitter * (2.0 * jitter_draw - 1.0)
    return Scheduled(drop=False, due=max(last_due, sent + max(0.0, travel)), free_at=free_at)


NETEM_LIMIT = 100000  # packets queued per qdisc: 200+ ms of delay under load needs room


def netem_args(shape: Shape) -> list[str]:
    """The ``tc qdisc ... netem`` arguments for ``shape`` (a partition is 100 % loss)."""
    args = ["delay", f"{(shape.delay + shape.extra_delay) * 1000:.3f}ms"]
    if shape.jitter:
        args.append(f"{shape.jitter * 1000:.3f}ms")
    loss = 1.0 if shape.partition else shape.loss
    if loss:
        args += ["loss", f"{loss * 100:g}%"]
    if shape.rate is not None:
        args += ["rate", f"{round(shape.rate * 8)}bit"]
    return [*args, "limit", str(NETEM_LIMIT)]
