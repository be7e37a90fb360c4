"""Toxics on the edge's side of a connection to a machine (Toxiproxy's, built in).

``open_machine_connection`` is how relays connect to a machine. With no faults it is
``loop.create_connection``. With faults it interposes ``ToxicProtocol`` between the
socket and the relay's protocol: data to the machine (``upstream``) goes through a
``ToxicTransport``, data from it (``downstream``) through the protocol; each direction
has a pipeline that delays (latency +- jitter), paces (bandwidth), swallows (timeout),
resets (reset_peer), holds the close (slow_close) or cuts (limit_data). ``down`` fails
the connect as refused.

The toxics only decide when each chunk may go; a ``DelayLine`` per direction
(``edge.dataplane.delay_line``, the one simulated latency uses too) holds it until then,
with one timer for the oldest chunk. Order is kept: a chunk never overtakes an earlier
one, and the half-close and close of a direction go after its chunks (plus slow_close).
A line holding more than ``BUFFER_LIMIT`` bytes holds its source back until it is down
to half: reading from the machine pauses (downstream), or the relay is told to stop
writing (upstream), as a full socket buffer would.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from edge.core.faults import Fault
from edge.dataplane.delay_line import BUFFER_LIMIT, DelayLine

Deliver = Callable[[bytes], None]

# Why the machine's socket is not read, or the relay is told not to write: bits.
_BY_RELAY: Final = 1  # the relay paused reading (its client is slow)
_BY_SOCKET: Final = 1  # the machine socket's write buffer is full
_BY_LINE: Final = 2  # the direction's delay line holds BUFFER_LIMIT bytes


async def open_machine_connection(
    loop: asyncio.AbstractEventLoop,
    protocol: asyncio.Protocol,
    host: str,
    port: int,
    faults: Sequence[Fault] = (),
) -> None:
    """Connect ``protocol`` to the machine, through the toxics that act on it."""
    if any(f.kind == "down" for f in faults):
        raise ConnectionRefusedError(111, f"machine at {host}:{port} is down (fault)")
    toxics = [f for f in faults if f.is_toxic]
    if not toxics:
        await loop.create_connection(lambda: protocol, host, port)
        return
    wrapper = ToxicProtocol(protocol, toxics, loop)
    await loop.create_connection(lambda: wrapper, host, port)


class Pipeline:
    """One direction's toxics: when each chunk may go, and whether it goes at all."""

    def __init__(
        self,
        toxics: Sequence[Fault],
        loop: asyncio.AbstractEventLoop,
        deliver: Deliver,
        cut: Callable[[bool], None],
        hold: Callable[[], object],
        release: Callable[[], object],
    ) -> None:
        self.loop = loop
        self.deliver = deliver
        self.cut = cut  # cut(reset): close the connection (abort when reset)
        self.toxics = list(toxics)
        self.rng = random.Random()
        # hold()/release(): stop and restart the source of this direction.
        self.line = DelayLine(
            loop, self._deliver_if_open, limit=BUFFER_LIMIT, pause=hold, resume=release
        )
        self.ready_at = 0.0  # when the last chunk goes (the actions after it don't move it)
        self.sent = 0
        self.closed = False
        self._cut_timers: list[asyncio.Handle] = []

    def start(self) -> None:
        """The connection is open: arm the cuts of timeout and reset_peer (from now on)."""
        for toxic in self.toxics:
            if toxic.kind in ("timeout", "reset_peer") and toxic.timeout > 0:
                reset = toxic.kind == "reset_peer"
                self._cut_timers.append(self.loop.call_later(toxic.timeout, self.cut, reset))
            elif toxic.kind == "reset_peer":
                self._cut_timers.append(self.loop.call_soon(self.cut, True))

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        now = self.loop.time()
        at = max(now, self.ready_at)
        for toxic in self.toxics:
            at = self._apply(toxic, data, now, at)
            if at < 0:
                return  # swallowed
        self.ready_at = at
        self.line.push_at(self._limit(data), at)

    def after_chunks(self, action: Callable[[], None]) -> None:
        """Run ``action`` after the chunks already queued, and slow_close's delay after them."""
        self.line.mark_at(action, max(self.loop.time(), self.ready_at) + self.close_delay())

    def _apply(self, toxic: Fault, data: bytes, now: float, at: float) -> float:
        kind = toxic.kind
        if kind == "latency":
            jitter = self.rng.uniform(-toxic.jitter, toxic.jitter) if toxic.jitter else 0.0
            return max(at, now + max(0.0, toxic.latency + jitter))
        if kind == "bandwidth":
            return at + len(data) / (toxic.rate * 1024.0)
        if kind == "timeout":
            return -1.0  # a black hole: nothing gets through (the cut was armed at start)
        return at

    def _limit(self, data: bytes) -> bytes:
        for toxic in self.toxics:
            if toxic.kind == "limit_data":
                room = toxic.bytes - self.sent
                if len(data) >= room:
                    self.loop.call_soon(self.cut, False)
                    data = data[: max(0, room)]
        self.sent += len(data)
        return data

    def _deliver_if_open(self, data: bytes) -> None:
        if not self.closed:
            self.deliver(data)

    def close_delay(self) -> float:
        return max((t.delay for t in self.toxics if t.kind == "slow_close"), default=0.0)

    def stop(self) -> None:
        # Chunks still queued are dropped as they come due; the actions queued after
        # them (a close, the report of a lost connection) still run.
        self.closed = True
        for timer in self._cut_timers:
            timer.cancel()


class ToxicTransport(asyncio.Transport):
    """What the relay sees as the machine's transport: writes go through the upstream toxics."""

    def __init__(self, real: asyncio.Transport, owner: ToxicProtocol) -> None:
        super().__init__()
        self._transport = real
        self._owner = owner

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._owner.upstream.push(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self._owner.upstream.after_chunks(self._transport.write_eof)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self._owner.upstream.after_chunks(self._transport.close)

    def abort(self) -> None:
        self._owner.stop()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._owner.hold_reading(_BY_RELAY)

    def resume_reading(self) -> None:
        self._owner.release_reading(_BY_RELAY)

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class ToxicProtocol(asyncio.Protocol):
    """Sits between the machine's socket and the relay's protocol."""

    def __init__(
        self, inner: asyncio.Protocol, toxics: Sequence[Fault], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.inner = inner
        self.loop = loop
        ups = [t for t in toxics if t.stream == "upstream"]
        downs = [t for t in toxics if t.stream == "downstream"]
        self.real: asyncio.Transport | None = None
        self._read_holds = 0  # _BY_RELAY | _BY_LINE: the machine's socket is not read
        self._write_holds = 0  # _BY_SOCKET | _BY_LINE: the relay was told to stop writing
        self.upstream = Pipeline(
            ups, loop, self._to_machine, self._cut, self._upstream_full, self._upstream_drained
        )
        self.downstream = Pipeline(
            downs,
            loop,
            inner.data_received,
            self._cut,
            self._downstream_full,
            self._downstream_drained,
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.real = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        self.upstream.start()
        self.downstream.start()
        self.inner.connection_made(ToxicTransport(self.real, self))

    def _to_machine(self, data: bytes) -> None:
        if self.real is not None and not self.real.is_closing():
            self.real.write(data)

    def data_received(self, data: bytes) -> None:
        self.downstream.push(data)

    def eof_received(self) -> bool | None:
        self.downstream.after_chunks(self._inner_eof)
        return True

    def _inner_eof(self) -> None:
        if self.inner.eof_received() is not True and self.real is not None:
            self.real.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.downstream.after_chunks(lambda: self._lost(exc))

    def _lost(self, exc: Exception | None) -> None:
        self.stop()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._hold_writes(_BY_SOCKET)

    def resume_writing(self) -> None:
        self._release_writes(_BY_SOCKET)

    # -- back-pressure, from the socket, the relay and the delay lines --------------------

    def hold_reading(self, reason: int) -> None:
        if not self._read_holds and self.real is not None:
            self.real.pause_reading()
        self._read_holds |= reason

    def release_reading(self, reason: int) -> None:
        if not self._read_holds & reason:
            return
        self._read_holds &= ~reason
        if not self._read_holds and self.real is not None and not self.real.is_closing():
            self.real.resume_reading()

    def _hold_writes(self, reason: int) -> None:
        if not self._write_holds:
            self.inner.pause_writing()
        self._write_holds |= reason

    def _release_writes(self, reason: int) -> None:
        if not self._write_holds & reason:
            return
        self._write_holds &= ~reason
        if not self._write_holds:
            self.inner.resume_writing()

    def _downstream_full(self) -> None:
        self.hold_reading(_BY_LINE)

    def _downstream_drained(self) -> None:
        self.release_reading(_BY_LINE)

    def _upstream_full(self) -> None:
        self._hold_writes(_BY_LINE)

    def _upstream_drained(self) -> None:
        self._release_writes(_BY_LINE)

    def _cut(self, reset: bool) -> None:
        if self.real is None or self.real.is_closing():
            return
        if reset:
            self.real.abort()  # the peer sees a reset, as with Toxiproxy's reset_peer
        else:
            self.real.close()

    def stop(self) -> None:
        self.upstream.stop()
        self.downstream.stop()
