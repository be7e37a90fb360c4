"""The phases of one exchange with a machine, and which may follow which (h11-style).

An HTTP request and a raw TCP connection go through the same lifecycle: the HTTP
relay's ``Exchange`` uses every phase, the raw TCP relay the subset ROUTING, QUEUED,
CONNECTING, TUNNEL, DONE. The table is the whole truth: a move it does not list is a
bug in the relay, raised at once (``IllegalTransition``) instead of running on in a
state nobody designed.
"""

from __future__ import annotations

import enum
from typing import Final


class Phase(enum.Enum):
    HEAD = "head"  # reading the request head (HTTP)
    ROUTING = "routing"  # asking the router for a machine
    QUEUED = "queued"  # every machine at its hard limit: waiting for a free one
    CONNECTING = "connecting"  # a machine is chosen; its connection is being opened
    SENDING = "sending"  # the head went to the machine; the body is still streaming
    AWAITING_HEAD = "awaiting_head"  # the request is sent; no response head yet
    REPLAYING = "replaying"  # the machine answered fly-replay: held, then routed again
    STREAMING = "streaming"  # the response is flowing to the client
    TUNNEL = "tunnel"  # raw bytes both ways (raw TCP, or HTTP after a 101)
    DONE = "done"  # over: answered, ended, or the client is gone

    def __init__(self, value: str) -> None:
        # A bit per phase, and the bits of the phases that may follow (set below from
        # TRANSITIONS): checking a move is two attribute reads and an AND, no hashing.
        self.bit = 1 << len(self.__class__.__members__)
        self.next_bits = 0


_ATTACHED: Final = frozenset({Phase.SENDING, Phase.AWAITING_HEAD})
_RETRY: Final = frozenset({Phase.ROUTING, Phase.CONNECTING})

TRANSITIONS: Final[dict[Phase, frozenset[Phase]]] = {
    Phase.HEAD: frozenset({Phase.ROUTING, Phase.DONE}),
    Phase.ROUTING: frozenset({Phase.QUEUED, Phase.CONNECTING, Phase.DONE}) | _ATTACHED,
    Phase.QUEUED: frozenset({Phase.ROUTING, Phase.DONE}),
    Phase.CONNECTING: frozenset({Phase.ROUTING, Phase.TUNNEL, Phase.DONE}) | _ATTACHED,
    Phase.SENDING: frozenset({Phase.AWAITING_HEAD, Phase.STREAMING, Phase.REPLAYING})
    | _RETRY
    | {Phase.TUNNEL, Phase.DONE},
    Phase.AWAITING_HEAD: frozenset({Phase.STREAMING, Phase.TUNNEL, Phase.REPLAYING})
    | _RETRY
    | {Phase.DONE},
    Phase.REPLAYING: frozenset({Phase.ROUTING, Phase.DONE}),
    Phase.STREAMING: frozenset({Phase.DONE}),
    Phase.TUNNEL: frozenset({Phase.DONE}),
    Phase.DONE: frozenset(),
}

# A request with a body in flight can be answered before it is all sent: SENDING may
# go to STREAMING (or to TUNNEL on a 101). CONNECTING -> TUNNEL is the raw TCP relay's
# only way in. ROUTING and CONNECTING after SENDING/AWAITING_HEAD are the replays of a
# request whose machine connection was lost (elsewhere, or fresh on the same machine).


for _phase, _next in TRANSITIONS.items():
    _phase.next_bits = sum(following.bit for following in _next)


class IllegalTransition(Exception):
    """A relay tried a move the table does not allow (a bug, never the client's doing)."""


def check_transition(current: Phase, to: Phase) -> None:
    if not current.next_bits & to.bit:
        raise IllegalTransition(f"{current.value} -> {to.value} is not a transition")


def is_waiting(phase: Phase) -> bool:
    """Waiting on the edge's side (no machine yet): nothing reached a machine."""
    return phase in (Phase.ROUTING, Phase.QUEUED, Phase.CONNECTING)
