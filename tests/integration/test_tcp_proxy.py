"""The raw TCP relay with real sockets on 127.0.0.1, on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import socket
import struct
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import pytest
import uvloop

from edge.dataplane.contract import (
    ClientInfo,
    EdgeAnswer,
    NoUpstream,
    ProxyProtoVersion,
    RouteHints,
    Upstream,
)
from edge.dataplane.proxy_protocol import ParsedProxy, build_v1, parse_proxy_header
from edge.dataplane.tcp_proxy import TcpRelay, make_tcp_protocol_factory
from edge.dataplane.tracker import ConnectionTracker
from edge.runtime.capacity import WaitQueue

T = TypeVar("T")


def on_uvloop(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async test on a fresh uvloop loop (the data plane's production loop)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> T:
        with warnings.catch_warnings():
            # A failed test leaves transports open; uvloop's close then loops forever on
            # each ResourceWarning turned into an error. Leaks are checked with fd counts.
            warnings.simplefilter("ignore", ResourceWarning)
            return uvloop.run(asyncio.wait_for(test(*args, **kwargs), 30))

    return run


@dataclass
class FakeRouter:
    """Chooses the first machine not excluded; records every call."""

    machines: list[tuple[str, int, str]]
    retries: int = 2
    proxy: ProxyProtoVersion | None = None
    client_delay: float = 0.0
    upstream_delay: float = 0.0
    connect_timeout: float = 5.0
    no_upstream: NoUpstream | None = None
    pop: str = "fra"
    handlers: tuple[str, ...] = ()
    force_https: bool = False
    clients: list[ClientInfo] = field(default_factory=list)
    excludes: list[frozenset[str]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    connections: list[tuple[str, object]] = field(default_factory=list)
    answers: list[EdgeAnswer] = field(default_factory=list)

    def opened(self, client: ClientInfo) -> object:
        self.connections.append(("opened", client.peer_ip))
        return "token"

    def closed(self, token: object) -> None:
        self.connections.append(("closed", token))

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Upstream | NoUpstream:
        self.clients.append(client)
        self.excludes.append(exclude)
        if self.no_upstream is not None:
            return self.no_upstream
        for host, port, machine_id in self.machines:
            if machine_id not in exclude:
                return Upstream(
                    host, port, machine_id, "fra", "app", "nearest", None,
                    send_proxy_proto=self.proxy,
                    client_delay=self.client_delay,
                    upstream_delay=self.upstream_delay,
                    connect_timeout=self.connect_timeout,
                    retries=self.retries,
                )  # fmt: skip
        return NoUpstream(503, "no machines left")

    def connected(self, upstream: Upstream, seconds: float) -> None:
        self.events.append(("connected", upstream.machine_id, seconds))

    def connect_failed(self, upstream: Upstream, reason: str) -> None:
        self.events.append(("connect_failed", upstream.machine_id, reason))

    def responded(self, upstream: Upstream, status: int, seconds: float) -> None:
        self.events.append(("responded", upstream.machine_id, status))

    def transferred(self, upstream: Upstream, to_machine: int, to_client: int) -> None:
        self.events.append(("transferred", upstream.machine_id, to_machine, to_client))

    def release(self, upstream: Upstream) -> None:
        self.events.append(("release", upstream.machine_id))

    def answered(self, client: ClientInfo, answer: EdgeAnswer) -> None:
        self.answers.append(answer)

    def kinds(self) -> list[str]:
        return [event[0] for event in self.events]


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve(factory: Callable[[], asyncio.Protocol], host: str = "127.0.0.1") -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host, 0)


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


async def start_relay(
    router: FakeRouter, accept_proxy_proto: bool = False, host: str = "127.0.0.1"
) -> tuple[Any, ConnectionTracker]:
    loop = asyncio.get_running_loop()
    tracker = ConnectionTracker()
    factory = make_tcp_protocol_factory(router, loop, tracker, accept_proxy_proto)
    return await loop.create_server(factory, host, 0), tracker


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed at once: nobody listens there


@on_uvloop
async def test_echo_through_relay_reports_once_each() -> None:
    backend = await serve(Echo)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    writer.close()
    await writer.wait_closed()
    await until(lambda: len(tracker) == 0 and "release" in router.kinds())
    assert router.kinds() == ["connected", "transferred", "release"]
    assert router.events[1] == ("transferred", "m1", 5, 5)
    client = router.clients[0]
    assert client.peer_ip == "127.0.0.1" and client.local_port == port_of(relay)
    assert not client.proxied and not client.tls
    relay.close()
    backend.close()


class SlowSink(asyncio.Protocol):
    """Reads nothing for ``stall`` seconds, then hashes everything and answers the digest."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.digest = hashlib.sha256()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        # uvloop starts reading after connection_made: pausing inside it would be undone.
        loop = asyncio.get_running_loop()
        loop.call_soon(self.transport.pause_reading)
        loop.call_later(self.stall, self.transport.resume_reading)

    def data_received(self, data: bytes) -> None:
        self.digest.update(data)

    def eof_received(self) -> bool:
        self.transport.write(self.digest.hexdigest().encode())
        self.transport.close()
        return True


