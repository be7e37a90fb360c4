"""Raw TCP relay (ports with no handlers, or only ``tls``/``proxy_proto``): client <-> machine.

One ``TcpRelay`` per accepted connection is both the client side's protocol and the
controller: it asks the listener's router for a machine once, connects (trying other
machines after a failed connect, which is safe because nothing has reached a machine
yet), then relays bytes both ways. Choosing, the capacity queue, retries and the load
slot's lease are the ``Attempts`` the HTTP relay uses too (``edge.dataplane.attempts``);
the connection walks the phases ROUTING -> QUEUED -> CONNECTING -> TUNNEL -> DONE of
``edge.core.phases``. The relay path is plain ``asyncio.Protocol`` callbacks:
each side's ``data_received`` writes straight into the other side's transport, and a
transport that fills up pauses reading on the side that feeds it (the two ends and
their reasons to pause are ``edge.dataplane.tcp_sides``).

Simulated latency (``Upstream.client_delay``/``upstream_delay``, round trips): connection
setup costs one client RTT plus one machine RTT, and every chunk afterwards is delayed by
the one-way time of the whole path, (client RTT + machine RTT) / 2, in both directions,
by a ``DelayLine`` per direction (``edge.dataplane.delay_line``), which also carries the
half-close and the close. With both at zero no line and no timer is ever created.

Waits are no timer either: the relay sets its one ``deadline`` with its kind (``CONNECT``
while connecting, ``QUEUE`` while waiting for a free machine, ``HOLD`` while a refused
connection is kept open before closing) and the loop's one ``DeadlineSweep``
(``edge.dataplane.deadlines``) calls ``deadline_passed`` once it is over; what passing it
means is ``relay_decisions.on_deadline``. Only a simulated setup delay (latency > 0) is
a timer, one per attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from edge.core.error_codes import ErrorCode, connect_failure_code
from edge.core.phases import Phase, check_transition
from edge.core.relay_decisions import ConnectVerdict, DeadlineAction, DeadlineKind, on_deadline
from edge.dataplane.attempts import Attempts
from edge.dataplane.contract import (
    ClientInfo,
    EdgeAnswer,
    ListenerRouter,
    NoUpstream,
    Upstream,
    connect_failure,
)
from edge.dataplane.deadlines import INF, DeadlineSweep, sweep_for
from edge.dataplane.delay_line import BUFFER_LIMIT
from edge.dataplane.proxy_protocol import accept_proxy_header, build_header
from edge.dataplane.tcp_sides import EARLY_FULL as _EARLY_FULL
from edge.dataplane.tcp_sides import MachineSide as _MachineSide
from edge.dataplane.tcp_sides import Side as _Side
from edge.dataplane.tcp_sides import delay_line_between as _line
from edge.dataplane.tcp_sides import discard as _discard
from edge.dataplane.tls import client_info_from_transport
from edge.dataplane.toxics import open_machine_connection
from edge.dataplane.tracker import ConnectionTracker

_Connecting = asyncio.Future[None]
_FINISHED: Final = object()  # TcpRelay._opened once the router heard ``closed``


class TcpRelay(_Side):
    """The client side of one relayed connection, and the controller of its machine side."""

    __slots__ = (
        "_attempt_started",
        "_client",
        "_connecting",
        "_deadlines",
        "_early",
        "_early_size",
        "_loop",
        "_opened",
        "_pending",
        "_router",
        "_timed_out",
        "_timer",
        "_tracker",
        "_tries",
        "deadline",
        "deadline_kind",
        "phase",
    )

    def __init__(
        self,
        router: ListenerRouter,
        loop: asyncio.AbstractEventLoop,
        tracker: ConnectionTracker[TcpRelay] | None = None,
        client: ClientInfo | None = None,
        deadlines: DeadlineSweep | None = None,
    ) -> None:
        super().__init__()
        self._router = router
        self._loop = loop
        self._tracker = tracker
        self._deadlines = deadlines if deadlines is not None else sweep_for(loop)
        self.deadline = INF  # when the current wait (connect, queue, hold) is over
        self.deadline_kind = DeadlineKind.NONE
        self._client = client  # given when a PROXY header told us who the client is
        self.phase = Phase.ROUTING
        # Choosing, queueing, retrying and the lease of the machine's load slot.
        self._tries = Attempts(router, client)
        self._pending: _MachineSide | None = None  # the machine side being connected
        self._connecting: _Connecting | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._early: list[bytes] = []
        self._early_size = 0
        self._attempt_started = 0.0
        self._timed_out = False
        self._opened: object = None  # the router's token for this client connection
        self.forward = self._buffer_early

    # -- client side protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        if self._client is None:
            self._client = client_info_from_transport(transport)
        self._tries.client = self._client
        self._opened = self._router.opened(self._client)
        if self._tracker is not None:
            self._tracker.add(self)
        self._choose()

    def eof_received(self) -> bool:
        return self.side_eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._clear_deadline()
        self._tries.leave_queue()
        if self._connecting is not None and self._pending is not None:
            self._pending = None
            self._clear_deadline()
            self._connecting.cancel()
        self.side_lost(self)

    def abort(self) -> None:
        """Drop both connections now (shutdown after the drain timeout)."""
        for side in (self, self.peer):
            if side is not None and side.transport is not None:
                side.transport.abort()

    # -- choosing and connecting ----------------------------------------------------

    def _advance(self, to: Phase) -> None:
        """The one place the connection's phase changes (``edge.core.phases``)."""
        check_transition(self.phase, to)
        self.phase = to

    def _choose(self) -> None:
        if self.phase is not Phase.ROUTING:
            self._advance(Phase.ROUTING)
        choice = self._tries.choose(None)
        if isinstance(choice, NoUpstream):
            self._no_upstream(choice)
            return
        self._advance(Phase.CONNECTING)
        delay = choice.upstream_delay
        if self._tries.count == 1:
            delay += choice.client_delay  # the client's handshake happens once
        now = self._loop.time()
        # The connect time reported includes the simulated machine round trip.
        self._attempt_started = now + delay - choice.upstream_delay
        if delay > 0:
            self._timer = self._loop.call_later(delay, self._connect)
        else:
            self._connect()

    def _no_upstream(self, choice: NoUpstream) -> None:
        """Nobody can take the connection now: wait for a free machine, or refuse.

        The queue's deadline counts from the first wait, so being woken and finding the
        slot taken again does not extend it. Past it the client is closed.
        """
        if self._tries.wait_or_refuse(choice, self._deadlines.clock(), self._woken):
            self._advance(Phase.QUEUED)
            self._set_deadline(self._tries.queue_deadline, DeadlineKind.QUEUE)
        elif choice.queue is not None:
            self._queue_full()
        else:
            self._refused(choice.code, choice.reason, choice.app, choice.pop)
            self._hold(choice.wait)

    def _hold(self, wait: float) -> None:
        """Nobody can take the connection: keep it open ``wait`` seconds, then close.

        What the client sends meanwhile goes to the early buffer, whose limit pauses
        reading (pausing here would be undone: uvloop starts reading after connection_made).
        """
        assert self.transport is not None
        self._advance(Phase.DONE)
        if wait > 0:
            self._set_deadline(self._deadlines.clock() + wait, DeadlineKind.HOLD)
        else:
            self.transport.close()

    def _woken(self) -> None:
        # Called by the queue as a slot is released: choose at once, so a newcomer
        # cannot take the slot first.
        self._tries.woken()
        self._clear_deadline()
        if not self.lost:
            self._choose()

    def _queue_timed_out(self) -> None:
        self._tries.leave_queue()
        self._queue_full()

    def _queue_full(self) -> None:
        choice = self._tries.refusal
        if choice is None:
            self._refused(ErrorCode.PL01, "every machine stayed at its hard limit")
        else:
            self._refused(ErrorCode.PL01, choice.reason, choice.app, choice.pop)
        self._advance(Phase.DONE)
        self._close_client()

    def _refused(
        self, code: ErrorCode | None, reason: str, app: str | None = None, pop: str = ""
    ) -> None:
        """The edge closes this connection itself: say why (the router logs and counts it)."""
        if self._client is not None and not self.lost:
            self._router.answered(self._client, EdgeAnswer(0, code, reason, app, pop))

    def _close_client(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _connect(self) -> None:
        lease = self._tries.lease
        assert lease is not None
        upstream = lease.upstream
        self._timed_out = False
        machine = self._pending = _MachineSide(self)
        self._set_deadline(self._deadlines.clock() + upstream.connect_timeout, DeadlineKind.CONNECT)
        # create_connection is a coroutine on both loops: this one task per connection
        # setup is the relay's only task. It is referenced here until done (an unreferenced
        # pending task can be collected mid-connect, which crashes uvloop).
        connecting = self._loop.create_task(
            open_machine_connection(
                self._loop, machine, upstream.host, upstream.port, upstream.faults
            )
        )
        self._connecting = connecting
        connecting.add_done_callback(self._connect_done)

    def _set_deadline(self, at: float, kind: DeadlineKind) -> None:
        """Time the current wait on the loop's sweep (connect, queue, hold): one at a time."""
        self.deadline = at
        self.deadline_kind = kind
        self._deadlines.watch(self)

    def _clear_deadline(self) -> None:
        self.deadline = INF
        self.deadline_kind = DeadlineKind.NONE
        self._deadlines.unwatch(self)

    def deadline_passed(self, now: float) -> None:
        """The sweep found the current wait over: act on its kind."""
        kind = self.deadline_kind
        self._clear_deadline()
        action = on_deadline(kind, head_begun=False)
        if action is DeadlineAction.CONNECT_TIMEOUT:
            if self._connecting is not None and self._pending is not None:
                self._timed_out = True  # give up on this machine (_connect_done decides)
                self._pending = None
                self._connecting.cancel()
        elif action is DeadlineAction.REFUSE_QUEUED:
            self._queue_timed_out()
        elif action is DeadlineAction.CLOSE:
            self._close_client()  # the end of a refused connection's hold

    def _connect_done(self, connecting: _Connecting) -> None:
        self._connecting = None
        if self.peer is not None:
            self._maybe_finish()  # connected (machine_made did the work); maybe over already
            return
        self._pending = None
        self._clear_deadline()
        lease = self._tries.lease
        assert lease is not None
        upstream = lease.upstream
        exc = None if connecting.cancelled() else connecting.exception()
        if exc is not None:
            reason = connect_failure(exc)
        else:
            # Cancelled, or it connected after we gave up on it (machine_made closed it).
            reason = "timeout" if self._timed_out else "cancelled"
        verdict = self._tries.failed(reason)
        if self.lost:
            self._maybe_finish()
        elif verdict is ConnectVerdict.RETRY:
            self._choose()
        elif self.transport is not None:
            code = connect_failure_code(reason, self._tries.count)
            text = f"could not reach a machine of app {upstream.app!r} ({reason})"
            self._refused(code, text, upstream.app, upstream.pop)
            self._advance(Phase.DONE)
            self.transport.close()

    def machine_made(self, machine: _MachineSide, transport: asyncio.Transport) -> None:
        if machine is not self._pending or self.lost:
            transport.close()  # a connect we gave up on (timeout, client gone) completed
            return
        self._pending = None
        self._clear_deadline()
        lease = self._tries.lease
        assert lease is not None and self.transport is not None and self._client is not None
        upstream = lease.upstream
        machine.transport = transport
        self._tries.connected(self._loop.time() - self._attempt_started)
        self._advance(Phase.TUNNEL)
        self.peer, machine.peer = machine, self
        self._wire(machine, transport, upstream)
        first = self._early
        self._early = []
        if upstream.send_proxy_proto is not None:
            first.insert(0, build_header(upstream.send_proxy_proto, self._client))
        if first:
            transport.writelines(first)
        self.resume(_EARLY_FULL)
        if self.eof:
            machine.send_eof()

    def _wire(self, machine: _MachineSide, transport: asyncio.Transport, up: Upstream) -> None:
        assert self.transport is not None
        one_way = (up.client_delay + up.upstream_delay) / 2
        if one_way > 0:
            self.line = _line(self._loop, one_way, self, machine)
            machine.line = _line(self._loop, one_way, machine, self)
            self.forward = self.line.push
            machine.forward = machine.line.push
        else:
            self.forward = transport.write
            machine.forward = self.transport.write

    def _buffer_early(self, data: bytes) -> None:
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > BUFFER_LIMIT:
            self.pause(_EARLY_FULL)

    # -- both sides -----------------------------------------------------------------

    def side_eof(self, side: _Side) -> bool:
        side.eof = True
        peer = side.peer
        if peer is None:
            return True  # the client half-closed before the machine connected: sent later
        if peer.eof:
            # Both directions are finished: closing sends the FIN a shutdown would have.
            side.close()
            peer.close()
        elif side.line is not None:
            side.line.mark(peer.send_eof)
        else:
            peer.send_eof()
        return True  # keep the transport open: the other direction may still be sending

    def side_lost(self, side: _Side) -> None:
        side.lost = True
        peer = side.peer
        if peer is not None:
            if peer.line is not None:
                peer.line.stop()  # nothing can be delivered to this side any more
            peer.forward = _discard
            if not peer.lost:
                peer.close()
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        machine = self.peer
        if self._opened is _FINISHED or not self.lost or self._connecting is not None:
            return
        if machine is not None and not machine.lost:
            return
        if self.phase is not Phase.DONE:
            self._advance(Phase.DONE)  # every phase may end here: the client is gone
        self._cancel_timer()
        if machine is not None:
            self._tries.release(self.received, machine.received)
        else:
            self._tries.release()
        opened, self._opened = self._opened, _FINISHED
        self._router.closed(opened)
        if self._tracker is not None:
            self._tracker.discard(self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def make_tcp_protocol_factory(
    router: ListenerRouter,
    loop: asyncio.AbstractEventLoop,
    tracker: ConnectionTracker[TcpRelay] | None = None,
    accept_proxy_proto: bool = False,
) -> Callable[[], asyncio.Protocol]:
    """The ``protocol_factory`` for a raw TCP (or TLS-terminated) listener.

    With ``accept_proxy_proto`` each connection must start with a PROXY header, and the
    address in it is the client the router sees (``ClientInfo.proxied``).
    """
    deadlines = sweep_for(loop)
    if accept_proxy_proto:
        return accept_proxy_header(
            lambda client: TcpRelay(router, loop, tracker, client, deadlines), sweep=deadlines
        )
    return lambda: TcpRelay(router, loop, tracker, None, deadlines)
