"""One delay line for every simulated delay: bytes and marks released in order, when due.

Simulated latency between regions (the TCP relay, both directions; the start of an HTTP
response) and the toxics that act on a machine connection (latency +- jitter, bandwidth,
slow_close) all come down to the same thing: hold a chunk until a moment, never let a
later chunk overtake it, and run an action (send EOF, close, report the connection
lost) only once everything before it has gone. ``DelayLine`` is that, once.

- Items are chunks of bytes or marks (plain callables, run when their turn comes). Each
  has a due time; a due time earlier than the one before it is moved up to it, so order
  cannot depend on jitter or on how the loop breaks ties between timers.
- One timer at a time, always for the oldest item (not one per chunk): the line arms it
  when the first item is queued, and re-arms it for the next oldest after a release.
  An item due now with nothing queued before it goes at once, without a timer.
- Back-pressure: when more than ``limit`` bytes wait, ``pause()`` is called once (stop
  reading from the source); when they fall to half of it, ``resume()`` is. A limit of 0
  holds the source while anything is queued; ``limit=None`` never pauses it.
- ``stop()`` drops what is queued: the destination is gone.

The line reads time and sets its timer through a ``Scheduler`` (the event loop in the
daemon, a fake one in tests).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Final, Protocol

BUFFER_LIMIT: Final = 64 * 1024  # bytes a line holds before it pauses its source
TIMER_SLACK: Final = 0.001  # libuv timers have millisecond resolution: release that early

Mark = Callable[[], object]
Item = bytes | Mark


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """What a delay line needs of the event loop."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], object], /) -> TimerHandle: ...


def _nothing() -> None:
    """No back-pressure: the source is never paused."""


class DelayLine:
    """Chunks and marks for one destination, each released at its due time, in order."""

    __slots__ = (
        "_deliver",
        "_limit",
        "_loop",
        "_pause",
        "_paused",
        "_queue",
        "_resume",
        "_tail",
        "_timer",
        "delay",
        "queued_bytes",
    )

    def __init__(
        self,
        loop: Scheduler,
        deliver: Callable[[bytes], object],
        delay: float = 0.0,
        *,
        limit: int | None = BUFFER_LIMIT,
        pause: Callable[[], object] = _nothing,
        resume: Callable[[], object] = _nothing,
    ) -> None:
        self._loop = loop
        self._deliver = deliver
        self.delay = delay  # of an item pushed without a due time of its own
        self._limit = limit
        self._pause = pause
        self._resume = resume
        self._paused = False
        self._queue: collections.deque[tuple[float, Item]] = collections.deque()
        self._tail = float("-inf")  # the due time of the last item pushed
        self._timer: TimerHandle | None = None
        self.queued_bytes = 0

    @property
    def busy(self) -> bool:
        """Something is queued: what comes next must go through the line too."""
        return bool(self._queue)

    @property
    def ready_at(self) -> float:
        """When the last item pushed is (or was) due: nothing pushed now goes earlier."""
        return self._tail

    def push(self, data: bytes, delay: float | None = None) -> None:
        """Send ``data`` ``delay`` seconds from now (the line's ``delay`` if not given)."""
        self.push_at(data, self._loop.time() + (self.delay if delay is None else delay))

    def push_at(self, data: bytes, due: float) -> None:
        self._add(due, data)
        if not self._limit_reached():
            return
        if not self._paused:
            self._paused = True
            self._pause()

    def mark(self, action: Mark, delay: float | None = None) -> None:
        """Run ``action`` after everything queued, ``delay`` seconds from now at the earliest."""
        self.mark_at(action, self._loop.time() + (self.delay if delay is None else delay))

    def mark_at(self, action: Mark, due: float) -> None:
        self._add(due, action)

    def stop(self) -> None:
        """The destination is gone: drop everything queued (the source is left as it is)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self.queued_bytes = 0

    def _add(self, due: float, item: Item) -> None:
        due = max(due, self._tail)  # never overtake an earlier item
        self._tail = due
        queue = self._queue
        if not queue and due <= self._loop.time():
            self._send(item)
            return
        if isinstance(item, bytes):
            self.queued_bytes += len(item)
        queue.append((due, item))
        self._arm()  # (pushed from a delivery, the oldest may be another)

    def _arm(self) -> None:
        """One timer, for the oldest item, unless one is set already."""
        if self._queue and self._timer is None:
            self._timer = self._loop.call_at(self._queue[0][0], self._release)

    def _limit_reached(self) -> bool:
        return self._limit is not None and self.queued_bytes > self._limit

    def _send(self, item: Item) -> None:
        if isinstance(item, bytes):
            self._deliver(item)
        else:
            item()

    def _release(self) -> None:
        self._timer = None
        limit = self._loop.time() + TIMER_SLACK
        queue = self._queue
        while queue and queue[0][0] <= limit:
            item = queue.popleft()[1]
            if isinstance(item, bytes):
                self.queued_bytes -= len(item)
            self._send(item)  # may push more, or stop the line: the loop re-checks
        if self._paused and (self._limit is None or self.queued_bytes <= self._limit // 2):
            self._paused = False
            self._resume()
        # A call, not ``self._timer is None`` here: a delivery may have armed the timer,
        # and compiled (mypyc) code would trust the narrowing to None above instead.
        self._arm()
