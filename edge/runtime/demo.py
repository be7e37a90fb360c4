"""Demo machines: instances of an app served by the edge process itself.

They let a demo run with nothing else installed, and they can be stopped and
started to show failover: a stopped machine refuses connections and breaks the
ones it had, like a killed process, and a started one comes back on the same
port, so the proxy's configured address stays valid.

Two kinds exist: ``http`` (see ``edge.runtime.demo_http``: every request is
answered with JSON describing it and the machine) and ``echo`` (raw TCP, every
byte is sent back). Both are bare ``asyncio.Protocol`` callbacks because they
sit behind the proxy in load tests and must not be the bottleneck.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from edge.runtime.demo_http import DemoConnection, DemoHttpProtocol

DemoKind = Literal["http", "echo"]

_BACKLOG = 1024  # load generators open hundreds of connections at once


@dataclass(frozen=True, slots=True)
class DemoIdentity:
    """Who a demo machine says it is in every answer."""

    app: str
    machine_id: str
    region: str
    primary_region: str = ""  # writes (``/write...``) elsewhere are replayed there

    def __post_init__(self) -> None:
        # The machine id is written verbatim into a response header.
        if not (self.machine_id.isascii() and self.machine_id.isprintable()):
            raise ValueError(f"machine id {self.machine_id!r} must be printable ASCII")


class MachineState:
    """What the connections of one running demo machine share with the manager."""

    __slots__ = ("hanging", "identity", "running", "transports")

    def __init__(self, identity: DemoIdentity, *, hanging: bool) -> None:
        self.identity = identity
        self.hanging = hanging  # accept and read, but never answer
        self.running = True
        self.transports: set[asyncio.Transport] = set()

    def register(self, transport: asyncio.Transport) -> bool:
        """Track a new connection; False (and the connection aborted) once stopped."""
        if not self.running:
            # Accepted just before the listener closed: a killed process would drop it too.
            transport.abort()
            return False
        self.transports.add(transport)
        return True

    def unregister(self, transport: asyncio.Transport) -> None:
        self.transports.discard(transport)


class DemoEchoProtocol(DemoConnection):
    """Raw TCP echo; on the client's EOF the echoed bytes are flushed, then it closes."""

    def data_received(self, data: bytes) -> None:
        if self._transport is not None and not self._state.hanging:
            self._transport.write(data)

    def eof_received(self) -> bool:
        # A false value makes the transport close itself, which first flushes what
        # is still buffered: the peer half-closed, so it still gets every echoed byte.
        return False

    def pause_writing(self) -> None:
        # A client that sends faster than it reads: stop reading rather than buffer.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()


@dataclass(slots=True)
class _Record:
    """One demo machine, running or stopped; the port outlives a stop."""

    host: str
    port: int
    server: asyncio.Server | None = None
    state: MachineState | None = None


class DemoMachines:
    """All demo machines of one daemon, by key (whatever the caller uses as a machine key)."""

    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._hanging: set[str] = set()
        # start and stop await the loop; one lock keeps a start and a stop of the
        # same key from interleaving (they are rare, so one lock for all is enough).
        self._lock = asyncio.Lock()

    async def start(
        self, key: str, identity: DemoIdentity, kind: DemoKind, host: str = "127.0.0.1"
    ) -> tuple[str, int]:
        """Serve ``key`` on ``host`` (an IP literal) and return its address.

        The first start takes an ephemeral port; later starts rebind that port, or a
        new ephemeral one if something else took it meanwhile. Starting a running
        machine changes nothing and returns its address.
        """
        factory = _protocol_factory(kind)
        async with self._lock:
            record = self._records.get(key)
            if record is not None and record.server is not None:
                return record.host, record.port
            remembered = record.port if record is not None and record.host == host else 0
            sock = _listening_socket(host, remembered)
            state = MachineState(identity, hanging=key in self._hanging)
            try:
                server = await asyncio.get_running_loop().create_server(
                    lambda: factory(state), sock=sock, backlog=_BACKLOG
                )
            except BaseException:
                sock.close()
                raise
            port = int(sock.getsockname()[1])
            self._records[key] = _Record(host, port, server, state)
            return host, port

    async def stop(self, key: str) -> None:
        """Stop listening and abort every open connection; unknown or stopped keys are fine."""
        async with self._lock:
            record = self._records.get(key)
            if record is None or record.server is None or record.state is None:
                return
            server, state = record.server, record.state
            record.server = record.state = None
            state.running = False
            server.close()
            for transport in list(state.transports):
                transport.abort()
            await server.wait_closed()

    async def close_all(self) -> None:
        for key in list(self._records):
            await self.stop(key)

    def address(self, key: str) -> tuple[str, int] | None:
        """The machine's address, also while stopped (then it refuses); None if never started."""
        record = self._records.get(key)
        return None if record is None else (record.host, record.port)

    def is_running(self, key: str) -> bool:
        record = self._records.get(key)
        return record is not None and record.server is not None

    def hang(self, key: str, on: bool) -> None:
        """Make the machine accept and read but never answer (kept across stop and start)."""
        if on:
            self._hanging.add(key)
        else:
            self._hanging.discard(key)
        record = self._records.get(key)
        if record is not None and record.state is not None:
            record.state.hanging = on


def _protocol_factory(kind: DemoKind) -> Callable[[MachineState], asyncio.Protocol]:
    if kind == "http":
        return DemoHttpProtocol
    if kind == "echo":
        return DemoEchoProtocol
    raise ValueError(f"unknown demo machine kind {kind!r}; use 'http' or 'echo'")


def _listening_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``port``, or on a new ephemeral port if ``port`` is taken."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    if port:
        try:
            return _listen(family, host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    return _listen(family, host, 0)


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restarted machine rebind its port while old connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening here, not in create_server, so a port conflict shows up in _listening_socket.
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock
