"""Toxics on the edge's side of a connection to a machine (Toxiproxy's, built in).

``open_machine_connection`` is how relays connect to a machine. With no faults it is
``loop.create_connection``. With faults it interposes ``ToxicProtocol`` between the
socket and the relay's protocol: data to the machine (``upstream``) goes through a
``ToxicTransport``, data from it (``downstream``) through the protocol; each direction
has a pipeline that delays (latency +- jitter), paces (bandwidth), swallows (timeout),
resets (reset_peer), holds the close (slow_close) or cuts (limit_data). ``down`` fails
the connect as refused. Order is kept: a chunk never overtakes an earlier one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any, cast

from edge.core.faults import Fault

Deliver = Callable[[bytes], None]


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
    ) -> None:
        self.loop = loop
        self.deliver = deliver
        self.cut = cut  # cut(reset): close the connection (abort when reset)
        self.toxics = list(toxics)
        self.rng = random.Random()
        self.ready_at = 0.0  # when the last scheduled chunk goes: keeps order
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
        data = self._limit(data)
        self.ready_at = at
        if at <= now:
            self.deliver(data)
        else:
            self.loop.call_at(at, self._deliver_if_open, data)

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
        self._owner.later(self._owner.upstream, self._transport.write_eof)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self._owner.later(self._owner.upstream, self._transport.close)

    def abort(self) -> None:
        self._owner.stop()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

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
        self.upstream = Pipeline(ups, loop, self._to_machine, self._cut)
        self.downstream = Pipeline(downs, loop, inner.data_received, self._cut)

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
        self.later(self.downstream, self._inner_eof)
        return True

    def _inner_eof(self) -> None:
        if self.inner.eof_received() is not True and self.real is not None:
            self.real.close()

    def connection_lost(self, exc: Exception | None) -> None:
        delay = self.downstream.close_delay() + max(
            0.0, self.downstream.ready_at - self.loop.time()
        )
        if delay > 0:
            self.loop.call_later(delay, self._lost, exc)
        else:
            self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        self.stop()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def later(self, pipeline: Pipeline, action: Callable[[], None]) -> None:
        """Run ``action`` after the chunks already queued in ``pipeline`` (and slow_close)."""
        wait = max(0.0, pipeline.ready_at - self.loop.time()) + pipeline.close_delay()
        if wait > 0:
            self.loop.call_later(wait, action)
        else:
            action()

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
