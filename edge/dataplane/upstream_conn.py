"""One connection to a machine for the HTTP relay, and the framing of its responses.

An ``UpstreamConnection`` is the protocol of one TCP connection to a machine. While a
client request uses it, it has a ``ResponseSink`` (the client's protocol) and turns the
machine's bytes into a few calls on it: the response head (with the first body bytes of
the same read, so the client usually gets one write), more body, the end. It decides
where a response ends from the head (RFC 9112 §6.3) and forwards body bytes untouched.
Between requests it sits idle in the ``UpstreamPool`` (``upstream_pool``), still
reading, so a connection the machine closes leaves the pool at once instead of failing
the next request.

Simulated latency (``begin``'s ``delay``) holds the first bytes of a response that long
in a ``DelayLine`` (``edge.dataplane.delay_line``, the one the TCP relay and the toxics
use); reading from the machine is paused while the line holds anything, what follows
goes after it, and a connection lost meanwhile is reported after the bytes before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol, cast

import httptools

from edge.dataplane.delay_line import DelayLine
from edge.dataplane.http_framing import ChunkedFramer
from edge.dataplane.http_head import ResponseHeadScan

if TYPE_CHECKING:
    from edge.dataplane.upstream_pool import UpstreamPool

# How the current response's body is delimited.
_IDLE: Final = 0  # no request in flight
_HEAD: Final = 1  # waiting for (the rest of) a response head
_LENGTH: Final = 2  # Content-Length bytes
_CHUNKED: Final = 3
_UNTIL_CLOSE: Final = 4  # no length: the body ends when the machine closes
_TUNNEL: Final = 5  # after 101: raw bytes both ways
_NONE: Final = 6  # no body (HEAD, 204, 304)

MAX_RESPONSE_HEAD: Final = 64 * 1024
_STATUS_CODES: Final = {b"%d" % code: code for code in range(100, 1000)}
_NO_BODY_STATUSES: Final = frozenset({101, 204, 304})

ConnectDone = Callable[["UpstreamConnection | None", str], None]


class ResponseSink(Protocol):
    """The client side of an exchange, as the machine connection sees it."""

    def response_interim(self, head: bytes) -> None: ...

    def response_head(
        self, status: int, head: bytes, scan: ResponseHeadScan, until_close: bool, body: bytes
    ) -> None:
        """A final (or 101) response head, and the body bytes that came with it."""
        ...

    def response_body(self, data: bytes) -> None: ...

    def response_end(self, conn: UpstreamConnection, reusable: bool) -> None: ...

    def upstream_lost(self, conn: UpstreamConnection, response_started: bool) -> None: ...

    def upstream_writable(self, writable: bool) -> None: ...


def _discard(data: bytes) -> None:
    """Writing to a connection that is closed or not open yet: the bytes have nowhere to go."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to a machine and the framing of its responses."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        # The transport's own write once connected (no wrapper on the hot path).
        self.write: Callable[[bytes], object] = _discard
        self.served = 0  # responses completed on this connection
        self.shareable = True  # False: made for one request (faults), closed after it
        self.idle_since = 0.0
        self.closed = False
        self._sink: ResponseSink | None = None
        self._scan = ResponseHeadScan()
        self._parser = httptools.HttpResponseParser(self._scan)
        self._mode = _IDLE
        self._left = 0
        self._done = False
        self._chunks: ChunkedFramer | None = None
        self._partial = b""  # an incomplete response head
        self._head = b""
        self._keep_alive = False
        self._head_request = False
        self._started = False
        self._delay = 0.0  # of the response's first bytes (then 0: the rest follows them)
        self._line: DelayLine | None = None  # made for the first delayed response
        self._line_full = False  # the line holds bytes: reading is paused until they go
        self._paused_by_client = False

    # -- use by the client side ----------------------------------------------------

    def begin(self, sink: ResponseSink, head_request: bool, delay: float) -> None:
        """Attach to one exchange; the response is delivered ``delay`` seconds late."""
        self._sink = sink
        self._mode = _HEAD
        self._scan.reset()
        self._head_request = head_request
        self._started = False
        self._delay = delay

    def detach(self) -> None:
        """The client is gone: nothing more is delivered, and the connection is not reused."""
        self._sink = None
        self.close()

    def close(self) -> None:
        self.closed = True
        self._sink = None
        self.write = _discard
        if self.transport is not None:
            self.transport.close()

    def write_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    def pause_reading(self) -> None:
        """The client can't take more now (its transport is full)."""
        self._paused_by_client = True
        if self.transport is not None and not self._line_full:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        self._paused_by_client = False
        if self.transport is not None and not self._line_full and not self.closed:
            self.transport.resume_reading()

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't inherit from asyncio's classes: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.write = self.transport.write

    def data_received(self, data: bytes) -> None:
        if self._sink is None:
            self.close()  # bytes nobody asked for: the connection can't be trusted
            return
        self._started = True
        if self._delay > 0 or (self._line is not None and self._line.busy):
            self._hold(data)
        elif self._mode == _HEAD and not self._partial:
            pos = self._response(self._sink, data, 0)  # the usual start: a response head
            if 0 <= pos < len(data):
                self._consume(data, pos)
        else:
            self._consume(data)

    def eof_received(self) -> bool:
        return False  # the machine is done: close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.write = _discard
        if self._line is not None and self._line.busy:
            self._line.mark(self._ended, 0.0)  # after the bytes that came before
            return
        self._ended()

    def pause_writing(self) -> None:
        if self._sink is not None:
            self._sink.upstream_writable(False)

    def resume_writing(self) -> None:
        if self._sink is not None:
            self._sink.upstream_writable(True)

    # -- simulated latency -------------------------------------------------------------

    def _hold(self, data: bytes) -> None:
        line = self._line
        if line is None:
            # limit=0: reading stays paused while the line holds anything.
            line = self._line = DelayLine(
                asyncio.get_running_loop(),
                self._delayed,
                limit=0,
                pause=self._line_holds,
                resume=self._line_drained,
            )
        line.push(data, self._delay)
        self._delay = 0.0

    def _delayed(self, data: bytes) -> None:
        if self._sink is not None:
            self._consume(data)

    def _line_holds(self) -> None:
        self._line_full = True
        if self.transport is not None:
            self.transport.pause_reading()

    def _line_drained(self) -> None:
        self._line_full = False
        if self.transport is not None and not self.closed and not self._paused_by_client:
            self.transport.resume_reading()

    # -- response framing -----------------------------------------------------------

    def _ended(self) -> None:
        sink = self._sink
        if sink is None:
            self.pool.forget(self)
        elif self._mode == _UNTIL_CLOSE:
            self._finish(sink, False)
        else:
            self._sink = None
            sink.upstream_lost(self, self._started)

    def _consume(self, data: bytes, pos: int = 0) -> None:
        if self._partial:
            data, self._partial = self._partial + data, b""
        size = len(data)
        while 0 <= pos < size and self._sink is not None:
            if self._mode == _HEAD:
                pos = self._response(self._sink, data, pos)
            else:
                pos = self._body(self._sink, data, pos)

    def _response(self, sink: ResponseSink, data: bytes, pos: int) -> int:
        """A response head at ``data[pos:]``, with the body bytes that follow it."""
        head_end = data.find(b"\r\n\r\n", pos) + 4
        if head_end < 4 or head_end - pos > MAX_RESPONSE_HEAD:
            if head_end >= 4 or len(data) - pos > MAX_RESPONSE_HEAD:
                return self._broken()
            self._partial = data[pos:]
            return -1
        head = data if pos == 0 and head_end == len(data) else data[pos:head_end]
        status = _STATUS_CODES.get(head[9:12], -1)  # not a code: the parser rejects the head
        try:
            self._parser.feed_data(head)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            if status != 101:  # a 101 without Upgrade headers stops the parser: we switch
                return self._broken()
        if status < 0:
            return self._broken()
        self._scan.headers_done = True  # a head is fed whole: the parser has seen all of it
        if status < 200 and status != 101:
            sink.response_interim(head)
            self._scan.reset()  # the final response follows
            return head_end
        scan = self._scan
        if (
            head_end + scan.content_length == len(data)
            and not scan.transfer_coded
            and not self._head_request
            and status not in _NO_BODY_STATUSES
        ):
            return self._whole_response(sink, status, data, head, head_end)
        self._frame(status, head)
        end = self._body_end(data, head_end)
        if end < 0 or (
            end > head_end and self._mode == _LENGTH and not self._feed(data, head_end, end)
        ):
            return self._broken()
        sink.response_head(status, head, self._scan, self._mode == _UNTIL_CLOSE, data[head_end:end])
        if self._done:
            self._finish(sink, end == len(data))
            return -1
        return end

    def _whole_response(
        self, sink: ResponseSink, status: int, data: bytes, head: bytes, head_end: int
    ) -> int:
        """The usual case, kept short: one read held a whole Content-Length response."""
        body = data[head_end:]
        if body:
            try:
                self._parser.feed_data(body)  # framing checked twice: ours and the parser's
            except httptools.HttpParserError:
                return self._broken()
        scan = self._scan
        if head[7] == 48:  # "HTTP/1.0": kept alive only when it says so
            reusable = scan.conn_keep_alive and not scan.conn_close
        else:
            reusable = not scan.conn_close
        self._mode = _LENGTH
        sink.response_head(status, head, scan, False, body)
        if self._sink is sink:  # still ours (a client that went away detached it)
            self._sink = None
            self._mode = _IDLE
            if reusable and scan.message_done and not self.closed:
                self.served += 1
            else:
                reusable = False
            sink.response_end(self, reusable)
        return -1

    def _body(self, sink: ResponseSink, data: bytes, pos: int) -> int:
        end = self._body_end(data, pos)
        if end < 0:
            return self._broken()
        chunk = data if pos == 0 and end == len(data) else data[pos:end]
        if self._mode == _LENGTH and not self._feed(chunk, 0, len(chunk)):
            return self._broken()  # the parser follows counted bodies too: framing checked twice
        sink.response_body(chunk)
        if self._done:
            self._finish(sink, end == len(data))
            return -1
        return end

    def _feed(self, data: bytes, start: int, end: int) -> bool:
        try:
            self._parser.feed_data(data if start == 0 and end == len(data) else data[start:end])
        except httptools.HttpParserError:
            return False
        return True

    def _frame(self, status: int, head: bytes) -> None:
        scan = self._scan
        self._done = False
        # HTTP/1.1 keeps the connection unless told otherwise; 1.0 only when told so.
        if head[7] == 48:  # "HTTP/1.0"
            self._keep_alive = scan.conn_keep_alive and not scan.conn_close
        else:
            self._keep_alive = not scan.conn_close
        if status == 101:
            self._mode = _TUNNEL
            self._keep_alive = False
        elif self._head_request or status in (204, 304):
            self._mode = _NONE
            self._done = True
        elif scan.chunked:
            self._mode = _CHUNKED
            if self._chunks is None:
                self._chunks = ChunkedFramer()
            self._chunks.reset()
        elif scan.transfer_coded or scan.content_length < 0:
            self._mode = _UNTIL_CLOSE
            self._keep_alive = False
        else:
            self._mode = _LENGTH
            self._left = scan.content_length
            self._done = self._left == 0

    def _body_end(self, data: bytes, pos: int) -> int:
        """How far the current body goes in ``data`` from ``pos``; -1 if malformed."""
        mode = self._mode
        if mode == _LENGTH:
            size = len(data)
            end = pos + self._left
            end = end if end < size else size
            self._left -= end - pos
            self._done = self._left == 0
            return end
        if mode == _CHUNKED:
            assert self._chunks is not None
            end = self._chunks.scan(data, pos, self._parser, self._scan)  # it feeds the parser
            self._done = end >= 0
            return end if end != -1 else len(data)
        return pos if mode == _NONE else len(data)

    def _finish(self, sink: ResponseSink, clean_end: bool) -> None:
        reusable = clean_end and self._keep_alive and not self.closed
        if self._head_request:
            self._parser = httptools.HttpResponseParser(self._scan)  # it still expects a body
        elif not self._scan.message_done:
            reusable = False  # our framing and the parser's disagree: don't trust what follows
        self._sink = None
        self._mode = _IDLE
        if reusable:
            self.served += 1
        sink.response_end(self, reusable)

    def _broken(self) -> int:
        """The machine sent something that is not HTTP: drop it, the client learns it lost."""
        sink = self._sink
        self.close()
        if sink is not None:
            sink.upstream_lost(self, self._started)
        return -1
