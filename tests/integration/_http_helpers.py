"""Real-socket helpers for the HTTP relay's tests: backends, a raw client, a running relay.

Everything listens on 127.0.0.1 port 0. Backends are small asyncio servers whose
handler decides, per request, what a machine does (answer, stream, stall, die).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvloop

from edge.dataplane.http_proxy import make_http_protocol_factory
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.simple_router import StaticRouter
from edge.dataplane.upstream_pool import UpstreamPool

T = TypeVar("T")
LOCALHOST = "127.0.0.1"
_running_backends: list[Backend] = []


def on_uvloop(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async test on a fresh uvloop loop (the data plane's production loop)."""

    async def bounded(*args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.wait_for(test(*args, **kwargs), 30)
        finally:  # a failed test must not leave servers behind (the loop can't close then)
            while _running_backends:
                await _running_backends.pop().stop()

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> T:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(bounded(*args, **kwargs))

    return run


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def free_port() -> int:
    """A port nothing listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
    return port


# -- reading HTTP messages ----------------------------------------------------------------


@dataclass
class Message:
    """A request (as a backend got it) or a response (as a client got it)."""

    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw_head: bytes = b""

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def status(self) -> int:
        return int(self.start.split()[1])

    @property
    def method(self) -> str:
        return self.start.split()[0]

    @property
    def target(self) -> str:
        return self.start.split()[1]


async def read_head(reader: asyncio.StreamReader) -> Message:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
    return Message(lines[0], headers, raw_head=raw)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_body(
    reader: asyncio.StreamReader, msg: Message, head_request: bool = False
) -> bytes:
    if head_request or msg.start.split()[1] in ("204", "304", "101"):
        return b""
    if (msg.get("transfer-encoding") or "").lower().endswith("chunked"):
        return await read_chunked(reader)
    length = msg.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if msg.start.startswith("HTTP/"):
        return await reader.read()  # until close
    return b""


async def read_response(reader: asyncio.StreamReader, head_request: bool = False) -> Message:
    msg = await read_head(reader)
    msg.body = await read_body(reader, msg, head_request)
    return msg


# -- backends -----------------------------------------------------------------------------


Handler = Callable[
    ["Backend", Message, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]
]


async def answer_ok(
    backend: Backend, req: Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """Read the body, answer 200 with ``path=<target> body=<n bytes>``."""
    req.body = await read_body(reader, req)
    backend.requests.append(req)
    body = f"path={req.target} body={len(req.body)}".encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\nX-Backend: %s\r\n\r\n%s"
        % (len(body), backend.name.encode(), b"" if req.method == "HEAD" else body)
    )
    return True


@dataclass
class Backend:
    """A machine: an asyncio server running ``handler`` for each request."""

    handler: Handler = answer_ok
    name: str = "b"
    requests: list[Message] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, LOCALHOST, 0)
        _running_backends.append(self)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                try:
                    req = await read_head(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if not await self.handler(self, req, reader, writer):
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self in _running_backends:
            _running_backends.remove(self)
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.server.wait_closed()


# -- the relay under test -----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """``HttpSettings`` in seconds (``HttpSpec`` reads bare numbers as milliseconds)."""

    headers_read_timeout: float = 10.0
    max_header_bytes: int = 32768
    idle_timeout: float = 60.0
    upstream_idle_timeout: float = 4.0


@dataclass
class Relay:
    router: StaticRouter
    pool: UpstreamPool
    tracker: HttpConnectionTracker
    server: asyncio.Server
    port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(LOCALHOST, self.port)

    async def request(self, raw: bytes, head_request: bool = False) -> Message:
        """One request on a new connection; the connection is closed afterwards."""
        reader, writer = await self.connect()
        try:
            writer.write(raw)
            return await read_response(reader, head_request)
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def running_relay(
    router: StaticRouter, settings: Settings | None = None
) -> AsyncIterator[Relay]:
    """The HTTP relay on 127.0.0.1:0; everything it opened is closed on exit."""
    loop = asyncio.get_running_loop()
    settings = settings or Settings()
    pool = UpstreamPool(loop, settings.upstream_idle_timeout)
    tracker = HttpConnectionTracker(loop)
    factory = make_http_protocol_factory(router, settings, pool, loop, tracker=tracker)
    server = await loop.create_server(factory, LOCALHOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Relay(router, pool, tracker, server, port)
    finally:
        server.close()
        tracker.close_all()
        pool.close()
        await server.wait_closed()
        await asyncio.sleep(0.02)  # let transports finish closing


def get(path: str = "/", host: str = "app.example", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
