"""A playbook for the HTTP relay: bytes and events in, writes and commands out, a fake clock.

The real ``HttpProxyProtocol`` (built by ``make_http_protocol_factory``), the real
``StaticRouter``, the real ``UpstreamPool`` and ``UpstreamConnection`` run here without a
socket or a running event loop:

- the client's side is a ``FakeTransport`` that records what the edge writes and whether
  it paused reading or closed; ``Client.send`` feeds it bytes;
- opening a machine connection becomes a ``Connect`` command (``ScriptedPool.connect``:
  the pool's own ``PendingConnect``, timed by the sweep) that the test completes
  (``Playbook.accept``: a real ``UpstreamConnection`` on a fake transport, whose machine
  side the test plays with ``Machine.send`` / ``Machine.close``), fails
  (``Playbook.refuse``), or lets time out;
- time is a ``FakeClock``; ``Playbook.advance`` moves it in ticks and runs the loop's one
  ``DeadlineSweep`` (client connections, connects, idle pooled connections). Nothing
  sleeps.

Construction and the way deadlines fire are in ``Playbook`` alone, so a change of the
relay's internals is absorbed here; the tests speak only bytes, commands and time.
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge.config.model import HttpSpec
from edge.core.clock import FakeClock
from edge.core.error_codes import capacity_code
from edge.core.faults import Fault
from edge.dataplane.contract import Choice, ClientInfo, NoUpstream, RouteHints
from edge.dataplane.deadlines import TICK, DeadlineSweep
from edge.dataplane.http_proxy import make_http_protocol_factory
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.simple_router import StaticRouter
from edge.dataplane.upstream_conn import ConnectDone, UpstreamConnection
from edge.dataplane.upstream_pool import PendingConnect, UpstreamPool
from edge.runtime.capacity import WaitQueue
from tests.playbook_fakes import FakeLoop, FakeTransport, Message, MessageStream

MACHINE_HOST = "127.0.0.1"
MACHINE_PORTS = (9001, 9002, 9003)


# --- the two ends the test plays ------------------------------------------------------------


class Client:
    """A client connection of the edge: send it bytes, read the edge's responses."""

    def __init__(self, book: Playbook, protocol: asyncio.Protocol, transport: FakeTransport):
        self._book = book
        self.protocol = protocol
        self.transport = transport
        self.stream = MessageStream(requests=False)

    def send(self, data: bytes) -> Client:
        assert not self.transport.lost, "the edge has closed this connection"
        self.protocol.data_received(data)
        self._book.run()
        return self

    def send_eof(self) -> None:
        self.transport.peer_closes()
        self._book.run()

    def disconnect(self) -> None:
        self.transport.deliver_lost(ConnectionResetError("the client went away"))
        self._book.run()

    def responses(self) -> list[Message]:
        """The responses completed since the last call."""
        self.stream.feed(self.transport.take())
        return self.stream.new()

    def response(self) -> Message:
        """Exactly one new complete response."""
        got = self.responses()
        assert len(got) == 1, f"expected one response, got {len(got)}: {got}"
        return got[0]

    def tunnel_bytes(self) -> bytes:
        self.stream.feed(self.transport.take())
        data = bytes(self.stream.tunnel)
        self.stream.tunnel.clear()
        return data

    def stops_reading(self) -> None:
        """The client reads no more: the edge's writes to it pile up (pause_writing)."""
        self.protocol.pause_writing()
        self._book.run()

    def reads_again(self) -> None:
        self.protocol.resume_writing()
        self._book.run()

    @property
    def closed(self) -> bool:
        """The edge closed (or aborted) the connection."""
        return self.transport.closed

    @property
    def reading(self) -> bool:
        return self.transport.reading


class Machine:
    """The machine's end of one connection the edge opened: read requests, answer them."""

    def __init__(self, book: Playbook, connect: Connect, transport: FakeTransport):
        self._book = book
        self.connect = connect
        self.transport = transport
        self.stream = MessageStream(requests=True)

    @property
    def machine_id(self) -> str:
        return self.connect.machine_id

    def requests(self) -> list[Message]:
        """The requests completed since the last call."""
        self.stream.feed(self.transport.take())
        return self.stream.new()

    def request(self) -> Message:
        got = self.requests()
        assert len(got) == 1, f"expected one request, got {len(got)}: {got}"
        return got[0]

    def received(self) -> bytes:
        """Raw bytes since the last read (a request still incomplete, tunnel bytes)."""
        self.stream.feed(self.transport.take())
        data = bytes(self.stream.tunnel)
        self.stream.tunnel.clear()
        return data

    def send(self, data: bytes) -> Machine:
        assert isinstance(self.transport.protocol, asyncio.Protocol)
        self.transport.protocol.data_received(data)
        self._book.run()
        return self

    def respond(self, body: bytes = b"ok", status: int = 200, headers: bytes = b"") -> Machine:
        head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), headers)
        return self.send(head + body)

    def close(self) -> None:
        """The machine closes its end (FIN)."""
        self.transport.peer_closes()
        self._book.run()

    @property
    def closed(self) -> bool:
        """The edge closed this connection."""
        return self.transport.closed


