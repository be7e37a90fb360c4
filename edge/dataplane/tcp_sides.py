"""The two ends of a raw TCP relay (``edge.dataplane.tcp_proxy``): what each side does alone.

A ``Side`` is an ``asyncio.Protocol`` that counts what it receives and hands it to its
``forward`` (the other side's ``transport.write``, or a ``DelayLine`` when latency is
simulated). Back-pressure is a set of reasons, as bits, for which a side's reading is
paused: the other side's transport is full, the early buffer is full (no machine yet),
the delay line holds too much. Reading resumes only when no reason is left.
``MachineSide`` is the machine's end; it reports to the relay that made it
(``RelayController``: ``TcpRelay``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol, cast

from edge.dataplane.delay_line import DelayLine

# Why a side's reading is paused: bits, because several reasons can hold at once.
PEER_FULL: Final = 1  # the other side's transport is above its write high-water mark
EARLY_FULL: Final = 2  # no machine yet and BUFFER_LIMIT bytes are already buffered (64 KiB)
DELAY_FULL: Final = 4  # the simulated-latency line holds BUFFER_LIMIT bytes not yet due


class Side(asyncio.Protocol):
    """One end of a relay: counts what it receives and hands it to ``forward``."""

    __slots__ = ("_paused", "eof", "forward", "line", "lost", "peer", "received", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Side | None = None
        self.forward: Callable[[bytes], object] = discard
        self.line: DelayLine | None = None  # carries what this side receives, when delayed
        self.received = 0
        self._paused = 0
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.forward(data)

    # My transport is full: stop reading from the side that feeds it.
    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause(PEER_FULL)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume(PEER_FULL)

    def pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None and not self.lost:
            self.transport.pause_reading()
        self._paused |= reason

    def resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def send_eof(self) -> None:
        """The other side finished sending: pass the half-close on (TLS can't: close)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    def close(self) -> None:
        """Close after what is queued for this side (delayed chunks too) has been sent."""
        feeder = self.peer.line if self.peer is not None else None
        if feeder is not None and feeder.busy:
            feeder.mark(self.close_now)
        else:
            self.close_now()

    def close_now(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # What a delay line feeding this side does: write, and hold or release the source.
    def write_delayed(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    def line_full(self) -> None:
        self.pause(DELAY_FULL)

    def line_drained(self) -> None:
        self.resume(DELAY_FULL)


def discard(data: bytes) -> None:
    """Where bytes go once the other side is gone."""


class RelayController(Protocol):
    """What a machine side reports to (the ``TcpRelay`` that connects it)."""

    def machine_made(self, machine: MachineSide, transport: asyncio.Transport) -> None: ...

    def side_eof(self, side: Side) -> bool: ...

    def side_lost(self, side: Side) -> None: ...


class MachineSide(Side):
    """The machine's end of a relay: its events go to the relay that made it."""

    __slots__ = ("_relay",)

    def __init__(self, relay: RelayController) -> None:
        super().__init__()
        self._relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        self._relay.machine_made(self, transport)

    def eof_received(self) -> bool:
        return self._relay.side_eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._relay.side_lost(self)


def delay_line_between(
    loop: asyncio.AbstractEventLoop, delay: float, src: Side, dst: Side
) -> DelayLine:
    """What ``src`` receives, on its way to ``dst`` ``delay`` seconds late."""
    return DelayLine(loop, dst.write_delayed, delay, pause=src.line_full, resume=src.line_drained)
