"""The HTTP/1.1 relay: one ``HttpProxyProtocol`` per accepted client connection.

A connection handles one request at a time (``ClientSide`` reads it). Each request is
routed on its own (``ListenerRouter.choose``), sent on a pooled keep-alive connection to
the machine, and its response comes back through the ``ResponseSink`` calls of
``UpstreamConnection``. Heads are edited in place and bodies forwarded untouched
(``http_head``, ``http_framing``). A connect that fails is retried on other machines; a
request whose bytes reached a machine is replayed only if it is idempotent, has no body
and no byte of an answer came back.

Nothing here runs a coroutine or a timer per request: timeouts are deadlines checked by
the ``HttpConnectionTracker``; only simulated latency (``Upstream.upstream_delay`` /
``client_delay`` > 0) uses ``call_later``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import httptools

from edge.core.clock import Clock
from edge.core.error_codes import ErrorCode, connect_failure_code
from edge.core.request_rules import Refusal, judge_request
from edge.dataplane.contract import (
    CapacityQueue,
    ClientInfo,
    ListenerRouter,
    NoUpstream,
    RouteHints,
    Upstream,
)
from edge.dataplane.http_client_side import (
    BODY,
    CHUNKED_BODY,
    CLOSED,
    HOLD,
    INF,
    LENGTH_BODY,
    NO_BODY,
    TUNNEL,
)
from edge.dataplane.http_framing import ChunkedFramer, https_location, no_upstream_answer
from edge.dataplane.http_head import RequestHeadScan
from edge.dataplane.http_listener import HttpListener, HttpSettings
from edge.dataplane.http_response import ResponseSide
from edge.dataplane.http_rewrite import request_target, retargeted
from edge.dataplane.http_tracker import HttpConnectionTracker
from edge.dataplane.proxy_protocol import accept_proxy_header
from edge.dataplane.upstream_conn import UpstreamConnection
from edge.dataplane.upstream_pool import UpstreamPool

__all__ = ["HttpProxyProtocol", "HttpSettings", "make_http_protocol_factory"]

_IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_NO_EXCLUDE: Final[frozenset[str]] = frozenset()


class HttpProxyProtocol(ResponseSide):
    """One client connection's requests: routing, the machine exchange, retries."""

    def __init__(self, listener: HttpListener, client: ClientInfo | None = None) -> None:
        super().__init__(listener, client)
        self._init_replay()
        self._hints: RouteHints | None = None
        self._plain_hints: RouteHints | None = None  # for requests with only a Host
        self._raw_head = b""  # as the client sent it
        self._fwd_head = b""  # as sent to the machine (kept for a replay)
        self._fwd_pop = ""  # the PoP _fwd_head names in Fly-Region
        self._queue: CapacityQueue | None = None  # waiting there for a free machine
        self._queue_token: object = None
        self._queue_deadline = 0.0
        self._last_refusal: NoUpstream | None = None
        self._last_cause = ""  # why the last connect of this request failed (contract name)
        self._head_request = False
        self._replayable = False
        self._body_left = 0
        self._chunks = ChunkedFramer()
        self._close_after = False
        self._attempts = 0
        self._exclude = _NO_EXCLUDE
        self._reused = False
        self._fresh_only = False
        self._chosen_at = 0.0
        self._connect_started = 0.0

    # -- a request's head is read ---------------------------------------------------------

    def _start_request(self, head: bytes, rest: bytes, upgrade: bool) -> None:
        req = self._head
        method = self._parser.get_method()
        self._head_request = method == b"HEAD"
        verdict = judge_request(
            head[: head.find(b"\r\n")], req.host, 1 + req.extra_hosts, self._sni
        )
        if verdict is not None:
            if isinstance(verdict, Refusal):
                self._reject(verdict.status, verdict.text)
                return
            head = retargeted(head, verdict)
            req.host = verdict.host
        http10 = self._http10 = head[head.find(b"\r\n") - 1] == 48  # "HTTP/1.0"
        if req.rare or http10 or self._client_eof:  # else: HTTP/1.1, no Connection header
            self._keep_alive = req.keeps_alive(http10) and not self._client_eof
        else:
            self._keep_alive = True
        has_body = req.chunked or req.content_length > 0
        self._replayable = method in _IDEMPOTENT and not has_body
        self._upgrade = upgrade
        self._req_done = self._resp_started = self._close_after = False
        self._attempts = 0
        self._last_cause = ""
        self._exclude = _NO_EXCLUDE
        self.deadline = INF
        self._in = HOLD
        self._held = rest
        if method == b"CONNECT":
            self._reject(405, "edge: CONNECT is not supported\n")
            return
        if has_body:
            self._frame_body(req)
        else:
            self._body_mode = NO_BODY
        if self._router.force_https and self._client is not None and not self._client.tls:
            self._redirect_to_https(request_target(head))
            return
        plain = self._plain_hints
        if req.rare or plain is None or plain.host != req.host:
            plain = self._route_hints(req)
        self._hints = plain
        self._raw_head = head
        self._fwd_pop = ""
        self._queue_deadline = 0.0
        self._keep_request(head, plain, has_body)
        self._choose()
        if self._held or self._reading_paused:
            self._update_reading()

    def _frame_body(self, req: RequestHeadScan) -> None:
        if req.chunked:
            self._body_mode = CHUNKED_BODY
            self._chunks.reset()
        else:
            self._body_mode = LENGTH_BODY
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
        if self._body_mode == LENGTH_BODY:
            end = min(self._body_left, len(data))
            self._body_left -= end
            done = self._body_left == 0
            chunk = data if end == len(data) else data[:end]
            try:
                self._parser.feed_data(chunk)  # it follows the body too: framing checked twice
            except httptools.HttpParserUpgrade:
                pass
            except httptools.HttpParserError:
                self._bad_body()
                return
        else:  # the framer feeds the parser exactly the body's bytes
            end = self._chunks.scan(data, 0, self._parser, self._head)
            if end == -2:
                self._bad_body()
                return
            done = end >= 0
            end = end if done else len(data)
            chunk = data if end == len(data) else data[:end]
        if self._body_buf is not None:
            self._keep_body(chunk)
        if self._conn is not None:
            self._sent += len(chunk)
            self._conn.write(chunk)
        if done:
            if not self._head.message_done:
                self._bad_body()
                return
            self._req_done = True
            self._in = HOLD
            if end < len(data):
                self._hold(data[end:])
            if self._replay_waiting:
                self._body_arrived()

    # -- routing and connecting ------------------------------------------------------------

    def _choose(self) -> None:
        assert self._client is not None
        router = self._router
        choice = router.choose(self._client, self._hints, self._exclude)
        self._app = choice.app
        if isinstance(choice, NoUpstream):
            self._no_upstream(choice)
            return
        self._upstream = choice
        self._attempts += 1
        self._fresh_only = False
        self._sent = self._back = 0
        self._chosen_at = self._clock()
        pop = choice.pop or router.pop
        if pop != self._fwd_pop:
            self._use_pop(pop)
        if choice.upstream_delay > 0:
            self._timer = self._loop.call_later(choice.upstream_delay / 2, self._connect)
            return
        # _connect's usual case, inlined. Connections with faults are never shared.
        conn = None if choice.faults else self._l.pool.take(choice.host, choice.port)
        if conn is not None:
            self._attach(conn)
        else:
            self._connect()

    def _use_pop(self, pop: str) -> None:
        """Fly-Region and the request id name the PoP the client landed on."""
        self._fwd_pop = pop
        self._tails = self._l.tails(pop)
        assert self._rewriter is not None
        self._fwd_head = self._rewriter.head_for_machine(
            self._raw_head, self._head, self._upgrade, self._http10, pop
        )

    def _no_upstream(self, choice: NoUpstream) -> None:
        if self._flow is not None and self._replay_unreachable("no_candidate", choice):
            return
        self._tails = self._l.tails(choice.pop or self._router.pop)
        queue = choice.queue
        if queue is not None:  # every machine is busy: wait for a free one, up to a limit
            now = self._clock()
            if not self._queue_deadline:
                self._queue_deadline = now + queue.timeout
            if now < self._queue_deadline:
                self._last_refusal = choice
                self._queue = queue
                self._queue_token = queue.wait(self._dequeued)
                self.deadline = self._queue_deadline
                return
        self._refuse(choice)

    def _dequeued(self) -> None:
        self._queue = self._queue_token = None
        if self._in != CLOSED:
            self.deadline = INF
            self._choose()

    def _waited_too_long(self) -> None:
        if self._replay_timed_out(self._clock()):
            return
        choice = self._last_refusal
        if self._queue is None or choice is None:
            return
        self._stop_waiting()
        self._refuse(choice)

    def _refuse(self, choice: NoUpstream) -> None:
        """Answer a request no machine can take, naming the last failed connect if any."""
        text, extra = no_upstream_answer(choice, self._head.host)
        if self._last_cause:
            text += f"edge: the last connect failed: {self._last_cause} "
            text += f"({connect_failure_code(self._last_cause)})\n"
        self._answer(choice.status, text, extra, choice.code)

    def _stop_waiting(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            queue.cancel(self._queue_token)
            self._queue_token = None

    def _connect(self) -> None:
        self._timer = None
        up = self._upstream
        if up is None:
            return
        fresh = self._fresh_only or up.faults
        conn = None if fresh else self._l.pool.take(up.host, up.port)
        if conn is not None:
            self._attach(conn)
            return
        self._connect_started = self._clock()
        attempt = self._attempts
        self._l.pool.connect(
            up.host,
            up.port,
            up.connect_timeout,
            lambda conn, reason: self._connected(conn, reason, attempt),
            up.faults,
        )

    def _connected(self, conn: UpstreamConnection | None, reason: str, attempt: int) -> None:
        up = self._upstream
        if up is None or attempt != self._attempts or self._in == CLOSED:
            if conn is not None:
                self._l.pool.put(conn)  # nobody waits for it any more: keep it for later
            return
        if conn is None:
            if reason != "cancelled":
                self._router.connect_failed(up, reason)
            self._release(report=False)
            self._last_cause = reason
            if reason == "exhausted":  # every other machine would fail the same way
                self._answer(503, "edge: the edge is out of file descriptors, try again\n")
            elif reason != "cancelled" and self._attempts - self._retry_base <= up.retries:
                self._exclude = self._exclude | {up.machine_id}
                self._choose()
            elif self._flow is not None and self._replay_unreachable("retries_exhausted", None):
                return
            else:
                text = f"edge: could not reach a machine of app {up.app!r} ({reason})\n"
                self._answer(502, text, b"", connect_failure_code(reason, self._attempts))
            return
        self._router.connected(up, self._clock() - self._connect_started)
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
        self.deadline = self._clock() + up.timeout
        conn.write(head)
        if self._resend is not None:  # a replayed request: its body was kept
            self._sent += len(self._resend)
            conn.write(self._resend)
        if self._body_mode == NO_BODY:
            self._req_done = True
        elif not self._req_done:
            self._in = BODY
            held, self._held = self._held, b""
            if held:
                self._forward_body(held)
            if self._reading_paused:
                self._update_reading()

    # -- the machine's answer: response_head, _body, _end in http_response.ResponseSide --

    def upstream_lost(self, conn: UpstreamConnection, response_started: bool) -> None:
        self._conn = None
        up = self._upstream
        if self._resp_started or self._in == TUNNEL or up is None:
            self._release()
            self.close()  # a response cut short: the client must see it end
            return
        if self._replayable and not response_started and self._retry_lost(up):
            return
        text = "edge: the machine closed the connection before answering\n"
        self._fail(502, text, code=ErrorCode.PU02)

    def _retry_lost(self, up: Upstream) -> bool:
        """Replay an idempotent bodiless request no byte of an answer came for."""
        if self._reused and not self._fresh_only:
            self._fresh_only = True  # a pooled connection the machine had closed: not its fault
            self._connect()
            return True
        if self._attempts - self._retry_base <= up.retries:
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
        self._in = TUNNEL
        held, self._held = self._held, b""
        if held and self._conn is not None:
            self._sent += len(held)
            self._conn.write(held)
        self._update_reading()

    # -- failures ---------------------------------------------------------------------------

    def _fail(
        self, status: int, text: str, now: float | None = None, code: ErrorCode | None = None
    ) -> None:
        """The machine failed this request before answering: say so, then close."""
        up = self._upstream
        if up is not None:
            elapsed = (self._clock() if now is None else now) - self._chosen_at
            self._router.responded(up, status, elapsed)
            self._release()
        self._keep_alive = False
        self._answer(status, text, b"", code)

    def _bad_body(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.detach()
        self._release()
        if self._resp_started:
            self.close()
        else:
            self._reject(400, "edge: malformed request body\n")

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
    clock: Clock | None = None,
) -> Callable[[], asyncio.Protocol]:
    """The ``protocol_factory`` for an HTTP (or TLS-terminated HTTP) listener.

    ``tracker`` counts the listener's connections, enforces their timeouts and closes
    them at drain; one is made if none is given. With ``accept_proxy_proto`` each
    connection must start with a PROXY header naming the client. ``clock`` is the
    relay's time (the loop's by default; tests give a ``FakeClock``).
    """
    if tracker is None:
        tracker = HttpConnectionTracker(loop)
    listener = HttpListener(router, settings, pool, loop, tracker, clock)
    if accept_proxy_proto:
        return accept_proxy_header(lambda client: HttpProxyProtocol(listener, client))
    return lambda: HttpProxyProtocol(listener)
