"""The fakes under the HTTP playbook (tests/playbook.py): a loop that runs only when
told, a transport that records what a protocol writes and asks for, and a parser that
splits what came out into HTTP messages. Nothing here knows the relay."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httptools

from edge.core.clock import FakeClock

# --- the loop, as far as the relay uses it -------------------------------------------------


class Handle:
    """What ``call_soon`` / ``call_later`` return: the callback, when, and a cancel."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        if not self.cancelled:
            self.callback(*self.args)


class FakeLoop:
    """A loop that never runs by itself: ``call_soon`` callbacks run when the playbook
    says (``run_ready``, after every input); ``call_later`` timers are only recorded (the
    relay keeps no timer per request: its deadlines are swept, see ``Playbook.advance``)."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.ready: deque[Handle] = deque()
        self.timers: list[Handle] = []

    def time(self) -> float:
        return self._clock()

    def call_soon(self, callback: Callable[..., object], *args: Any, context: Any = None) -> Handle:
        handle = Handle(self.time(), callback, args)
        self.ready.append(handle)
        return handle

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> Handle:
        return self.call_at(self.time() + delay, callback, *args)

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> Handle:
        handle = Handle(when, callback, args)
        self.timers.append(handle)
        return handle

    def get_debug(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """A callback failed (the deadline sweep reports and goes on): fail the test."""
        raise AssertionError(context.get("message")) from context.get("exception")

    def run_ready(self) -> None:
        for _ in range(10_000):  # a callback may schedule another: bounded, never forever
            if not self.ready:
                return
            self.ready.popleft().run()
        raise AssertionError("call_soon callbacks keep scheduling each other")


# --- transports ------------------------------------------------------------------------------


class FakeTransport:
    """One end of a connection: records what the protocol writes and asks for."""

    def __init__(
        self,
        loop: FakeLoop,
        protocol: asyncio.BaseProtocol,
        peer: tuple[str, int],
        local: tuple[str, int],
        ssl_object: object = None,
    ) -> None:
        self._loop = loop
        self.protocol = protocol
        self._extra = {"peername": peer, "sockname": local, "ssl_object": ssl_object}
        self.written = bytearray()
        self._taken = 0
        self.reading = True
        self.closed = False  # close() or abort() was called (by the protocol)
        self.aborted = False
        self.eof_written = False
        self.lost = False  # connection_lost was delivered

    # what the protocol calls
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes) -> None:
        if not self.lost:
            self.written += data

    def writelines(self, chunks: Sequence[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def close(self) -> None:
        """As asyncio does: connection_lost follows at the loop's next turn."""
        if not self.closed:
            self.closed = True
            self._loop.call_soon(self.deliver_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    # what the playbook calls
    def take(self) -> bytes:
        """The bytes written since the last ``take``."""
        data = bytes(self.written[self._taken :])
        self._taken = len(self.written)
        return data

    def deliver_lost(self, exc: Exception | None = None) -> None:
        if not self.lost:
            self.lost = True
            self.closed = True
            self.protocol.connection_lost(exc)

    def peer_closes(self) -> None:
        """The other end sent FIN: eof_received, then (unless kept half open) the end."""
        assert isinstance(self.protocol, asyncio.Protocol)
        if not self.lost and not self.protocol.eof_received():
            self.deliver_lost(None)


# --- parsing what came out ---------------------------------------------------------------------


@dataclass
class Message:
    """One HTTP message as the other end saw it."""

    first_line: str = ""  # "GET /x" (requests) or "200" (responses)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    version: str = ""

    @property
    def status(self) -> int:
        return int(self.first_line)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


class MessageStream:
    """Splits a byte stream into HTTP messages (pipelined and keep-alive included); after
    an upgrade the rest is raw tunnel bytes."""

    def __init__(self, requests: bool) -> None:
        self._requests = requests
        self._parser: httptools.HttpRequestParser | httptools.HttpResponseParser
        self._parser = (
            httptools.HttpRequestParser(self) if requests else httptools.HttpResponseParser(self)
        )
        self._current = Message()
        self._url = b""
        self._kept = False
        self.messages: list[Message] = []
        self._seen = 0
        self.upgraded = False
        self.tunnel = bytearray()

    def feed(self, data: bytes) -> None:
        if self.upgraded:
            self.tunnel += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgraded = True
            self.tunnel += data[upgrade.args[0] :]

    def new(self) -> list[Message]:
        """The messages completed since the last call."""
        fresh = self.messages[self._seen :]
        self._seen = len(self.messages)
        return fresh

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._current = Message()
        self._url = b""
        self._kept = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_status(self, status: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._current.version = parser.get_http_version()
        if isinstance(parser, httptools.HttpRequestParser):
            self._current.first_line = f"{parser.get_method().decode()} {self._url.decode()}"
        else:
            self._current.first_line = str(parser.get_status_code())
        if self._current.first_line == "101" or (
            self._requests and self._current.header("upgrade")
        ):
            self._keep()  # no body: the tunnel follows

    def on_body(self, body: bytes) -> None:
        self._current.body += body

    def on_message_complete(self) -> None:
        self._keep()

    def _keep(self) -> None:
        if not self._kept:
            self._kept = True
            self.messages.append(self._current)
