"""Connect timeouts on the loop's one deadline sweep, over real loopback sockets.

A listener with a full accept queue drops SYNs, so connecting to it hangs. The sweep is
given a FakeClock: the timeout passes when the test advances the clock and sweeps, not
when real time goes by (the sweep's own timer still ticks, on the fake clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from edge.core.clock import FakeClock
from edge.dataplane.deadlines import DeadlineSweep
from edge.dataplane.tcp_proxy import TcpRelay
from edge.dataplane.tracker import ConnectionTracker
from edge.dataplane.upstream_pool import UpstreamConnection, UpstreamPool
from tests.integration.test_tcp_proxy import Echo, FakeRouter, on_uvloop, port_of, serve, until


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects hang (never accepted, backlog full)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        fillers.append(sock)
    try:
        yield port
    finally:
        for sock in [*fillers, server]:
            sock.close()


Result = tuple[UpstreamConnection | None, str]


@on_uvloop
async def test_a_pooled_connect_gives_up_when_the_sweep_finds_it_late() -> None:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    sweep = DeadlineSweep(loop, clock)
    pool = UpstreamPool(loop, 4.0, sweep=sweep)
    results: list[Result] = []
    with full_backlog() as port:
        pool.connect("127.0.0.1", port, 0.3, lambda conn, reason: results.append((conn, reason)))
        assert len(sweep) == 1
        clock.advance(0.29)
        sweep.sweep()
        await asyncio.sleep(0.05)
        assert results == []  # not before its deadline
        clock.advance(0.01)
        sweep.sweep()
        await until(lambda: bool(results))
    assert results == [(None, "timeout")]
    assert len(sweep) == 0
    pool.close()


@on_uvloop
async def test_a_pooled_connect_that_succeeds_leaves_the_sweep() -> None:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    sweep = DeadlineSweep(loop, clock)
    pool = UpstreamPool(loop, 4.0, sweep=sweep)
    backend = await serve(Echo)
    results: list[Result] = []
    pool.connect("127.0.0.1", port_of(backend), 0.3, lambda c, r: results.append((c, r)))
    await until(lambda: bool(results))
    conn, reason = results[0]
    assert conn is not None and reason == ""
    assert len(sweep) == 0
    clock.advance(10)  # long past the connect's deadline: nothing fires
    sweep.sweep()
    assert len(results) == 1
    # Pooled, it is watched again: the pool's idle expiry is on the same sweep.
    pool.put(conn)
    assert pool.idle_count() == 1 and len(sweep) == 1
    clock.advance(3.9)
    sweep.sweep()
    assert pool.idle_count() == 1
    clock.advance(0.1)
    sweep.sweep()
    assert pool.idle_count() == 0 and conn.closed and len(sweep) == 0
    pool.close()
    backend.close()


@on_uvloop
async def test_a_tcp_relay_connect_times_out_on_the_sweep_and_retries() -> None:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    sweep = DeadlineSweep(loop, clock)
    backend = await serve(Echo)
    tracker: ConnectionTracker[TcpRelay] = ConnectionTracker()
    with full_backlog() as stuck:
        router = FakeRouter([("127.0.0.1", stuck, "stuck"), ("127.0.0.1", port_of(backend), "ok")])
        router.connect_timeout = 30.0  # real time would never get there in this test
        relay = await loop.create_server(
            lambda: TcpRelay(router, loop, tracker, None, sweep), "127.0.0.1", 0
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
        writer.write(b"x")
        await until(lambda: len(sweep) == 1)  # connecting to "stuck", watched
        clock.advance(29.9)
        sweep.sweep()
        await asyncio.sleep(0.05)
        assert router.events == []
        clock.advance(0.1)
        sweep.sweep()
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
    assert router.events[:2] == [("connect_failed", "stuck", "timeout"), ("release", "stuck")]
    assert router.events[2][:2] == ("connected", "ok")
    assert len(sweep) == 0  # connected: no longer watched
    writer.close()
    await until(lambda: len(tracker) == 0)
    relay.close()
    backend.close()
