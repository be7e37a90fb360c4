"""The HTTP/1.1 demo machine: every request is answered with JSON describing it.

The body names the machine (app, machine_id, region) and echoes the request
(method, path, query, headers as received, body size), so a demo shows which
machine a request reached and what the proxy added on the way. A few paths
change the answer: ``GET /healthz`` (for health checks), ``/status/{code}``
(answers that status, to try 5xx handling) and ``/delay/{ms}`` (answers late).
``/write...`` plays an app that forwards writes to its primary region: a machine in
another region answers ``fly-replay: region=<primary>`` (unless the request was already
replayed), so the edge delivers the request again, to a machine in the primary region.
A ``websocket`` upgrade is accepted and the connection then echoes raw bytes.

Keep-alive and pipelining work: answers leave in request order even when an
earlier one is delayed. It is built on ``asyncio.Protocol`` and httptools, with
constant bytes prepared once per machine, because in demos it sits behind the
proxy under a load generator.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from edge.runtime.demo import DemoIdentity, MachineState

_MAX_HEAD_BYTES = 64 * 1024  # URL plus headers of one request; more is refused with 400
_MAX_DELAY_MS = 600_000
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
_NO_BODY_STATUSES = frozenset({204, 304})  # these must not carry a body (RFC 9110)
_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_BAD_REQUEST = b'{"error":"bad request"}'
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"


class _HeadTooLarge(Exception):
    """Raised from a parser callback; httptools turns it into an HttpParserError."""


@dataclass(frozen=True, slots=True)
class _MachineBytes:
    """Everything in an answer that only depends on the machine, encoded once."""

    ident_headers: bytes  # Server and X-Machine-Id, on every answer
    json_headers: bytes  # ident_headers plus Content-Type
    json_prefix: str  # the body's opening: app, machine_id and region
    healthz: bytes


@functools.lru_cache(maxsize=1024)
def _machine_bytes(identity: DemoIdentity) -> _MachineBytes:
    ident = b"Server: edge-demo\r\nX-Machine-Id: %s\r\n" % identity.machine_id.encode("latin-1")
    names = {"app": identity.app, "machine_id": identity.machine_id, "region": identity.region}
    return _MachineBytes(
        ident_headers=ident,
        json_headers=ident + b"Content-Type: application/json\r\n",
        json_prefix=json.dumps(names, separators=(",", ":"))[:-1] + ",",
        healthz=b'{"status":"ok"}',
    )


class _Answer:
    """One answer in the pipeline; ``data`` is None while a delayed answer is pending."""

    __slots__ = ("close", "data", "timer")

    def __init__(self, data: bytes | None, *, close: bool) -> None:
        self.data = data
        self.close = close  # close the connection once this is written
        self.timer: asyncio.TimerHandle | None = None


class DemoConnection(asyncio.Protocol):
    """A connection to a demo machine, registered with it so a stop can break it."""

    def __init__(self, state: MachineState) -> None:
        self._state = state
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        if self._state.register(tcp):
            self._transport = tcp

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._state.unregister(self._transport)
            self._transport = None


class DemoHttpProtocol(DemoConnection):
    """One connection to an HTTP demo machine (one instance per connection)."""

    def __init__(self, state: MachineState) -> None:
        super().__init__(state)
        self._bytes = _machine_bytes(state.identity)
        self._parser = httptools.HttpRequestParser(self)
        self._pipeline: deque[_Answer] = deque()  # only non-empty behind a delayed answer
        self._closing = False  # a Connection: close or 400 answer is queued; read no more
        self._stalled = False  # hang mode swallowed a request; nothing after it is answered
        self._tunnel = False  # after a websocket upgrade: echo raw bytes
        self._eof = False
        self._url = bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body_bytes = 0

    # --- asyncio callbacks ------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for answer in self._pipeline:
            if answer.timer is not None:
                answer.timer.cancel()
        self._pipeline.clear()

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._closing or self._stalled:
            return  # closing, or hanging: read and drop
        if self._tunnel:
            if not self._state.hanging:
                self._send(data, close=False)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._after_upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            # Pipelined data after a Connection: close request also lands here: ignore it.
            if not self._closing:
                self._refuse()

    def eof_received(self) -> bool:
        # The client half-closed. Keep the connection open for delayed answers still due;
        # a false value makes the transport flush what is buffered and close.
        self._eof = True
        return bool(self._pipeline) and not self._stalled

    def pause_writing(self) -> None:
        # A pipelining client that does not read its answers: stop parsing its requests.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # --- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._head_bytes = 0
        self._body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url  # may arrive in pieces when the request line is split
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._count_head(len(name) + len(value))

    def on_headers_complete(self) -> None:
        # curl and others wait (about a second) for this before sending a large body.
        expect = self._header(b"expect").lower()
        if expect == b"100-continue" and not (
            self._closing or self._stalled or self._state.hanging
        ):
            self._send(_CONTINUE, close=False)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)

    def on_message_complete(self) -> None:
        if self._closing or self._stalled:
            return
        if self._state.hanging:
            # Answers must leave in order, so after one unanswered request none can be.
            self._stalled = True
            return
        keep_alive = self._parser.should_keep_alive()
        if self._parser.should_upgrade() and self._header(b"upgrade").lower() == b"websocket":
            self._accept_websocket()
        else:
            self._answer(keep_alive)

    # --- answering --------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > _MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def _header(self, lower_name: bytes) -> bytes:
        """The first value of a header, or b"" when absent."""
        for name, value in self._headers:
            if name.lower() == lower_name:
                return value
        return b""

    def _answer(self, keep_alive: bool) -> None:
        method = self._parser.get_method().decode("ascii")
        path, query = _split_url(bytes(self._url))
        route = _route(path)
        status, delay_ms = route or (400, 0)
        if path.startswith("/write") and self._forwards_write():
            identity = self._state.identity
            primary = identity.primary_region.encode()
            body = b'{"replayed_to":"%s","by":"%s"}' % (primary, identity.machine_id.encode())
            head = self._bytes.json_headers + b"fly-replay: region=%s\r\n" % primary
            head += _connection_header(self._parser, keep_alive)
            self._send(_response(200, head, body, with_body=True), close=not keep_alive)
            return
        if path == "/healthz" and method in ("GET", "HEAD"):
            body = self._bytes.healthz
        elif route is None:
            body = b'{"error":"use /status/{200-599} or /delay/{0-600000}"}'
        else:
            body = self._describe(method, path, query)
        head = self._bytes.json_headers + _connection_header(self._parser, keep_alive)
        data = _response(status, head, body, with_body=method != "HEAD")
        if delay_ms:
            self._send_later(data, close=not keep_alive, delay=delay_ms / 1000)
        else:
            self._send(data, close=not keep_alive)

    def _forwards_write(self) -> bool:
        """A write this machine leaves to its app's primary region (see the docstring)."""
        identity = self._state.identity
        primary = identity.primary_region
        return bool(primary) and identity.region != primary and not self._header(b"fly-replay-src")

    def _describe(self, method: str, path: str, query: str) -> bytes:
        """The JSON body: the machine's names, then the request as received."""
        headers: dict[str, str] = {}
        spelling: dict[str, str] = {}  # lower-case name -> the spelling seen first
        for raw_name, raw_value in self._headers:
            received = raw_name.decode("latin-1")
            name = spelling.setdefault(received.lower(), received)
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        request = {
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body_bytes": self._body_bytes,
        }
        # The prefix ends with "," and the request's JSON starts with "{": splice them.
        return (self._bytes.json_prefix + json.dumps(request, separators=(",", ":"))[1:]).encode()

    def _accept_websocket(self) -> None:
        key = self._header(b"sec-websocket-key").strip()
        if not key:
            self._refuse()
            return
        accept = base64.b64encode(hashlib.sha1(key + _WEBSOCKET_GUID).digest())
        data = _SWITCHING + b"Sec-WebSocket-Accept: %s\r\n%s\r\n" % (
            accept,
            self._bytes.ident_headers,
        )
        self._send(data, close=False)
        self._tunnel = True

    def _after_upgrade(self, rest: bytes) -> None:
        """httptools stops at an upgrade request; ``rest`` is what followed it."""
        if rest and not self._tunnel:
            # Not a websocket (h2c, CONNECT): it was answered as plain HTTP; go on parsing.
            self.data_received(rest)
        elif rest and not self._state.hanging and not self._closing:
            self._send(rest, close=False)

    def _refuse(self) -> None:
        """Answer a malformed request with 400 and close."""
        head = self._bytes.json_headers + b"Connection: close\r\n"
        self._send(_response(400, head, _BAD_REQUEST, with_body=True), close=True)

    # --- the ordered output ------------------------------------------------------------

    def _send(self, data: bytes, *, close: bool) -> None:
        if close:
            self._closing = True
        if self._pipeline:  # a delayed answer is still due: queue behind it
            self._pipeline.append(_Answer(data, close=close))
        else:
            self._write(data, close=close)

    def _send_later(self, data: bytes, *, close: bool, delay: float) -> None:
        if close:
            self._closing = True
        answer = _Answer(None, close=close)
        self._pipeline.append(answer)
        answer.timer = asyncio.get_running_loop().call_later(delay, self._due, answer, data)

    def _due(self, answer: _Answer, data: bytes) -> None:
        answer.data, answer.timer = data, None
        while self._pipeline and self._pipeline[0].data is not None:
            ready = self._pipeline.popleft()
            self._write(cast(bytes, ready.data), close=ready.close)
        if self._eof and not self._pipeline and self._transport is not None:
            self._transport.close()  # the client half-closed and has all its answers

    def _write(self, data: bytes, *, close: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(data)
        if close:
            self._transport.close()  # flushes the buffer first


def _split_url(url: bytes) -> tuple[str, str]:
    """Path and query string (without "?") of a request target, undecoded."""
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        return url.decode("latin-1"), ""
    path = (parsed.path or b"").decode("latin-1")
    return path, (parsed.query or b"").decode("latin-1")


def _route(path: str) -> tuple[int, int] | None:
    """The status and delay in ms that ``/status/{code}`` and ``/delay/{ms}`` ask for.

    None when such a path carries an unusable number.
    """
    parts = path.split("/", 3)  # ["", "status", "503", anything after]
    if len(parts) < 3 or parts[1] not in ("status", "delay"):
        return 200, 0
    number = int(parts[2]) if parts[2].isascii() and parts[2].isdigit() else -1
    if parts[1] == "status":
        # 1xx would promise a second answer that never comes.
        return (number, 0) if 200 <= number <= 599 else None
    return (200, number) if 0 <= number <= _MAX_DELAY_MS else None


def _connection_header(parser: httptools.HttpRequestParser, keep_alive: bool) -> bytes:
    if not keep_alive:
        return b"Connection: close\r\n"
    # HTTP/1.0 clients close after each answer unless told the connection stays open.
    return b"Connection: keep-alive\r\n" if parser.get_http_version() == "1.0" else b""


def _response(status: int, head: bytes, body: bytes, *, with_body: bool) -> bytes:
    """A complete answer; ``with_body`` is False for HEAD (the length is still given)."""
    status_line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
    if status in _NO_BODY_STATUSES:
        return b"".join((status_line, head, b"\r\n"))
    length = b"Content-Length: %d\r\n\r\n" % len(body)
    return b"".join((status_line, head, length, body if with_body else b""))
