"""Toxics hold their source back: a delay line over its limit pauses the side that feeds it.

Real loopback sockets, the real ``open_machine_connection`` with a latency toxic; the
"relay" is a small recording protocol.
"""

from __future__ import annotations

import asyncio
from typing import cast

from edge.core.faults import Fault, Stream
from edge.dataplane.delay_line import BUFFER_LIMIT
from edge.dataplane.toxics import open_machine_connection
from tests.integration.test_tcp_proxy import on_uvloop, port_of, until

PAYLOAD = bytes(range(256)) * 2048  # 512 KiB: eight times a line's limit


class Sink(asyncio.Protocol):
    """The machine: keeps what it receives, or sends PAYLOAD as soon as it is connected."""

    def __init__(self, send: bool) -> None:
        self.send = send
        self.got = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.send:
            cast(asyncio.Transport, transport).write(PAYLOAD)

    def data_received(self, data: bytes) -> None:
        self.got += data


class Relay(asyncio.Protocol):
    """What the toxics wrap: records the back-pressure it is told about."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.got = bytearray()
        self.write_pauses = 0
        self.write_resumes = 0
        self.paused = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got += data

    def pause_writing(self) -> None:
        self.write_pauses += 1
        self.paused = True

    def resume_writing(self) -> None:
        self.write_resumes += 1
        self.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


def latency(stream: Stream) -> Fault:
    return Fault("f1", "latency", "machine", "m1", app="app", stream=stream, latency=0.2)


@on_uvloop
async def test_upstream_latency_tells_the_relay_to_stop_writing_past_the_limit() -> None:
    loop = asyncio.get_running_loop()
    machine = Sink(send=False)
    server = await loop.create_server(lambda: machine, "127.0.0.1", 0)
    relay = Relay()
    await open_machine_connection(loop, relay, "127.0.0.1", port_of(server), [latency("upstream")])
    assert relay.transport is not None
    for start in range(0, len(PAYLOAD), 16 * 1024):
        relay.transport.write(PAYLOAD[start : start + 16 * 1024])
    assert relay.paused and relay.write_pauses == 1  # more than BUFFER_LIMIT is held
    await until(lambda: len(machine.got) == len(PAYLOAD))
    assert bytes(machine.got) == PAYLOAD  # in order, nothing lost
    await until(lambda: not relay.paused)
    assert relay.write_resumes == 1
    relay.transport.close()
    server.close()


@on_uvloop
async def test_downstream_latency_stops_reading_the_machine_past_the_limit() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Sink(send=True), "127.0.0.1", 0)
    relay = Relay()
    await open_machine_connection(
        loop, relay, "127.0.0.1", port_of(server), [latency("downstream")]
    )
    assert relay.transport is not None
    transport = relay.transport
    await until(lambda: not transport.is_reading())  # the line is full: the socket waits
    assert len(relay.got) == 0  # nothing is due yet
    relay.transport.pause_reading()  # the relay's own pause, on top of the line's
    await until(lambda: len(relay.got) > BUFFER_LIMIT)
    assert not transport.is_reading()  # the line drained, but the relay still holds it
    relay.transport.resume_reading()
    await until(lambda: len(relay.got) == len(PAYLOAD))
    assert bytes(relay.got) == PAYLOAD
    relay.transport.close()
    server.close()
