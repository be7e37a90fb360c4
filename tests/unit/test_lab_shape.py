"""The lab's link shapes: fault arguments and the per-frame delay-line rule."""

from __future__ import annotations

import pytest

from edge.lab.shape import Shape, netem_args, parse_fault, schedule

BASE = Shape(delay=0.1)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["loss=1%"], Shape(delay=0.1, loss=0.01)),
        (["delay=+50ms"], Shape(delay=0.1, extra_delay=0.05)),
        (["rate=1mbit"], Shape(delay=0.1, rate=125000.0)),
        (["partition"], Shape(delay=0.1, partition=True)),
        (["loss=5%", "delay=+1s"], Shape(delay=0.1, loss=0.05, extra_delay=1.0)),
        (["partition", "clear"], Shape(delay=0.1)),
    ],
)
def test_parse_fault(items: list[str], expected: Shape) -> None:
    assert parse_fault(items, BASE) == expected


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["loss=200%"], "between 0% and 100%"),
        (["loss=lots"], "not a percentage"),
        (["delay=fast"], "not a duration"),
        (["delay=+20s"], "at most 10s"),
        (["rate=1bit"], "at least 8kbit"),
        (["rate=quick"], "not a rate"),
        (["bogus"], "use loss=N%"),
        ([], "at least one"),
    ],
)
def test_bad_faults_say_what_to_write(items: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(items, BASE)


def test_delay_and_order() -> None:
    first = schedule(
        BASE, now=10.0, size=100, last_due=0.0, free_at=0.0, loss_draw=0.5, jitter_draw=0.5
    )
    assert not first.drop and first.due == pytest.approx(10.1)
    jittery = Shape(delay=0.1, jitter=0.05)
    early = schedule(jittery, 10.001, 100, first.due, 0.0, 0.5, 0.0)  # would leave at 10.051
    assert early.due == pytest.approx(first.due)  # never before the frame ahead


def test_loss_partition_and_rate() -> None:
    lossy = Shape(delay=0.0, loss=0.25)
    assert schedule(lossy, 0.0, 1, 0.0, 0.0, 0.2, 0.5).drop
    assert not schedule(lossy, 0.0, 1, 0.0, 0.0, 0.3, 0.5).drop
    assert schedule(Shape(partition=True), 0.0, 1, 0.0, 0.0, 0.9, 0.5).drop
    slow = Shape(delay=0.01, rate=1000.0)  # 1 kB/s: a 500-byte frame takes 0.5 s
    one = schedule(slow, 0.0, 500, 0.0, 0.0, 0.9, 0.5)
    two = schedule(slow, 0.0, 500, one.due, one.free_at, 0.9, 0.5)
    assert one.due == pytest.approx(0.51) and two.due == pytest.approx(1.01)


@pytest.mark.parametrize(
    ("shape", "args"),
    [
        (Shape(delay=0.1), ["delay", "100.000ms", "limit", "100000"]),
        (Shape(delay=0.1, jitter=0.002), ["delay", "100.000ms", "2.000ms", "limit", "100000"]),
        (Shape(delay=0.1, extra_delay=0.05, loss=0.01),
         ["delay", "150.000ms", "loss", "1%", "limit", "100000"]),
        (Shape(delay=0.0, rate=125000.0),
         ["delay", "0.000ms", "rate", "1000000bit", "limit", "100000"]),
        (Shape(delay=0.0, partition=True), ["delay", "0.000ms", "loss", "100%", "limit", "100000"]),
    ],
)  # fmt: skip
def test_netem_arguments(shape: Shape, args: list[str]) -> None:
    assert netem_args(shape) == args
