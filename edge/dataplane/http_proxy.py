"""The HTTP/1.1 relay: one ``HttpProxyProtocol`` per accepted client connection.

A connection handles one request at a time (``ClientSide`` reads it); each request is an
``Exchange`` (``edge.dataplane.exchange``) whose phase moves along the table of
``edge.core.phases``. A request is routed on its own through the connection's
``Attempts`` (``edge.dataplane.attempts``: choose, the capacity queue, retries, the
lease of the load slot: the raw TCP relay's too), sent on a pooled keep-alive
connection to the machine, and its response comes back through the ``ResponseSink``
calls of ``UpstreamConnection``. Heads are edited in place and bodies forwarded
untouched (``http_head``, ``http_framing``). What to do after a failed connect or a
lost machine connection, and whether the client's connection stays open, are the pure
functions of ``edge.core.relay_decisions``.

Nothing here runs a coroutine or a timer per request: timeouts are the connection's one
deadline with its kind, checked by the loop's ``DeadlineSweep``; only a simulated
machine round trip (``Upstream.upstream_delay`` > 0) delays the connect with one
``call_later`` per attempt, and the response's delay is a ``DelayLine``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools

from edge.core.clock import Clock
from edge.core.error_codes import ErrorCode, connect_failure_code
from edge.core.phases import Phase
from edge.core.relay_decisions import (
    ConnectVerdict,
    DeadlineKind,
    LostVerdict,
    after_upstream_lost,
    replayable,
    request_keeps_alive,
)
from edge.core.request_rules import Refusal, judge_request
from edge.dataplane.attempts import Lease
from edge.dataplane.contract import ClientInfo, ListenerRouter, NoUpstream, RouteHints
from edge.dataplane.deadlines import INF, DeadlineSweep
from edge.dataplane.exchange import CHUNKED_BODY, LENGTH_BODY, NO_BODY
from edge.dataplane.http_client_side import BODY, CLOSED, HOLD, TUNNEL
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


class HttpProxyProtocol(ResponseSide):
    """One client connection's requests: routing, the machine exchange, retries."""

    def __init__(self, listener: HttpListener, client: ClientInfo | None = None) -> None:
        super().__init__(listener, client)
        self._plain_hints: RouteHints | None = None  # for requests with only a Host
        self._chunks = ChunkedFramer()  # a chunked request body's framing (reused)

    # -- a request's head is read ---------------------------------------------------------

    def _start_request(self, head: bytes, rest: bytes, upgrade: bool) -> None:
        req = self._head
        ex = self._ex
        method = self._parser.get_method()
        ex.head_request = method == b"HEAD"
        verdict = judge_request(
            head[: head.find(b"\r\n")], req.host, 1 + req.extra_hosts, self._sni
        )
        if verdict is not None:
            if isinstance(verdict, Refusal):
                self._reject(verdict.status, verdict.text)
                return
            head = retargeted(head, verdict)
            req.host = verdict.host
        http10 = ex.http10 = head[head.find(b"\r\n") - 1] == 48  # "HTTP/1.0"
        if req.rare or http10 or self._client_eof:  # else: HTTP/1.1, no Connection header
            ex.keep_alive = request_keeps_alive(
                http10=http10,
                conn_close=req.conn_close,
                conn_keep_alive=req.conn_keep_alive,
                client_eof=self._client_eof,
            )
        has_body = req.chunked or req.content_length > 0
        ex.replayable = replayable(method, has_body)
        ex.upgrade = upgrade
        self._tries.restart()
        self._set_deadline(INF, DeadlineKind.NONE)
        self._in = HOLD
        self._held = rest
        if method == b"CONNECT":
            self._reject(405, "edge: CONNECT is not supported\n")
            return
        if has_body:
            self._frame_body(req)
        if self._router.force_https and self._client is not None and not self._client.tls:
            self._redirect_to_https(request_target(head))
            return
        plain = self._plain_hints
        if req.rare or plain is None or plain.host != req.host:
            plain = self._route_hints(req)
        ex.hints = plain
        ex.raw_head = head
        self._keep_request(head, plain, has_body)
        self._choose()
        if self._held or self._reading_paused:
            self._update_reading()

    def _frame_body(self, req: RequestHeadScan) -> None:
        if req.chunked:
            self._ex.body_mode = CHUNKED_BODY
            self._chunks.reset()
        else:
            self._ex.body_mode = LENGTH_BODY
            self._ex.body_left = req.content_length

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
        if self._ex.body_mode == LENGTH_BODY:
            end = min(self._ex.body_left, len(data))
            self._ex.body_left -= end
            done = self._ex.body_left == 0
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
        if self._ex.body_buf is not None:
            self._keep_body(chunk)
        if self._conn is not None:
            self._ex.sent += len(chunk)
            self._conn.write(chunk)
        if done:
            if not self._head.message_done:
                self._bad_body()
                return
            self._ex.req_done = True
            if self._ex.phase is Phase.SENDING:
                self._ex.advance(Phase.AWAITING_HEAD)
            self._in = HOLD
            if end < len(data):
                self._hold(data[end:])
            if self._ex.replay_waiting:
                self._body_arrived()

    # -- routing and connecting ------------------------------------------------------------

    def _choose(self) -> None:
        ex = self._ex
        if ex.phase is not Phase.ROUTING:
            ex.advance(Phase.ROUTING)
        choice = self._tries.choose(ex.hints)
        ex.app = choice.app
        if isinstance(choice, NoUpstream):
            self._no_upstream(choice)
            return
        ex.advance(Phase.CONNECTING)
        ex.fresh_only = False
        ex.sent = ex.back = 0
        ex.chosen_at = self._clock()
        pop = choice.pop or self._router.pop
        if pop != ex.fwd_pop:
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
        ex = self._ex
        ex.fwd_pop = pop
        self._tails = self._l.tails(pop)
        assert self._rewriter is not None
        ex.fwd_head = self._rewriter.head_for_machine(
            ex.raw_head, self._head, ex.upgrade, ex.http10, pop
        )

    def _no_upstream(self, choice: NoUpstream) -> None:
        if self._ex.flow is not None and self._replay_unreachable("no_candidate", choice):
            return
        self._tails = self._l.tails(choice.pop or self._router.pop)
        tries = self._tries
        if tries.wait_or_refuse(choice, self._clock(), self._dequeued):
            self._ex.advance(Phase.QUEUED)  # every machine is busy: wait, up to a limit
            self._set_deadline(tries.queue_deadline, DeadlineKind.QUEUE)
            return
        self._refuse(choice)

    def _dequeued(self) -> None:
        self._tries.woken()
        if self._in is not CLOSED:
            self._set_deadline(INF, DeadlineKind.NONE)
            self._choose()

    def _queue_timed_out(self, now: float) -> None:
        if self._replay_timed_out(now):
            return
        choice = self._tries.refusal
        if self._tries.queue is None or choice is None:
            return
        self._tries.leave_queue()
        self._refuse(choice)

    def _refuse(self, choice: NoUpstream) -> None:
        """Answer a request no machine can take, naming the last failed connect if any."""
        text, extra = no_upstream_answer(choice, self._head.host)
        cause = self._tries.last_cause
        if cause:
            text += f"edge: the last connect failed: {cause} "
            text += f"({connect_failure_code(cause)})\n"
        self._answer(choice.status, text, extra, choice.code)

    def _connect(self) -> None:
        self._timer = None
        lease = self._tries.lease
        if lease is None:
            return
        up = lease.upstream
        ex = self._ex
        conn = None if ex.fresh_only or up.faults else self._l.pool.take(up.host, up.port)
        if conn is not None:
            self._attach(conn)
            return
        ex.connect_started = self._clock()
        self._l.pool.connect(
            up.host,
            up.port,
            up.connect_timeout,
            lambda conn, reason: self._connected(conn, reason, lease),
            up.faults,
        )

    def _connected(self, conn: UpstreamConnection | None, reason: str, lease: Lease) -> None:
        if lease is not self._tries.lease or self._in is CLOSED:
            if conn is not None:
                self._l.pool.put(conn)  # nobody waits for it any more: keep it for later
            return
        if conn is not None:
            self._tries.connected(self._clock() - self._ex.connect_started)
            self._attach(conn)
            return
        verdict = self._tries.failed(reason)
        if verdict is ConnectVerdict.EDGE_EXHAUSTED:  # every other machine would fail too
            self._answer(503, "edge: the edge is out of file descriptors, try again\n")
        elif verdict is ConnectVerdict.RETRY:
            self._choose()
        elif self._ex.flow is not None and self._replay_unreachable("retries_exhausted", None):
            return
        else:
            up = lease.upstream
            text = f"edge: could not reach a machine of app {up.app!r} ({reason})\n"
            self._answer(502, text, b"", connect_failure_code(reason, self._tries.tries))

    def _attach(self, conn: UpstreamConnection) -> None:
        lease = self._tries.lease
        assert lease is not None
        up = lease.upstream
        ex = self._ex
        self._conn = conn
        ex.reused = conn.served > 0
        delay = up.upstream_delay / 2
        if self._requests == 0:
            delay += up.client_delay  # the client's connection setup, paid once
        conn.begin(self, ex.head_request, delay)
        if self._client_full:
            conn.pause_reading()
        head = ex.fwd_head
        ex.sent = len(head)
        self._set_deadline(self._clock() + up.timeout, DeadlineKind.RESPONSE)
        conn.write(head)
        if ex.resend is not None:  # a replayed request: its body was kept
            ex.sent += len(ex.resend)
            conn.write(ex.resend)
        if ex.body_mode == NO_BODY:
            ex.req_done = True
        if ex.req_done:
            ex.advance(Phase.AWAITING_HEAD)
            return
        ex.advance(Phase.SENDING)
        self._in = BODY
        held, self._held = self._held, b""
        if held:
            self._forward_body(held)
        if self._reading_paused:
            self._update_reading()

    # -- the machine's answer: response_head, _body, _end in http_response.ResponseSide --

    def upstream_lost(self, conn: UpstreamConnection, response_started: bool) -> None:
        self._conn = None
        ex = self._ex
        lease = self._tries.lease
        if lease is None:
            self.close()
            return
        verdict = after_upstream_lost(
            answering=ex.resp_started or self._in is TUNNEL,
            replayable=ex.replayable,
            bytes_came=response_started,
            reused=ex.reused,
            fresh_only=ex.fresh_only,
            tries=self._tries.tries,
            retries=lease.upstream.retries,
        )
        if verdict is LostVerdict.CUT_SHORT:
            self._release()
            self.close()  # a response cut short: the client must see it end
        elif verdict is LostVerdict.RESEND_FRESH:
            ex.fresh_only = True  # a pooled connection the machine had closed: not its fault
            ex.advance(Phase.CONNECTING)
            self._connect()
        elif verdict is LostVerdict.RETRY_ELSEWHERE:
            self._tries.lost("reset", ex.sent, ex.back)
            self._choose()
        else:
            text = "edge: the machine closed the connection before answering\n"
            self._fail(502, text, code=ErrorCode.PU02)

    def upstream_writable(self, writable: bool) -> None:
        self._up_full = not writable
        self._update_reading()

    def _start_tunnel(self) -> None:
        self._ex.advance(Phase.TUNNEL)
        self._in = TUNNEL
        held, self._held = self._held, b""
        if held and self._conn is not None:
            self._ex.sent += len(held)
            self._conn.write(held)
        self._update_reading()

    # -- failures ---------------------------------------------------------------------------

    def _fail(
        self, status: int, text: str, now: float | None = None, code: ErrorCode | None = None
    ) -> None:
        """The machine failed this request before answering: say so, then close."""
        lease = self._tries.lease
        if lease is not None:
            elapsed = (self._clock() if now is None else now) - self._ex.chosen_at
            self._router.responded(lease.upstream, status, elapsed)
            self._release()
        self._ex.keep_alive = False
        self._answer(status, text, b"", code)

    def _bad_body(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.detach()
        self._release()
        if self._ex.resp_started:
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
    if tracker is None:  # its deadline sweep must read the relay's clock
        tracker = HttpConnectionTracker(loop, None if clock is None else DeadlineSweep(loop, clock))
    listener = HttpListener(router, settings, pool, loop, tracker, clock)
    if accept_proxy_proto:
        return accept_proxy_header(lambda client: HttpProxyProtocol(listener, client))
    return lambda: HttpProxyProtocol(listener)