# How a refused connect fails, by the contract's name (contract.connect_failure maps back).
_CONNECT_ERRORS: dict[str, Callable[[], BaseException]] = {
    "refused": ConnectionRefusedError,
    "timeout": TimeoutError,
    "reset": ConnectionResetError,
    "unreachable": lambda: OSError(errno.EHOSTUNREACH, "No route to host"),
    "exhausted": lambda: OSError(errno.EMFILE, "Too many open files"),
}


@dataclass
class Connect:
    """The relay asked the pool for a new connection to a machine: the pool's own
    ``PendingConnect`` (timed by the sweep), whose opening the test completes or fails."""

    host: str
    port: int
    timeout: float
    faults: tuple[Fault, ...]
    conn: UpstreamConnection
    opening: asyncio.Future[None]
    machine_id: str = ""

    @property
    def pending(self) -> bool:
        """Not completed, failed or timed out yet."""
        return not self.opening.done()


class ScriptedPool(UpstreamPool):
    """The real pool (take, put, forget, idle expiry, the connect's deadline and its
    outcome), but a new connection opens when the test says so, instead of a socket."""

    def __init__(
        self, loop: FakeLoop, idle_timeout: float, sweep: DeadlineSweep, book: Playbook
    ) -> None:
        super().__init__(loop, idle_timeout, sweep=sweep)  # type: ignore[arg-type]
        self._book = book
        self._clock = sweep.clock

    def connect(
        self,
        host: str,
        port: int,
        timeout: float,
        done: ConnectDone,
        faults: Sequence[Fault] = (),
    ) -> None:
        conn = UpstreamConnection(self, (host, port))
        conn.shareable = not faults
        opening: asyncio.Future[None] = asyncio.Future(loop=self._loop)
        pending = PendingConnect(self, conn, opening, self._clock() + timeout, done)
        self._book.sweep.watch(pending)
        opening.add_done_callback(pending.finished)
        self._book.connect_asked(Connect(host, port, timeout, tuple(faults), conn, opening))


