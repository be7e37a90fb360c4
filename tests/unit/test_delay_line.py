"""The one delay line (edge.dataplane.delay_line): order, marks, back-pressure, stop.

Driven by a fake scheduler over a FakeClock (no sleeping), plus one run on a real loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from edge.core.clock import FakeClock
from edge.dataplane.delay_line import DelayLine


class _Timer:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """time() and call_at() over a FakeClock; ``run_for`` fires timers in time order."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.timers: list[_Timer] = []

    def time(self) -> float:
        return self.clock()

    def call_at(self, when: float, callback: Callable[[], object], /) -> _Timer:
        timer = _Timer(when, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[_Timer]:
        return [t for t in self.timers if not t.cancelled]

    def run_for(self, seconds: float) -> None:
        end = self.clock() + seconds
        while True:
            due = [t for t in self.pending() if t.when <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.clock.now = max(self.clock.now, timer.when)
            timer.callback()
        self.clock.now = end


class Recorder:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.got: list[tuple[float, object]] = []
        self.pauses = 0
        self.resumes = 0

    def deliver(self, data: bytes) -> None:
        self.got.append((round(self.loop.time() - 1000.0, 6), data))

    def marker(self, name: str) -> Callable[[], None]:
        return lambda: self.got.append((round(self.loop.time() - 1000.0, 6), name))

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None:
        self.resumes += 1

    def line(self, delay: float = 0.0, limit: int | None = 1000) -> DelayLine:
        return DelayLine(
            self.loop, self.deliver, delay, limit=limit, pause=self.pause, resume=self.resume
        )


@pytest.fixture
def rec() -> Recorder:
    return Recorder(FakeLoop())


def test_chunks_go_at_their_due_time_in_order_with_one_timer(rec: Recorder) -> None:
    line = rec.line(delay=0.1)
    line.push(b"a")
    rec.loop.run_for(0.03)
    line.push(b"b")
    line.push(b"c")
    assert len(rec.loop.pending()) == 1  # one timer, for the oldest chunk
    assert line.busy and line.queued_bytes == 3
    rec.loop.run_for(0.06)
    assert rec.got == []  # nothing before it is due
    rec.loop.run_for(0.2)
    assert rec.got == [(0.1, b"a"), (0.13, b"b"), (0.13, b"c")]
    assert not line.busy and line.queued_bytes == 0 and rec.loop.pending() == []


def test_an_earlier_due_time_never_overtakes(rec: Recorder) -> None:
    line = rec.line()
    line.push_at(b"late", 1000.5)
    line.push_at(b"early", 1000.2)  # jitter drew less: it still waits for "late"
    assert line.ready_at == 1000.5
    rec.loop.run_for(1.0)
    assert rec.got == [(0.5, b"late"), (0.5, b"early")]


def test_an_item_due_now_with_nothing_queued_goes_at_once(rec: Recorder) -> None:
    line = rec.line()
    line.push(b"now")
    line.mark(rec.marker("done"))
    assert rec.got == [(0.0, b"now"), (0.0, "done")]
    assert rec.loop.timers == []


def test_an_item_due_now_waits_behind_queued_ones(rec: Recorder) -> None:
    line = rec.line()
    line.push(b"first", 0.2)
    line.push(b"second", 0.0)
    assert rec.got == []
    rec.loop.run_for(0.3)
    assert rec.got == [(0.2, b"first"), (0.2, b"second")]


def test_marks_run_after_the_chunks_before_them(rec: Recorder) -> None:
    line = rec.line(delay=0.1)
    line.push(b"data")
    line.mark(rec.marker("eof"))
    rec.loop.run_for(0.05)
    line.mark(rec.marker("close"), 0.0)  # due now, but after what is queued
    rec.loop.run_for(0.5)
    assert rec.got == [(0.1, b"data"), (0.1, "eof"), (0.1, "close")]


def test_marks_do_not_count_as_bytes(rec: Recorder) -> None:
    line = rec.line(delay=0.1, limit=0)
    line.mark(rec.marker("m"))
    assert line.busy and line.queued_bytes == 0 and rec.pauses == 0


def test_back_pressure_pauses_once_past_the_limit_and_resumes_at_half(rec: Recorder) -> None:
    line = rec.line(delay=0.1, limit=1000)
    line.push(b"x" * 600)
    assert rec.pauses == 0
    rec.loop.run_for(0.01)
    line.push(b"y" * 500)  # 1100 > 1000
    line.push(b"z" * 100)
    assert rec.pauses == 1
    rec.loop.run_for(0.09)  # the 600 go: 600 left, above half the limit
    assert rec.resumes == 0
    rec.loop.run_for(0.01)  # the rest go
    assert rec.resumes == 1 and rec.pauses == 1
    assert [data for _, data in rec.got] == [b"x" * 600, b"y" * 500, b"z" * 100]


def test_a_limit_of_zero_holds_the_source_while_anything_is_queued(rec: Recorder) -> None:
    line = rec.line(limit=0)
    line.push(b"first", 0.2)
    assert rec.pauses == 1
    line.push(b"more")
    assert rec.pauses == 1  # paused once
    rec.loop.run_for(0.2)
    assert rec.resumes == 1
    assert [data for _, data in rec.got] == [b"first", b"more"]


def test_no_limit_never_pauses(rec: Recorder) -> None:
    line = rec.line(delay=1.0, limit=None)
    for _ in range(100):
        line.push(b"x" * 10_000)
    assert rec.pauses == 0 and line.queued_bytes == 1_000_000


def test_stop_drops_everything_and_the_line_can_be_used_again(rec: Recorder) -> None:
    line = rec.line(delay=0.1)
    line.push(b"lost")
    line.mark(rec.marker("lost too"))
    line.stop()
    assert not line.busy and line.queued_bytes == 0 and rec.loop.pending() == []
    rec.loop.run_for(1.0)
    assert rec.got == []
    line.push(b"again")
    rec.loop.run_for(0.2)
    assert rec.got == [(1.1, b"again")]


def test_stop_from_a_delivery_ends_the_release(rec: Recorder) -> None:
    line = rec.line(delay=0.1)
    line.push(b"a")
    line.push(b"b")
    line.mark(line.stop)  # the destination went away while this batch was delivered
    line.push(b"c")
    rec.loop.run_for(1.0)
    assert [data for _, data in rec.got] == [b"a", b"b"]
    assert rec.loop.pending() == []


def test_a_push_from_a_delivery_keeps_one_timer_and_the_order(rec: Recorder) -> None:
    line = rec.line(delay=0.1)

    def echo() -> None:
        line.push(b"echo")

    line.push(b"a")
    line.mark(echo)
    line.push(b"b", 0.15)
    rec.loop.run_for(0.1)
    assert len(rec.loop.pending()) == 1
    rec.loop.run_for(1.0)
    assert rec.got == [(0.1, b"a"), (0.15, b"b"), (0.2, b"echo")]


def test_on_a_real_event_loop() -> None:
    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = loop.create_future()
        line = DelayLine(loop, got.append, 0.01)
        for chunk in (b"1", b"2", b"3"):
            line.push(chunk)
        line.mark(lambda: done.set_result(None))
        await asyncio.wait_for(done, 5)
        return got

    assert asyncio.run(main()) == [b"1", b"2", b"3"]
