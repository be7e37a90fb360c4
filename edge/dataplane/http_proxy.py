"""The HTTP/1.1 relay: one ``HttpProxyProtocol`` per accepted client connection.

A connection handles one request at a time. Its input is in one of a few phases: reading
a request head, streaming that request's body to the machine, holding (bytes that came
early, such as pipelined requests, wait there with reading paused), or a raw tunnel
after a 101. Each request is routed on its own (``ListenerRouter.choose``), sent on a
pooled keep-alive connection to the machine, and its response comes back through the
``ResponseSink`` calls of ``UpstreamConnection``. Heads are edited in place and bodies
forwarded untouched (``http_head``, ``http_framing``).

Nothing here runs a coroutine or a timer per request: timeouts are deadlines (one float
per connection) that the ``HttpConnectionTracker`` checks a few times per second; only
simulated latency (``Upstream.upstream_delay``/``client_delay`` > 0) uses ``call_later``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol, cast

import httptools

from edge.dataplane.contract import ClientInfo, ListenerRouter, NoUpstream, RouteHints, Upstream
from edge.dataplane.http_framing import (
    ChunkedScanner,
    edge_response,
    https_location,
    no_upstream_answer,
)
from edge.dataplane.http_head import (
    RequestHeadScan,
    RequestRewriter,
    ResponseHeadScan,
    head_for_client,
    request_target,
)
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.proxy_protocol import accept_proxy_header
from edge.dataplane.request_id import UlidSource
from edge.dataplane.tls import client_info_from_transport
from edge.dataplane.upstream_pool import UpstreamConnection, UpstreamPool

# Input phases.
_READ_HEAD: Final = 0
_BODY: Final = 1
_HOLD: Final = 2
_TUNNEL: Final = 3
_CLOSED: Final = 4
# Request body framing.
_NO_BODY: Final = 0
_LENGTH_BODY: Final = 1
_CHUNKED_BODY: Final = 2

_INF: Final = float("inf")
_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_NO_EXCLUDE: Final[frozenset[str]] = frozenset()
_LARGE_WRITE: Final = 16 * 1024  # above this a head and a body go out via writelines


class HttpSettings(Protocol):
    """The ``http`` section of edge.yaml (``edge.config.model.HttpSpec`` fits)."""

    @property
    def headers_read_timeout(self) -> float: ...

    @property
    def max_header_bytes(self) -> int: ...

    @property
    def idle_timeout(self) -> float: ...

    @property
    def upstream_idle_timeout(self) -> float: ...


class _Listener:
    """What every connection of one listener shares."""

    def __init__(
        self,
        router: ListenerRouter,
        settings: HttpSettings,
        pool: UpstreamPool,
        loop: asyncio.AbstractEventLoop,
        tracker: HttpConnectionTracker,
    ) -> None:
        self.router = router
        self.pool = pool
        self.loop = loop
        self.tracker = tracker
        self.headers_read_timeout = settings.headers_read_timeout
        self.max_head = settings.max_header_bytes
        self.idle_timeout = settings.idle_timeout
        self.ulids = UlidSource()
        # What follows the ULID in a response head: the rest of the Fly-Request-Id line,
        # Via, maybe Connection, and the blank line.
        via = b"-%s\r\nVia: 1.1 edge\r\n" % router.pop.encode()
        self.tail_keep = via + b"\r\n"
        self.tail_close = via + b"Connection: close\r\n\r\n"
        self.tail_10 = via + b"Connection: keep-alive\r\n\r\n"
        self.tail_upgrade = via + b"Connection: upgrade\r\n\r\n"


class HttpProxyProtocol(asyncio.Protocol):
    """The client side of one HTTP/1.1 connection, and the controller of its requests."""

    def __init__(self, listener: _Listener, client: ClientInfo | None = None) -> None:
        self._l = listener
        self._router = listener.router
        self._loop = listener.loop
        self._client = client
        self.transport: asyncio.Transport | None = None
        self.deadline = _INF  # when the current wait (idle, head, answer) is over
        self._head = RequestHeadScan()
        self._parser = httptools.HttpRequestParser(self._head)
        self._rewriter: RequestRewriter | None = None
        self._in = _READ_HEAD
        self._partial = b""  # an incomplete request head
        self._fed = 0  # how much of _partial the parser has seen
        self._held = b""  # input not processed yet (reading is paused while there is some)
        self._reading_paused = False
        self._up_full = False  # the machine connection's write buffer is full
        self._client_full = False  # ours is
        self._client_eof = False
        self._requests = 0
        self._hints: RouteHints | None = None
        self._plain_hints: RouteHints | None = None  # for requests with only a Host
        self._timer: asyncio.TimerHandle | None = None
        # The request in flight.
        self._upstream: Upstream | None = None  # chosen and not released yet
        self._conn: UpstreamConnection | None = None
        self._fwd_head = b""  # as sent to the machine (kept for a replay)
        self._keep_alive = True
        self._http10 = False
        self._head_request = False
        self._replayable = False
        self._upgrade = False
        self._body_mode = _NO_BODY
        self._body_left = 0
        self._chunks = ChunkedScanner()
        self._req_done = False
        self._resp_started = False
        self._close_after = False
        self._attempts = 0
        self._exclude = _NO_EXCLUDE
        self._reused = False
        self._fresh_only = False
        self._chosen_at = 0.0
        self._connect_started = 0.0
        self._sent = 0  # bytes to the machine, for ListenerRouter.transferred
        self._back = 0  # bytes to the client

    # -- asyncio.Protocol (client side) -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't inherit from asyncio's classes: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        if self._client is None:
            self._client = client_info_from_transport(transport)
        client = self._client
        ip = client.peer_ip
        ip = ip[7:] if ip.startswith("::ffff:") and "." in ip else ip  # v4 on a v6 socket
        self._rewriter = RequestRewriter(ip, client.local_port, client.tls, self._router.pop)
        self.deadline = self._loop.time() + self._l.headers_read_timeout
        self._l.tracker.add(self)

    def data_received(self, data: bytes) -> None:
        phase = self._in
        if phase == _READ_HEAD:
            self._read_head(data)
        elif phase == _BODY:
            self._forward_body(data)
        elif phase == _HOLD:
            self._hold(data)
        elif phase == _TUNNEL and self._conn is not None:
            self._sent += len(data)
            self._conn.write(data)

    def eof_received(self) -> bool:
        if self._in == _TUNNEL:
            if self._conn is not None:
                self._conn.write_eof()
            return True
        if self._in == _HOLD and (self._req_done or self._body_mode == _NO_BODY):
            self._client_eof = True  # the request is whole: answer it, then close
            return True
        return False  # idle, or a request that can never be completed: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._in = _CLOSED
        self.deadline = _INF
        self._l.tracker.discard(self)
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

    def resume_writing(self) -> None:
        self._client_full = False
        if self._conn is not None:
            self._conn.resume_reading()

    # -- the tracker's view ---------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Between requests: closing now loses nothing."""
        return self._in == _READ_HEAD and not self._partial and self._upstream is None

    def close(self) -> None:
        self._in = _CLOSED
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._in = _CLOSED
        if self.transport is not None:
            self.transport.abort()

    def deadline_passed(self, now: float) -> None:
        self.deadline = _INF
        if self._in == _READ_HEAD:
            if self._partial:
                self._reject(408, "edge: the request head did not arrive in time\n")
            else:
                self.close()  # idle keep-alive (or a client that never sent anything)
        elif self._conn is not None and not self._resp_started:
            conn, self._conn = self._conn, None
            conn.detach()
            self._fail(504, "edge: the machine did not answer in time\n", now)

    # -- reading requests ------------------------------------------------------------------

    def _read_head(self, data: bytes) -> None:
        start = 0
        if self._partial:
            start = max(len(self._partial) - 3, 0)
            data = self._partial + data
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
        if head[0] in (10, 13) and not head.strip(b"\r\n"):
            if rest:
                self._read_head(rest)  # empty lines before a request are allowed
            return
        self._head.headers_done = True  # fed up to the blank line without an error
        self._start_request(head, rest, upgrade)

    def _partial_head(self, data: bytes) -> None:
        if len(data) > self._l.max_head:
            self._reject(431, "edge: request head too large\n")
            return
        if not self._partial:
            self.deadline = self._loop.time() + self._l.headers_read_timeout
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

    def _start_request(self, head: bytes, rest: bytes, upgrade: bool) -> None:
        req = self._head
        method = self._parser.get_method()
        if head[0] in (10, 13):
            head = head.lstrip(b"\r\n")
        http10 = self._http10 = head[head.find(b"\r\n") - 1] == 48  # "HTTP/1.0"
        if req.rare or http10 or self._client_eof:  # else: HTTP/1.1, no Connection header
            self._keep_alive = req.keeps_alive(http10) and not self._client_eof
        else:
            self._keep_alive = True
        has_body = req.chunked or req.content_length > 0
        self._head_request = method == b"HEAD"
        self._replayable = method in _IDEMPOTENT and not has_body
        self._upgrade = upgrade
        self._req_done = self._resp_started = self._close_after = False
        self._attempts = 0
        self._exclude = _NO_EXCLUDE
        self.deadline = _INF
        self._in = _HOLD
        self._held = rest
        if method == b"CONNECT":
            self._reject(405, "edge: CONNECT is not supported\n")
            return
        if has_body:
            self._frame_body(req)
        else:
            self._body_mode = _NO_BODY
        if self._router.force_https and self._client is not None and not self._client.tls:
            self._redirect_to_https(request_target(head))
            return
        plain = self._plain_hints
        if req.rare or plain is None or plain.host != req.host:
            plain = self._route_hints(req)
        self._hints = plain
        assert self._rewriter is not None
        self._fwd_head = self._rewriter.head_for_machine(head, req, upgrade, http10)
        self._choose()
        if self._held or self._reading_paused:
            self._update_reading()

    def _frame_body(self, req: RequestHeadScan) -> None:
        if req.chunked:
            self._body_mode = _CHUNKED_BODY
            self._chunks.reset()
        else:
            self._body_mode = _LENGTH_BODY
            self._body_left = req.content_length

    def _route_hints(self, req: RequestHeadScan) -> RouteHints:
        if req.hinted:
            return RouteHints(
                req.host,
                req.prefer_region,
                req.force_region,
                req.prefer_instance,
                req.force_instance,
                req.client_region,
            )
        # Only a Host: the same (immutable) hints serve while the Host stays the same.
        plain = self._plain_hints = RouteHints(req.host)
        return plain

    def _forward_body(self, data: bytes) -> None:
        if self._body_mode == _LENGTH_BODY:
            end = min(self._body_left, len(data))
            self._body_left -= end
            done = self._body_left == 0
        else:
            end = self._chunks.scan(data, 0)
            if end == -2:
                self._bad_body()
                return
            done = end >= 0
            end = end if done else len(data)
        chunk = data if end == len(data) else data[:end]
        try:
            self._parser.feed_data(chunk)  # it follows the body too: framing is checked twice
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            self._bad_body()
            return
        if self._conn is not None:
            self._sent += len(chunk)
            self._conn.write(chunk)
        if done:
            if not self._head.message_done:
                self._bad_body()
                return
            self._req_done = True
            self._in = _HOLD
            if end < len(data):
                self._hold(data[end:])

    def _hold(self, data: bytes) -> None:
        self._held = self._held + data if self._held else data
        self._update_reading()

    def _update_reading(self) -> None:
        paused = bool(self._held) or self._up_full
        if paused != self._reading_paused and self._in != _CLOSED and self.transport is not None:
            self._reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- routing and connecting --------------------------------------------------------

    def _choose(self) -> None:
        assert self._client is not None
        choice = self._router.choose(self._client, self._hints, self._exclude)
        if isinstance(choice, NoUpstream):
            text, extra = no_upstream_answer(choice, self._head.host)
            self._answer(choice.status, text, extra)
            return
        self._upstream = choice
        self._attempts += 1
        self._fresh_only = False
        self._sent = self._back = 0
        self._chosen_at = self._loop.time()
        if choice.upstream_delay > 0:
            self._timer = self._loop.call_later(choice.upstream_delay / 2, self._connect)
        else:
            self._connect()

    def _connect(self) -> None:
        self._timer = None
        up = self._upstream
        if up is None:
            return
        conn = None if self._fresh_only else self._l.pool.take(up.host, up.port)
        if conn is not None:
            self._attach(conn)
            return
        self._connect_started = self._loop.time()
        attempt = self._attempts
        self._l.pool.connect(
            up.host,
            up.port,
            up.connect_timeout,
            lambda conn, reason: self._connected(conn, reason, attempt),
        )

    def _connected(self, conn: UpstreamConnection | None, reason: str, attempt: int) -> None:
        up = self._upstream
        if up is None or attempt != self._attempts or self._in == _CLOSED:
            if conn is not None:
                self._l.pool.put(conn)  # nobody waits for it any more: keep it for later
            return
        if conn is None:
            if reason != "cancelled":
                self._router.connect_failed(up, reason)
            self._release(report=False)
            if reason != "cancelled" and self._attempts <= self._router.retries:
                self._exclude = self._exclude | {up.machine_id}
                self._choose()
            else:
                self._answer(502, f"edge: could not reach a machine of app {up.app!r} ({reason})\n")
            return
        self._router.connected(up, self._loop.time() - self._connect_started)
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        up = self._upstream
        assert up is not None
        self._conn = conn
        self._reused = conn.served > 0
        delay = up.upstream_delay / 2
        if self._requests == 0:
            delay += up.client_delay  # the client's connection setup, paid once
        conn.begin(self, self._head_request, delay)
        if self._client_full:
            conn.pause_reading()
        head = self._fwd_head
        self._sent = len(head)
        self.deadline = self._loop.time() + up.timeout
        conn.write(head)
        if self._body_mode == _NO_BODY:
            self._req_done = True
        elif not self._req_done:
            self._in = _BODY
            held, self._held = self._held, b""
            if held:
                self._forward_body(held)
            if self._reading_paused:
                self._update_reading()

    # -- the machine's answer (ResponseSink) ---------------------------------------------

    def response_interim(self, head: bytes) -> None:
        if not self._http10 and self.transport is not None:
            self._back += len(head)
            self.transport.write(head)

    def response_head(
        self, status: int, head: bytes, resp: ResponseHeadScan, until_close: bool, body: bytes
    ) -> None:
        up = self._upstream
        assert up is not None and self.transport is not None
        self._router.responded(up, status, self._loop.time() - self._chosen_at)
        self.deadline = _INF
        self._resp_started = True
        listener = self._l
        upgrade = status == 101 and self._upgrade
        if upgrade:
            tail = listener.tail_upgrade
        elif until_close or not self._keep_alive or self._upgrade or listener.tracker.draining:
            self._close_after = True
            tail = listener.tail_close
        else:
            tail = listener.tail_10 if self._http10 else listener.tail_keep
        plain = tail is listener.tail_keep
        out = head_for_client(head, resp, upgrade, listener.ulids.next(), tail, plain)
        self._back += len(out) + len(body)
        if not body:
            self.transport.write(out)
        elif len(body) < _LARGE_WRITE:
            self.transport.write(out + body)
        else:
            self.transport.writelines((out, body))
        if upgrade:
            self._start_tunnel()

    def response_body(self, data: bytes) -> None:
        if self.transport is not None:
            self._back += len(data)
            self.transport.write(data)

    def response_end(self, conn: UpstreamConnection, reusable: bool) -> None:
        self._conn = None
        if reusable and self._req_done:
            self._l.pool.put(conn)
        else:
            conn.close()
        up = self._upstream
        if up is not None:  # _release, inlined: this runs for every request
            self._upstream = None
            self._router.transferred(up, self._sent, self._back)
            self._router.release(up)
        self._next_request(self._close_after or not self._req_done)

    def upstream_lost(self, conn: UpstreamConnection, response_started: bool) -> None:
        self._conn = None
        up = self._upstream
        if self._resp_started or self._in == _TUNNEL or up is None:
            self._release()
            self.close()  # a response cut short: the client must see it end
            return
        if self._replayable and not response_started and self._retry_lost(up):
            return
        self._fail(502, "edge: the machine closed the connection before answering\n")

    def _retry_lost(self, up: Upstream) -> bool:
        """Replay an idempotent bodiless request no byte of an answer came for."""
        if self._reused and not self._fresh_only:
            self._fresh_only = True  # a pooled connection the machine had closed: not its fault
            self._connect()
            return True
        if self._attempts <= self._router.retries:
            self._router.connect_failed(up, "reset")
            self._release()
            self._exclude = self._exclude | {up.machine_id}
            self._choose()
            return True
        return False

    def upstream_writable(self, writable: bool) -> None:
        self._up_full = not writable
        self._update_reading()

    def _start_tunnel(self) -> None:
        self._in = _TUNNEL
        held, self._held = self._held, b""
        if held and self._conn is not None:
            self._sent += len(held)
            self._conn.write(held)
        self._update_reading()

    # -- ends of exchanges -------------------------------------------------------------

    def _next_request(self, close: bool) -> None:
        self._requests += 1
        if close or self._client_eof or self._in == _CLOSED:
            self.close()
            return
        self._in = _READ_HEAD
        self._head.reset()
        self.deadline = self._loop.time() + self._l.idle_timeout
        held, self._held = self._held, b""
        if held:
            self._read_head(held)
        if self._reading_paused:
            self._update_reading()

    def _release(self, report: bool = True) -> None:
        up = self._upstream
        if up is not None:
            self._upstream = None
            if report:
                self._router.transferred(up, self._sent, self._back)
            self._router.release(up)

    def _fail(self, status: int, text: str, now: float | None = None) -> None:
        """The machine failed this request before answering: say so, then close."""
        up = self._upstream
        if up is not None:
            elapsed = (self._loop.time() if now is None else now) - self._chosen_at
            self._router.responded(up, status, elapsed)
            self._release()
        self._keep_alive = False
        self._answer(status, text)

    def _bad_body(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.detach()
        self._release()
        if self._resp_started:
            self.close()
        else:
            self._reject(400, "edge: malformed request body\n")

    def _answer(self, status: int, text: str, extra: bytes = b"") -> None:
        """Answer the current request from the edge itself."""
        body_unread = self._body_mode != _NO_BODY and not self._req_done
        close = not self._keep_alive or self._upgrade or body_unread
        self._write_answer(status, text, extra, close)
        self._next_request(close)

    def _reject(self, status: int, text: str) -> None:
        """Answer bad input and close the connection."""
        self._write_answer(status, text, b"", True)
        self.close()

    def _write_answer(self, status: int, text: str, extra: bytes, close: bool) -> None:
        if self.transport is None or self._in == _CLOSED:
            return
        listener = self._l
        tail = listener.tail_close if close else listener.tail_keep
        added = b"Fly-Request-Id: " + listener.ulids.next() + tail[:-2]
        response = edge_response(status, text, added, close, extra)
        self._back += len(response)
        self.transport.write(response)

    def _redirect_to_https(self, target: bytes) -> None:
        if not self._head.host:
            self._reject(400, "edge: a Host header is needed to redirect to https\n")
            return
        location = https_location(self._head.host, target)
        self._answer(301, "edge: this app is served over https\n", location)


def make_http_protocol_factory(
    router: ListenerRouter,
    settings: HttpSettings,
    pool: UpstreamPool,
    loop: asyncio.AbstractEventLoop,
    *,
    tracker: HttpConnectionTracker | None = None,
    accept_proxy_proto: bool = False,
) -> Callable[[], asyncio.Protocol]:
    """The ``protocol_factory`` for an HTTP (or TLS-terminated HTTP) listener.

    ``tracker`` counts the listener's connections, enforces their timeouts and closes
    them at drain; one is made if none is given. With ``accept_proxy_proto`` each
    connection must start with a PROXY header naming the client.
    """
    if tracker is None:
        tracker = HttpConnectionTracker(loop)
    listener = _Listener(router, settings, pool, loop, tracker)
    if accept_proxy_proto:
        return accept_proxy_header(lambda client: HttpProxyProtocol(listener, client))
    return lambda: HttpProxyProtocol(listener)
