"""The client side of the HTTP relay: one connection's input, timeouts and own answers.

``ClientSide`` owns everything about the client's connection: its input phases (reading
a request head, streaming a body, holding early bytes such as pipelined requests with
reading paused, a raw tunnel after a 101), its deadlines (idle, head, answer: one float
checked by the loop's ``DeadlineSweep``), and the answers the edge makes itself (400,
408, 431, 503, ...). What to do with a request once its head is read is the business of
its subclass, ``edge.dataplane.http_proxy.HttpProxyProtocol``.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Final, cast

import httptools

from edge.core.error_codes import ErrorCode, describe
from edge.core.relay_decisions import DeadlineAction, DeadlineKind, answer_closes, on_deadline
from edge.dataplane.attempts import Attempts
from edge.dataplane.contract import ClientInfo, EdgeAnswer
from edge.dataplane.deadlines import INF
from edge.dataplane.exchange import NO_BODY, Exchange
from edge.dataplane.http_framing import edge_response
from edge.dataplane.http_head import RequestHeadScan
from edge.dataplane.http_listener import HttpListener
from edge.dataplane.http_rewrite import RequestRewriter
from edge.dataplane.tls import client_info_from_transport
from edge.dataplane.upstream_conn import UpstreamConnection


class Input(enum.Enum):
    """What the connection does with the bytes the client sends."""

    READ_HEAD = "read_head"  # between requests, or within a head: parse it
    BODY = "body"  # the request's body: forward it to the machine
    HOLD = "hold"  # keep it, reading paused (pipelined requests, a body not yet wanted)
    TUNNEL = "tunnel"  # after a 101: raw bytes to the machine
    CLOSED = "closed"


READ_HEAD: Final = Input.READ_HEAD
BODY: Final = Input.BODY
HOLD: Final = Input.HOLD
TUNNEL: Final = Input.TUNNEL
CLOSED: Final = Input.CLOSED
# Bytes of one client handled before the other connections get a turn of the loop
# (~0.5 ms of chunked framing): libuv reads a readable socket up to 32 times in a row,
# 256 KB each, so a fast upload would otherwise take 8 MB in one go.
BURST: Final = 64 * 1024


class ClientSide(asyncio.Protocol):
    """The client's connection: input, reading pauses, deadlines, answers from the edge."""

    def __init__(self, listener: HttpListener, client: ClientInfo | None = None) -> None:
        self._l = listener
        self._router = listener.router
        self._loop = listener.loop
        self._clock = listener.clock
        self._client = client
        self._sni: str | None = None  # the TLS session's server name: Host must match it
        self.transport: asyncio.Transport | None = None
        self.deadline = INF  # when the current wait is over (the loop's DeadlineSweep)
        self.deadline_kind = DeadlineKind.NONE  # what is waited for: what passing it means
        self._head = RequestHeadScan()
        self._parser = httptools.HttpRequestParser(self._head)
        self._rewriter: RequestRewriter | None = None
        self._tails = listener.tails(listener.router.pop)  # those of the request's PoP
        self._opened: object = None  # the router's token for this connection
        self._in = READ_HEAD
        self._partial = b""  # an incomplete request head
        self._fed = 0  # how much of _partial the parser has seen
        self._held = b""  # input not processed yet (reading is paused while there is some)
        self._holding = False  # _take_held is working through _held (no recursion)
        self._blank = 0  # empty lines before the current request head (bytes)
        self._reading_paused = False
        self._burst = 0  # bytes read since this connection last let the others run
        self._yielding = False  # reading paused until the loop's next turn
        self._deferred = b""  # input of this turn beyond BURST, handled at the next
        self._up_full = False  # the machine connection's write buffer is full
        self._client_full = False  # ours is
        self._client_eof = False
        self._requests = 0
        self._timer: asyncio.TimerHandle | None = None
        # The request being read or answered, and its tries at reaching a machine.
        self._ex = Exchange()
        self._tries = Attempts(listener.router, client)
        self._conn: UpstreamConnection | None = None  # the machine connection it uses

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't inherit from asyncio's classes: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        if self._client is None:
            self._client = client_info_from_transport(transport)
        client = self._client
        self._sni = client.sni if client.tls else None
        ip = client.peer_ip
        ip = ip[7:] if ip.startswith("::ffff:") and "." in ip else ip  # v4 on a v6 socket
        self._rewriter = RequestRewriter(ip, client.local_port, client.tls)
        self._tries.client = client
        self._set_deadline(self._clock() + self._l.headers_read_timeout, DeadlineKind.HEAD)
        self._l.tracker.add(self)
        self._opened = self._router.opened(client)

    def data_received(self, data: bytes) -> None:
        if self._deferred:  # earlier input waits for the loop's next turn: keep the order
            self._deferred += data
            return
        if len(data) > BURST:
            data, self._deferred = data[:BURST], data[BURST:] + self._deferred
            self._yield_turn()
        else:
            self._burst += len(data)
            if self._burst > BURST:
                self._yield_turn()
        phase = self._in
        if phase is READ_HEAD:
            self._read_head(data)
        elif phase is BODY:
            self._forward_body(data)
        elif phase is HOLD:
            self._hold(data)
        elif phase is TUNNEL and self._conn is not None:
            self._ex.sent += len(data)
            self._conn.write(data)

    def eof_received(self) -> bool:
        if self._in is TUNNEL:
            if self._conn is not None:
                self._conn.write_eof()
            return True
        if self._in is HOLD and (self._ex.req_done or self._ex.body_mode == NO_BODY):
            self._client_eof = True  # the request is whole: answer it, then close
            return True
        return False  # idle, or a request that can never be completed: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._in = CLOSED
        self._ex.end()
        self._set_deadline(INF, DeadlineKind.NONE)
        self._l.tracker.discard(self)
        if self.transport is not None:
            self._router.closed(self._opened)
        self._tries.leave_queue()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.detach()
        self._release()

    def pause_writing(self) -> None:
        self._client_full = True
        if self._conn is not None:
            self._conn.pause_reading()
        elif self._in is READ_HEAD:
            self._update_reading()  # answers of the edge's own pile up: read no more requests

    def resume_writing(self) -> None:
        self._client_full = False
        if self._conn is not None:
            self._conn.resume_reading()
        elif self._in is READ_HEAD:
            self._take_held()
            self._update_reading()

    # -- the tracker's view ----------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Between requests: closing now loses nothing."""
        reading = self._partial or self._blank
        return self._in is READ_HEAD and not reading and self._tries.lease is None

    def close(self) -> None:
        self._in = CLOSED
        self._ex.end()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._in = CLOSED
        self._ex.end()
        if self.transport is not None:
            self.transport.abort()

    def _set_deadline(self, at: float, kind: DeadlineKind) -> None:
        self.deadline = at
        self.deadline_kind = kind

    def deadline_passed(self, now: float) -> None:
        kind, self.deadline_kind = self.deadline_kind, DeadlineKind.NONE
        self.deadline = INF
        action = on_deadline(kind, head_begun=bool(self._partial or self._blank))
        if action is DeadlineAction.CLOSE:
            self.close()  # idle keep-alive (or a client that never sent anything)
        elif action is DeadlineAction.ANSWER_408_HEAD:
            self._reject(408, "edge: the request head did not arrive in time\n")
        elif action is DeadlineAction.ANSWER_504 and self._conn is not None:
            conn, self._conn = self._conn, None
            conn.detach()
            self._fail(504, "edge: the machine did not answer in time\n", now)
        elif action is DeadlineAction.ANSWER_408_BODY:
            self._reject(408, "edge: the request body did not arrive in time\n")
        elif action is DeadlineAction.REPLAY_TIMEOUT:
            self._replay_timed_out(now)
        elif action is DeadlineAction.REFUSE_QUEUED:
            self._queue_timed_out(now)

    # -- reading requests ------------------------------------------------------------------

    def _read_head(self, data: bytes) -> None:
        start = 0
        if self._partial:
            start = max(len(self._partial) - 3, 0)
            data = self._partial + data
        elif data[0] in (10, 13):
            data = self._skip_blank_lines(data)
            if not data:
                return
        end = data.find(b"\r\n\r\n", start) + 4
        if end < 4:
            self._partial_head(data)
            return
        if end > self._l.max_head:
            self._reject(431, "edge: request head too large\n")
            return
        head, rest = (data, b"") if end == len(data) else (data[:end], data[end:])
        upgrade = False
        try:
            self._parser.feed_data(head[self._fed :] if self._fed else head)
        except httptools.HttpParserUpgrade:
            upgrade = True
        except httptools.HttpParserError:
            self._reject(400, "edge: malformed request\n")
            return
        self._fed, self._partial = 0, b""
        self._blank = 0
        self._head.headers_done = True  # fed up to the blank line without an error
        self._start_request(head, rest, upgrade)

    def _skip_blank_lines(self, data: bytes) -> bytes:
        """Empty lines before a request head are allowed (RFC 9112 section 2.2), but they
        count against the same head size and deadline as the head itself."""
        head = data.lstrip(b"\r\n")
        head_by = self._clock() + self._l.headers_read_timeout
        if not self._blank and self.deadline > head_by:
            self._set_deadline(head_by, DeadlineKind.HEAD)  # an idle wait
        self._blank += len(data) - len(head)
        if self._blank > self._l.max_head:
            self._reject(400, "edge: too many empty lines before the request\n")
            return b""
        return head

    def _partial_head(self, data: bytes) -> None:
        if len(data) > self._l.max_head:
            self._reject(431, "edge: request head too large\n")
            return
        if not self._partial and not self._blank:
            self._set_deadline(self._clock() + self._l.headers_read_timeout, DeadlineKind.HEAD)
        # Feeding what we have finds garbage now rather than at the timeout.
        if self._feed_head(data[self._fed :]) is not None:
            self._fed = len(data)
            self._partial = data

    def _feed_head(self, data: bytes) -> bool | None:
        """Parse head bytes: True on an upgrade, False if not, None if rejected."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return True
        except httptools.HttpParserError:
            self._reject(400, "edge: malformed request\n")
            return None
        return False

    def _hold(self, data: bytes) -> None:
        self._held = self._held + data if self._held else data
        self._update_reading()

    def _yield_turn(self) -> None:
        """Stop reading until the loop has run every other ready callback once."""
        if self._yielding:
            return
        self._yielding = True
        self._update_reading()
        self._loop.call_soon(self._take_turn)

    def _take_turn(self) -> None:
        self._yielding = False
        self._burst = 0
        deferred, self._deferred = self._deferred, b""
        if deferred and self._in is not CLOSED:
            self.data_received(deferred)  # its next BURST; the rest waits for another turn
        self._update_reading()

    def _update_reading(self) -> None:
        # Reading stops while input waits, while the machine's connection is full, for a
        # turn of the loop after a burst, and while the client does not read what the
        # edge itself answered (pipelining).
        paused = (
            bool(self._held)
            or self._up_full
            or self._yielding
            or (self._client_full and self._in is READ_HEAD and self._conn is None)
        )
        if paused != self._reading_paused and self._in is not CLOSED and self.transport is not None:
            self._reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- ends of exchanges, answers from the edge -------------------------------------------

    def _next_request(self, close: bool) -> None:
        self._requests += 1
        if close or self._client_eof or self._in is CLOSED:
            self.close()
            return
        self._ex.end()
        self._ex = Exchange()
        self._in = READ_HEAD
        self._head.reset()
        self._set_deadline(self._clock() + self._l.idle_timeout, DeadlineKind.IDLE)
        self._take_held()
        if self._reading_paused or self._client_full:
            self._update_reading()

    def _take_held(self) -> None:
        """Read the requests that arrived early (pipelined), one after the other.

        A loop, not a recursion: each request the edge answers itself would otherwise
        read the next one from inside its answer. It stops while the client does not
        read the answers (backpressure, as on the proxied path).
        """
        if self._holding:
            return  # an outer call is in the loop below and takes it from here
        self._holding = True
        try:
            while self._held and self._in is READ_HEAD and not self._client_full:
                held, self._held = self._held, b""
                self._read_head(held)
        finally:
            self._holding = False

    def _release(self, report: bool = True) -> None:
        """The request is done with its machine: free the load slot (once)."""
        if report:
            self._tries.release(self._ex.sent, self._ex.back)
        else:
            self._tries.release()

    def _answer(
        self, status: int, text: str, extra: bytes = b"", code: ErrorCode | None = None
    ) -> None:
        """Answer the current request from the edge itself (``code``: the platform's)."""
        ex = self._ex
        body_unread = ex.body_mode != NO_BODY and not ex.req_done
        close = answer_closes(
            keep_alive=ex.keep_alive, upgrade_asked=ex.upgrade, body_unread=body_unread
        )
        self._write_answer(status, text, extra, close, code)
        self._next_request(close)

    def _reject(self, status: int, text: str, code: ErrorCode | None = None) -> None:
        """Answer bad input and close the connection."""
        self._write_answer(status, text, b"", True, code)
        self.close()

    def _write_answer(
        self, status: int, text: str, extra: bytes, close: bool, code: ErrorCode | None
    ) -> None:
        """The one place every answer of the edge is written, named and reported."""
        if self.transport is None or self._in is CLOSED:
            return
        listener = self._l
        tails = self._tails
        ulid = listener.ulids.next()
        body = text
        if code is not None:
            body += f"error code: {code} ({describe(code).summary})\n"
            extra += b"Edge-Error-Code: %s\r\n" % code.encode()
        # edge_response says Connection: close itself, once: the keep tail has none.
        added = b"Fly-Request-Id: " + ulid + tails.keep[:-2]
        response = edge_response(status, body, added, close, extra, self._ex.head_request)
        self._ex.back += len(response)
        self.transport.write(response)
        if status >= 400 and self._client is not None:
            request_id = f"{ulid.decode()}-{tails.pop}"
            reason = text.strip().removeprefix("edge: ")
            answer = EdgeAnswer(status, code, reason, self._ex.app, tails.pop, request_id)
            self._router.answered(self._client, answer)

    # -- what the relay proper does with a request ---------------------------------------

    def _start_request(self, head: bytes, rest: bytes, upgrade: bool) -> None:
        """A complete request head was read (``rest``: the bytes after it)."""
        raise NotImplementedError

    def _forward_body(self, data: bytes) -> None:
        """Body bytes of the request in flight (and maybe what follows it)."""
        raise NotImplementedError

    def _fail(
        self, status: int, text: str, now: float | None = None, code: ErrorCode | None = None
    ) -> None:
        """The machine failed the request in flight before answering."""
        raise NotImplementedError

    def _queue_timed_out(self, now: float) -> None:
        """The deadline of a wait for a free machine (capacity queue) passed."""
        raise NotImplementedError

    def _replay_timed_out(self, now: float) -> bool:
        """A fly-replay target was not reached in time (``http_replay``)."""
        raise NotImplementedError
