"""One request and its answer: the ``Exchange`` of the HTTP relay.

A client connection (``http_client_side.ClientSide``) reads requests one at a time;
each gets a new ``Exchange`` the moment the previous one ends, so what one request
was (its method, framing, route, how far its answer got, its replay) can never leak
into the next. Its ``phase`` moves only through ``advance``, along the table of
``edge.core.phases``; the attempts at reaching a machine and the lease of its load
slot are the connection's ``Attempts`` (``edge.dataplane.attempts``), restarted for
each request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from edge.core.phases import Phase, check_transition
from edge.dataplane.contract import RouteHints, Upstream

if TYPE_CHECKING:
    from edge.core.replay import ReplayInstruction
    from edge.dataplane.http_heads_extra import ReplaySignal
    from edge.dataplane.http_replay import ReplayFlow

# How the request body is framed.
NO_BODY: Final = 0
LENGTH_BODY: Final = 1
CHUNKED_BODY: Final = 2


class Exchange:
    """What one request is and how far it got (see the module docstring)."""

    __slots__ = (
        "app",
        "back",
        "body_buf",
        "body_left",
        "body_mode",
        "body_size",
        "cache_bypass",
        "chosen_at",
        "close_after",
        "connect_started",
        "flow",
        "fresh_only",
        "fwd_head",
        "fwd_pop",
        "head_request",
        "hints",
        "http10",
        "keep_alive",
        "orig_head",
        "orig_hints",
        "pending",
        "phase",
        "raw_head",
        "replay_waiting",
        "replayable",
        "req_done",
        "resend",
        "resp_started",
        "reused",
        "sent",
        "signal",
        "signal_body",
        "upgrade",
    )

    def __init__(self) -> None:
        self.phase = Phase.HEAD
        # The request.
        self.head_request = False  # HEAD: the answer has no body
        self.http10 = False
        self.keep_alive = True  # the client's connection may carry another request
        self.upgrade = False  # it asks to switch protocols (a tunnel after a 101)
        self.replayable = False  # idempotent and bodiless (relay_decisions.replayable)
        self.body_mode = NO_BODY
        self.body_left = 0  # Content-Length bytes still to come
        self.req_done = False  # all of it has been read (and sent, once attached)
        # Its route.
        self.app: str | None = None  # the app it was routed to
        self.hints: RouteHints | None = None
        self.raw_head = b""  # as the client sent it (edited by a replay)
        self.fwd_head = b""  # as sent to the machine
        self.fwd_pop = ""  # the PoP fwd_head names in Fly-Region
        # The machine's side.
        self.reused = False  # on a pooled connection that served earlier requests
        self.fresh_only = False  # resent on a new connection after a reused one failed
        self.chosen_at = 0.0  # when the machine was chosen (clock seconds)
        self.connect_started = 0.0
        self.resp_started = False  # the client has had part of the answer
        self.close_after = False  # the client's connection closes after this answer
        self.sent = 0  # bytes to the machine, for ListenerRouter.transferred
        self.back = 0  # bytes to the client
        # fly-replay (http_replay.ReplaySide).
        self.orig_head = b""  # the request head as the client sent it
        self.orig_hints: RouteHints | None = None
        self.body_buf: list[bytes] | None = None  # the body kept for a replay
        self.body_size = 0
        self.signal: ReplaySignal | None = None  # a replay answer being read
        self.signal_body = bytearray()
        self.flow: ReplayFlow | None = None  # the replays of this request so far
        self.resend: bytes | None = None  # the kept body, sent after a replayed head
        self.cache_bypass = False
        self.replay_waiting = False  # replay once the rest of the body has arrived
        self.pending: tuple[Upstream, ReplayInstruction] | None = None

    def advance(self, to: Phase) -> None:
        """The one place an exchange's phase changes."""
        check_transition(self.phase, to)
        self.phase = to

    def end(self) -> None:
        """Over, from whatever phase it was in (DONE is every phase's way out)."""
        if self.phase is not Phase.DONE:
            check_transition(self.phase, Phase.DONE)
            self.phase = Phase.DONE