@on_uvloop
async def test_large_transfer_backpressure_and_half_close() -> None:
    backend = await serve(lambda: SlowSink(stall=1.0))
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    loop = asyncio.get_running_loop()
    relays: list[TcpRelay] = []

    def factory() -> TcpRelay:
        relays.append(TcpRelay(router, loop))
        return relays[-1]

    relay = await loop.create_server(factory, "127.0.0.1", 0)
    payload = os.urandom(32 * 1024 * 1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(payload)
    await asyncio.sleep(0.5)  # the machine reads nothing yet: the relay must stop reading
    machine = relays[0].peer
    assert machine is not None and machine.transport is not None
    assert machine.transport.get_write_buffer_size() <= 1024 * 1024
    assert relays[0].received < 16 * 1024 * 1024
    await writer.drain()
    writer.write_eof()  # half-close: the answer must still come back
    answer = await reader.read()
    assert answer == hashlib.sha256(payload).hexdigest().encode()
    writer.close()
    await until(lambda: "release" in router.kinds())
    assert ("transferred", "m1", len(payload), 64) in router.events
    relay.close()
    backend.close()


@on_uvloop
async def test_machine_half_close_reaches_client() -> None:
    class Greeter(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
            transport.write(b"banner\n")
            transport.write_eof()  # done sending, still reading

        def data_received(self, data: bytes) -> None:
            pass  # a half-closed writer may still read

        def eof_received(self) -> bool:
            self.transport.close()
            return True

    backend = await serve(Greeter)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    assert await reader.read() == b"banner\n"  # EOF arrived after the banner
    writer.write(b"still open")  # our direction still works
    await writer.drain()
    writer.close()
    await until(lambda: len(tracker) == 0)
    assert router.events[-2] == ("transferred", "m1", 10, 7)
    relay.close()
    backend.close()


@on_uvloop
async def test_retry_after_refused_machine() -> None:
    backend = await serve(Echo)
    dead = refused_port()
    router = FakeRouter([("127.0.0.1", dead, "dead"), ("127.0.0.1", port_of(backend), "m2")])
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(b"early bytes")  # sent before any machine is connected
    assert await reader.readexactly(11) == b"early bytes"
    writer.close()
    await until(lambda: len(tracker) == 0)
    assert router.kinds() == [
        "connect_failed", "release", "connected", "transferred", "release"
    ]  # fmt: skip
    assert router.events[0] == ("connect_failed", "dead", "refused")
    assert router.excludes == [frozenset(), frozenset({"dead"})]
    relay.close()
    backend.close()


@on_uvloop
async def test_retries_exhausted_closes_client() -> None:
    router = FakeRouter([("127.0.0.1", refused_port(), "a"), ("127.0.0.1", refused_port(), "b")])
    router.retries = 1
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    assert await reader.read() == b""
    writer.close()
    await until(lambda: len(tracker) == 0)
    assert router.kinds() == ["connect_failed", "release", "connect_failed", "release"]
    relay.close()


@on_uvloop
async def test_connect_timeout_is_reported_and_retried() -> None:
    # A listener whose accept queue is full drops SYNs: connecting to it hangs.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = [socket.create_connection(full.getsockname(), timeout=1)]  # backlog 0 holds 1
    backend = await serve(Echo)
    router = FakeRouter([(*full.getsockname()[:2], "stuck"), ("127.0.0.1", port_of(backend), "ok")])
    router.connect_timeout = 0.3
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    assert router.events[0] == ("connect_failed", "stuck", "timeout")
    writer.close()
    await until(lambda: len(tracker) == 0)
    for sock in [*fillers, full]:
        sock.close()
    relay.close()
    backend.close()


@on_uvloop
async def test_no_upstream_holds_then_closes() -> None:
    router = FakeRouter([], no_upstream=NoUpstream(503, "no machines", wait=0.4))
    relay, tracker = await start_relay(router)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(b"anyone?")
    assert await reader.read() == b""
    held = time.monotonic() - started
    assert 0.35 <= held < 3
    writer.close()
    await until(lambda: len(tracker) == 0)
    assert router.events == []  # no Upstream was given, so nothing to release
    relay.close()


@on_uvloop
async def test_waits_in_capacity_queue_then_connects_or_gives_up() -> None:
    backend = await serve(Echo)
    queue = WaitQueue(timeout=0.3)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    router.no_upstream = NoUpstream(503, "all machines at hard limit", queue=queue)
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(b"queued")
    await until(lambda: len(queue) == 1)
    router.no_upstream = None
    queue.wake_one()  # a slot was released: the waiter chooses again at once
    assert await reader.readexactly(6) == b"queued"
    writer.close()

    router.no_upstream = NoUpstream(503, "all machines at hard limit", queue=queue)
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    assert await reader.read() == b""  # nobody released a slot within the queue timeout
    assert 0.25 <= time.monotonic() - started < 3
    assert len(queue) == 0
    writer.close()

    queue.timeout = 30
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    await until(lambda: len(queue) == 1)
    # The client goes away (a reset: a FIN alone is a half-close, and it may still want
    # an answer): its wait is cancelled long before the timeout.
    linger_zero = struct.pack("ii", 1, 0)
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
    writer.transport.abort()
    await until(lambda: len(queue) == 0 and len(tracker) == 0, timeout=3)
    relay.close()
    backend.close()


class HeaderCatcher(asyncio.Protocol):
    """Parses the PROXY header the relay sends first, then echoes the rest."""

    def __init__(self, found: list[ParsedProxy]) -> None:
        self.found = found
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses

    def data_received(self, data: bytes) -> None:
        if self.buf is None:
            self.transport.write(data)
            return
        self.buf += data
        parsed = parse_proxy_header(self.buf)
        if isinstance(parsed, ParsedProxy):
            self.found.append(parsed)
            self.transport.write(self.buf[parsed.consumed :])
            self.buf = None  # type: ignore[assignment]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


NO_IPV6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")


@pytest.mark.parametrize(
    ("version", "host"),
    [
        ("v1", "127.0.0.1"),
        ("v2", "127.0.0.1"),
        pytest.param("v1", "::1", marks=NO_IPV6),
        pytest.param("v2", "::1", marks=NO_IPV6),
    ],
)
@on_uvloop
async def test_proxy_protocol_sent_to_machine(version: ProxyProtoVersion, host: str) -> None:
    found: list[ParsedProxy] = []
    backend = await serve(lambda: HeaderCatcher(found))
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")], proxy=version)
    relay, tracker = await start_relay(router, host=host)
    reader, writer = await asyncio.open_connection(host, port_of(relay))
    writer.write(b"payload")
    assert await reader.readexactly(7) == b"payload"
    client_ip, client_port = writer.get_extra_info("sockname")[:2]
    (header,) = found
    assert header.version == int(version[1])
    assert (header.src_ip, header.src_port) == (client_ip, client_port)
    assert (header.dst_ip, header.dst_port) == (host, port_of(relay))
    writer.close()
    await until(lambda: len(tracker) == 0)
    relay.close()
    backend.close()


@on_uvloop
async def test_accepts_proxy_header_from_client_and_passes_it_on() -> None:
    found: list[ParsedProxy] = []
    backend = await serve(lambda: HeaderCatcher(found))
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")], proxy="v2")
    relay, tracker = await start_relay(router, accept_proxy_proto=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    told = ClientInfo("203.0.113.7", 4242, "198.51.100.1", 443)
    writer.write(build_v1(told)[:9])  # the header may arrive in pieces
    await asyncio.sleep(0.05)
    writer.write(build_v1(told)[9:] + b"after header")
    assert await reader.readexactly(12) == b"after header"
    (client,) = router.clients
    assert client == ClientInfo("203.0.113.7", 4242, "198.51.100.1", 443, proxied=True)
    assert (found[0].src_ip, found[0].src_port) == ("203.0.113.7", 4242)
    assert (found[0].dst_ip, found[0].dst_port) == ("198.51.100.1", 443)
    writer.close()
    await until(lambda: len(tracker) == 0)
    relay.close()
    backend.close()


@on_uvloop
async def test_garbage_instead_of_proxy_header_is_dropped() -> None:
    backend = await serve(Echo)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    relay, _ = await start_relay(router, accept_proxy_proto=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    with contextlib.suppress(ConnectionResetError):  # aborted: a reset, or at least EOF
        assert await reader.read() == b""
    assert router.clients == []
    writer.close()
    relay.close()
    backend.close()


@on_uvloop
async def test_simulated_latency_delays_setup_and_each_direction() -> None:
    backend = await serve(Echo)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    router.client_delay, router.upstream_delay = 0.1, 0.06
    relay, tracker = await start_relay(router)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    started = time.monotonic()
    writer.write(b"first")
    assert await reader.readexactly(5) == b"first"
    setup = time.monotonic() - started  # client RTT + machine RTT, then one way back
    assert 0.16 + 0.08 - 0.01 <= setup < 1.0
    started = time.monotonic()
    chunks = [b"%05d" % i for i in range(200)]
    for chunk in chunks:
        writer.write(chunk)
    assert await reader.readexactly(1000) == b"".join(chunks)  # order preserved
    round_trip = time.monotonic() - started
    assert 0.16 - 0.01 <= round_trip < 1.0
    connected_seconds = router.events[0][2]
    assert connected_seconds >= 0.06 - 0.01  # includes the simulated machine RTT
    writer.close()
    await until(lambda: len(tracker) == 0)
    relay.close()
    backend.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@on_uvloop
async def test_no_fd_leak_after_many_connections() -> None:
    backend = await serve(Echo)
    router = FakeRouter(
        [("127.0.0.1", refused_port(), "dead"), ("127.0.0.1", port_of(backend), "m1")]
    )
    relay, tracker = await start_relay(router)
    await asyncio.sleep(0.05)
    before = open_fds()

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
        writer.write(b"%d" % i)
        await reader.readexactly(len(b"%d" % i))
        if i % 2:
            writer.write_eof()  # half the clients half-close first
            await reader.read()
        writer.close()
        await writer.wait_closed()

    for batch in range(5):
        await asyncio.gather(*(one(batch * 100 + i) for i in range(100)))
    await until(lambda: len(tracker) == 0)
    await until(lambda: open_fds() <= before, timeout=5)
    assert router.kinds().count("release") == 1000  # 500 failed attempts + 500 relays
    assert router.kinds().count("transferred") == 500
    relay.close()
    backend.close()


@on_uvloop
async def test_tracker_drain_aborts_what_is_left() -> None:
    backend = await serve(Echo)
    router = FakeRouter([("127.0.0.1", port_of(backend), "m1")])
    relay, tracker = await start_relay(router)
    pairs = [await asyncio.open_connection("127.0.0.1", port_of(relay)) for _ in range(3)]
    await until(lambda: router.kinds().count("connected") == 3)
    assert len(tracker) == 3
    assert await tracker.drain(0.2) == 3
    for reader, writer in pairs:
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await reader.readexactly(1)
        writer.close()
    await until(lambda: router.kinds().count("release") == 3)
    assert len(tracker) == 0
    relay.close()
    backend.close()