class SaturableRouter(StaticRouter):
    """The StaticRouter, plus a hard limit the test switches: while ``full``, every
    choice is refused with the service's capacity queue (the runtime's ``WaitQueue``)."""

    def __init__(self, *args: Any, queue_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = WaitQueue(queue_timeout)
        self.full = False

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        if self.full:
            return NoUpstream(
                503,
                "every machine is at its hard limit",
                app=self.app,
                code=capacity_code(http=True),
                retry_after=self.retry_after,
                queue=self.queue,
            )
        return super().choose(client, hints, exclude)

    def free_a_slot(self) -> None:
        """A slot was released: no longer full, the oldest waiter chooses again."""
        self.full = False
        self.queue.wake_one()


class _TlsSession:
    """What get_extra_info('ssl_object') gives for a TLS session (no SNI name here)."""


# --- the playbook ------------------------------------------------------------------------------


class Playbook:
    """One HTTP listener of the edge, its router, pool and clock, played by the test."""

    def __init__(
        self,
        machines: int = 2,
        *,
        retries: int = 2,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        headers_read_timeout: str = "10s",
        idle_timeout: str = "60s",
        pop: str = "iad",
        queue_timeout: float | None = None,
        force_https: bool = False,
    ) -> None:
        self.clock = FakeClock()
        self.loop = FakeLoop(self.clock)
        upstreams = [(MACHINE_HOST, port) for port in MACHINE_PORTS[:machines]]
        options: dict[str, Any] = {
            "pop": pop,
            "retries": retries,
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "force_https": force_https,
        }
        self.router: StaticRouter = (
            StaticRouter(upstreams, **options)
            if queue_timeout is None
            else SaturableRouter(upstreams, queue_timeout=queue_timeout, **options)
        )
        self.settings = HttpSpec.model_validate(
            {"headers_read_timeout": headers_read_timeout, "idle_timeout": idle_timeout}
        )
        loop: Any = self.loop
        # The loop's one deadline sweep, on the fake clock: the tracker (client
        # connections), the pool (connects, idle connections) all register with it.
        self.sweep = DeadlineSweep(loop, self.clock)
        self.pool = ScriptedPool(self.loop, self.settings.upstream_idle_timeout, self.sweep, self)
        self.tracker = HttpConnectionTracker(loop, self.sweep)
        self._factory = make_http_protocol_factory(
            self.router, self.settings, self.pool, loop, tracker=self.tracker, clock=self.clock
        )
        self.connects: deque[Connect] = deque()  # asked for, not completed or failed yet
        self.machines: list[Machine] = []  # every machine connection opened, in order
        self._clients: list[Client] = []
        self._ports = 50000

    # -- clients --------------------------------------------------------------------------

    def client(self, peer_ip: str = "127.0.0.9", tls: bool = False) -> Client:
        """A client connects to the listener (``tls``: over a terminated TLS session)."""
        protocol = self._factory()
        assert isinstance(protocol, asyncio.Protocol)
        self._ports += 1
        local = ("127.0.0.1", 443 if tls else 80)
        ssl_object = _TlsSession() if tls else None
        transport = FakeTransport(self.loop, protocol, (peer_ip, self._ports), local, ssl_object)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        client = Client(self, protocol, transport)
        self._clients.append(client)
        self.run()
        return client

    # -- machines ---------------------------------------------------------------------------

    def connect_asked(self, connect: Connect) -> None:
        ids = {(up.host, up.port): up.machine_id for up in self.router.machines}
        connect.machine_id = ids.get((connect.host, connect.port), "?")
        self.connects.append(connect)

    def next_connect(self) -> Connect:
        """The oldest connect still pending (one that timed out is skipped)."""
        while self.connects and not self.connects[0].pending:
            self.connects.popleft()
        assert self.connects, "the edge asked for no new machine connection"
        return self.connects.popleft()

    @property
    def connecting(self) -> bool:
        """A connect is pending."""
        return any(connect.pending for connect in self.connects)

    def accept(self, connect: Connect | None = None) -> Machine:
        """The machine accepts the connection (the next one asked for if none is named)."""
        connect = connect if connect is not None else self.next_connect()
        assert connect.pending, "that connect is over (timed out, failed or accepted)"
        conn = connect.conn
        self._ports += 1
        transport = FakeTransport(
            self.loop, conn, (connect.host, connect.port), ("127.0.0.1", self._ports)
        )
        conn.connection_made(transport)  # type: ignore[arg-type]
        machine = Machine(self, connect, transport)
        self.machines.append(machine)
        connect.opening.set_result(None)
        self.run()
        return machine

    def refuse(self, connect: Connect | None = None, reason: str = "refused") -> Connect:
        """Connecting fails with ``reason`` (the contract's name: refused, timeout, reset,
        unreachable, exhausted; cancelled: the pool gave it up)."""
        connect = connect if connect is not None else self.next_connect()
        assert connect.pending, "that connect is over (timed out, failed or accepted)"
        if reason == "cancelled":
            connect.opening.cancel()
        else:
            connect.opening.set_exception(_CONNECT_ERRORS[reason]())
        self.run()
        return connect

    def start_draining(self) -> None:
        """The listener drains (shutdown): no more keep-alive, idle connections close now
        (what HttpConnectionTracker.drain does before it waits)."""
        self.tracker.draining = True
        self.tracker.close_idle()
        self.run()

    # -- time -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Time passes: the clock moves in the deadline sweep's ticks, and after each
        tick every deadline that passed fires (so a deadline set by what fired earlier
        in the same stretch of time fires too, as it would in the daemon)."""
        target = self.clock() + seconds
        for _ in range(1_000_000):
            left = target - self.clock()
            if left <= 0:  # the last step lands on target exactly (Sterbenz)
                break
            self.clock.advance(min(TICK, left))
            self._fire_deadlines()
            self.run()

    def _fire_deadlines(self) -> None:
        # The one place deadlines fire: the loop's sweep, as its tick would.
        self.sweep.sweep()

    def run(self) -> None:
        """A turn of the loop: callbacks made ready by what just happened run."""
        self.loop.run_ready()

    # -- what the router saw ----------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self.router.in_flight

    @property
    def saturable(self) -> SaturableRouter:
        assert isinstance(self.router, SaturableRouter), "Playbook(queue_timeout=...) makes one"
        return self.router


def get(path: str = "/", host: str = "app.example", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
