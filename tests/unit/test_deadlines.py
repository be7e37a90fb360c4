"""The loop's one deadline sweep (edge.dataplane.deadlines), driven by a FakeClock.

``sweep()`` is called by hand after the clock is advanced: nothing sleeps. The loop is
real but never run, except in the last tests, which check the sweep's own timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edge.core.clock import FakeClock
from edge.core.relay_decisions import DeadlineKind
from edge.dataplane.deadlines import INF, DeadlineSweep, sweep_for
from edge.dataplane.http_tracker import HttpConnectionTracker


class Item:
    """A timed thing that records what the sweep told it."""

    def __init__(
        self,
        deadline: float = INF,
        kind: DeadlineKind = DeadlineKind.CONNECT,
        then: Callable[[Item, float], None] | None = None,
    ) -> None:
        self.deadline = deadline
        self.deadline_kind = kind
        self.calls: list[tuple[float, float, DeadlineKind]] = []  # (now, deadline, kind)
        self._then = then

    def deadline_passed(self, now: float) -> None:
        self.calls.append((now, self.deadline, self.deadline_kind))
        if self._then is not None:
            self._then(self, now)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.fixture
def sweep(loop: asyncio.AbstractEventLoop, clock: FakeClock) -> DeadlineSweep:
    return DeadlineSweep(loop, clock)


def test_fires_at_the_deadline_and_not_before(sweep: DeadlineSweep, clock: FakeClock) -> None:
    item = Item(deadline=100.5)
    sweep.watch(item)
    clock.advance(0.49)
    assert sweep.sweep() == 0 and item.calls == []
    clock.advance(0.01)  # exactly at the deadline
    assert sweep.sweep() == 1
    assert item.calls == [(100.5, INF, DeadlineKind.CONNECT)]
    clock.advance(10)
    assert sweep.sweep() == 0  # once: the deadline was reset
    assert len(item.calls) == 1


def test_fires_late_when_the_sweep_comes_late(sweep: DeadlineSweep, clock: FakeClock) -> None:
    item = Item(deadline=100.1)
    sweep.watch(item)
    clock.advance(3)
    sweep.sweep()
    assert [now for now, _, _ in item.calls] == [103.0]


def test_the_deadline_is_inf_during_the_callback_and_the_kind_is_kept(
    sweep: DeadlineSweep, clock: FakeClock
) -> None:
    items = [Item(100.0, kind) for kind in (DeadlineKind.HEAD, DeadlineKind.RESPONSE)]
    for item in items:
        sweep.watch(item)
    sweep.sweep()
    assert [item.calls for item in items] == [
        [(100.0, INF, DeadlineKind.HEAD)],
        [(100.0, INF, DeadlineKind.RESPONSE)],
    ]
    assert all(item.deadline == INF for item in items)
    assert [item.deadline_kind for item in items] == [DeadlineKind.HEAD, DeadlineKind.RESPONSE]


def test_a_callback_may_set_the_next_deadline(sweep: DeadlineSweep, clock: FakeClock) -> None:
    def again(item: Item, now: float) -> None:
        item.deadline = now + 1.0
        item.deadline_kind = DeadlineKind.IDLE

    item = Item(100.0, DeadlineKind.HEAD, then=again)
    sweep.watch(item)
    sweep.sweep()
    assert item.deadline == 101.0
    clock.advance(0.5)
    sweep.sweep()
    clock.advance(0.5)
    sweep.sweep()
    assert item.calls == [(100.0, INF, DeadlineKind.HEAD), (101.0, INF, DeadlineKind.IDLE)]


def test_nothing_timed_is_never_called(sweep: DeadlineSweep, clock: FakeClock) -> None:
    item = Item(INF)
    sweep.watch(item)
    clock.advance(1e9)
    assert sweep.sweep() == 0 and item.calls == []
    assert len(sweep) == 1  # still watched: a deadline may be set any time


def test_unwatch(sweep: DeadlineSweep, clock: FakeClock) -> None:
    item = Item(100.0)
    sweep.watch(item)
    sweep.unwatch(item)
    sweep.unwatch(item)  # twice is fine
    sweep.sweep()
    assert item.calls == [] and len(sweep) == 0


def test_one_unwatched_by_an_earlier_callback_is_not_called(
    sweep: DeadlineSweep, clock: FakeClock
) -> None:
    first: Item
    second: Item

    def drop_the_other(item: Item, now: float) -> None:
        sweep.unwatch(second if item is first else first)

    first, second = Item(100.0, then=drop_the_other), Item(100.0, then=drop_the_other)
    sweep.watch(first)
    sweep.watch(second)
    assert sweep.sweep() == 1
    assert len(first.calls) + len(second.calls) == 1


def test_one_moved_by_an_earlier_callback_waits(sweep: DeadlineSweep, clock: FakeClock) -> None:
    first: Item
    second: Item

    def move_the_other(item: Item, now: float) -> None:
        other = second if item is first else first
        other.deadline = now + 5

    first, second = Item(100.0, then=move_the_other), Item(100.0, then=move_the_other)
    sweep.watch(first)
    sweep.watch(second)
    assert sweep.sweep() == 1
    moved = second if first.calls else first
    assert moved.calls == [] and moved.deadline == 105.0


def test_a_failing_callback_is_reported_and_the_others_still_fire(
    loop: asyncio.AbstractEventLoop, sweep: DeadlineSweep
) -> None:
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    def explode(item: Item, now: float) -> None:
        raise RuntimeError("broken connection")

    items = [Item(100.0, then=explode), Item(100.0), Item(100.0)]
    for item in items:
        sweep.watch(item)
    assert sweep.sweep() == 3
    assert all(len(item.calls) == 1 for item in items)
    assert [type(context["exception"]) for context in reported] == [RuntimeError]


def test_the_clock_defaults_to_the_loop_and_one_sweep_per_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    assert DeadlineSweep(loop).clock == loop.time
    other = asyncio.new_event_loop()
    try:
        assert sweep_for(loop) is sweep_for(loop)
        assert sweep_for(other) is not sweep_for(loop)
    finally:
        other.close()


# -- the tracker of HTTP connections, on the sweep -----------------------------------------


class Conn(Item):
    def __init__(self, tracker: HttpConnectionTracker, idle: bool) -> None:
        super().__init__(INF, DeadlineKind.NONE)
        self.tracker = tracker
        self.idle = idle
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.tracker.discard(self)

    def abort(self) -> None:
        self.close()


def test_the_tracker_watches_its_connections_on_the_sweep(
    loop: asyncio.AbstractEventLoop, sweep: DeadlineSweep, clock: FakeClock
) -> None:
    tracker = HttpConnectionTracker(loop, sweep)
    conn = Conn(tracker, idle=True)
    tracker.add(conn)
    conn.deadline, conn.deadline_kind = 100.2, DeadlineKind.IDLE
    assert len(sweep) == 1
    clock.advance(0.2)
    sweep.sweep()
    assert conn.calls == [(100.2, INF, DeadlineKind.IDLE)]
    conn.close()
    assert len(tracker) == 0 and len(sweep) == 0


def test_draining_closes_connections_as_they_become_idle(
    loop: asyncio.AbstractEventLoop, sweep: DeadlineSweep, clock: FakeClock
) -> None:
    tracker = HttpConnectionTracker(loop, sweep)
    idle, busy = Conn(tracker, idle=True), Conn(tracker, idle=False)
    tracker.add(idle)
    tracker.add(busy)

    async def drain_and_finish_the_busy_one() -> int:
        draining = asyncio.ensure_future(tracker.drain(timeout=30))
        await asyncio.sleep(0)
        assert idle.closed and not busy.closed  # idle ones at once
        assert sweep.sweep() == 1 and not busy.closed  # looked: still busy
        busy.idle = True  # its response ended, but it did not close itself
        clock.advance(0.05)
        sweep.sweep()
        assert busy.closed
        return await draining

    assert loop.run_until_complete(drain_and_finish_the_busy_one()) == 0
    assert len(sweep) == 0  # neither the connections nor the tracker are watched any more


# -- the sweep's own timer, on a running loop -----------------------------------------------


def test_the_timer_sweeps_while_something_is_watched(loop: asyncio.AbstractEventLoop) -> None:
    sweep = DeadlineSweep(loop, tick=0.01)

    async def main() -> None:
        fired = loop.create_future()
        item = Item(loop.time() + 0.02, then=lambda item, now: fired.set_result(now))
        sweep.watch(item)
        at = await asyncio.wait_for(fired, 5)
        assert at >= item.calls[0][0]
        sweep.unwatch(item)
        for _ in range(500):  # one more tick finds nothing watched and stops
            if sweep._timer is None:
                break
            await asyncio.sleep(0.01)
        assert sweep._timer is None

    loop.run_until_complete(main())
