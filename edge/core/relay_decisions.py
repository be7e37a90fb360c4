"""What the relays decide, as plain functions over values (tested as tables).

Nothing here touches a socket, a timer or the loop: the HTTP and TCP relays ask,
and do what the answer says.
"""

from __future__ import annotations

import enum


class DeadlineKind(enum.Enum):
    """What a pending deadline is waiting for: its kind says what passing it means."""

    NONE = "none"  # nothing is timed
    IDLE = "idle"  # a keep-alive connection between requests
    HEAD = "head"  # the rest of a request head
    QUEUE = "queue"  # a free machine (every one at its hard limit)
    CONNECT = "connect"  # the TCP connection to a machine
    RESPONSE = "response"  # the machine's response head
    BODY = "body"  # the rest of a request body the replay needs
    REPLAY = "replay"  # a fly-replay target to be reached (then its fallback)
    HOLD = "hold"  # a refused raw TCP connection held open a while before it is closed


IDEMPOTENT_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


def replayable(method: bytes, has_body: bool) -> bool:
    """May a request whose bytes reached a machine be sent again (elsewhere, or fresh)?
    Only an idempotent one with no body: nothing of it was kept that could be lost."""
    return method in IDEMPOTENT_METHODS and not has_body


def request_keeps_alive(
    *, http10: bool, conn_close: bool, conn_keep_alive: bool, client_eof: bool
) -> bool:
    """Whether the client's connection stays open after this request (RFC 9112 §9.3):
    HTTP/1.1 unless ``Connection: close``, HTTP/1.0 only with ``keep-alive``; never once
    the client has half-closed."""
    if client_eof:
        return False
    return conn_keep_alive and not conn_close if http10 else not conn_close


# -- after a connect failed ---------------------------------------------------------------


class ConnectVerdict(enum.Enum):
    RETRY = "retry"  # choose another machine (this one excluded) and connect again
    EDGE_EXHAUSTED = "edge_exhausted"  # the edge is out of descriptors: 503, no retry
    GIVE_UP = "give_up"  # 502 (HTTP) or close (TCP), with the connect failure's code


def after_connect_failure(reason: str, tries: int, retries: int) -> ConnectVerdict:
    """What to do after connecting to a machine failed for ``reason`` (the contract's
    name: refused, timeout, reset, unreachable, exhausted, cancelled), the ``tries``-th
    try for the current target, when the service allows ``retries`` more machines.

    Retrying is always safe here: nothing of the request has reached a machine.
    Out of descriptors, every other machine would fail the same way; ``cancelled`` (the
    pool was closed at shutdown) is not the machine's doing and is not retried.
    """
    if reason == "exhausted":
        return ConnectVerdict.EDGE_EXHAUSTED
    if reason != "cancelled" and tries <= retries:
        return ConnectVerdict.RETRY
    return ConnectVerdict.GIVE_UP


def held_against_machine(reason: str) -> bool:
    """Is a failed connect reported to the router (passive health, metrics)?"""
    return reason != "cancelled"


# -- after the machine's connection was lost mid-exchange ---------------------------------


class LostVerdict(enum.Enum):
    CUT_SHORT = "cut_short"  # the client already has part of an answer: close it
    RESEND_FRESH = "resend_fresh"  # the same machine, on a new connection
    RETRY_ELSEWHERE = "retry_elsewhere"  # another machine (this one excluded)
    ANSWER_502 = "answer_502"  # PU02: the machine closed before answering


def after_upstream_lost(
    *,
    answering: bool,
    replayable: bool,
    bytes_came: bool,
    reused: bool,
    fresh_only: bool,
    tries: int,
    retries: int,
) -> LostVerdict:
    """The machine's connection closed before the exchange ended.

    ``answering``: the client has had part of the answer (or it is a tunnel);
    ``bytes_came``: the machine sent any byte of an answer on this connection;
    ``reused``: the connection came from the pool (served earlier requests);
    ``fresh_only``: this try is already the fresh resend of a reused connection.

    A pooled connection the machine had closed is not the machine's fault: resend once
    on a fresh one. Otherwise only an idempotent, bodiless request that got no byte
    back may go to another machine.
    """
    if answering:
        return LostVerdict.CUT_SHORT
    if not replayable or bytes_came:
        return LostVerdict.ANSWER_502
    if reused and not fresh_only:
        return LostVerdict.RESEND_FRESH
    if tries <= retries:
        return LostVerdict.RETRY_ELSEWHERE
    return LostVerdict.ANSWER_502


# -- how a response ends ------------------------------------------------------------------


class Ending(enum.Enum):
    UPGRADE = "upgrade"  # 101 to an upgrade request: a tunnel follows
    CLOSE = "close"  # Connection: close, and the client connection closes after it
    KEEP_ALIVE = "keep_alive"  # HTTP/1.1: the next request may follow
    KEEP_ALIVE_HTTP10 = "keep_alive_http10"  # HTTP/1.0 client: says Connection: keep-alive


def response_ending(
    *,
    status: int,
    upgrade_asked: bool,
    until_close: bool,
    keep_alive: bool,
    http10: bool,
    draining: bool,
) -> Ending:
    """How the response to the client ends. ``until_close``: the machine's body has no
    length (it ends when the machine closes, so the client's connection must close too);
    ``keep_alive``: the client's request allows it; ``draining``: the edge is shutting
    down. An upgrade request that is not answered 101 closes: its framing is unknown."""
    if status == 101 and upgrade_asked:
        return Ending.UPGRADE
    if until_close or not keep_alive or upgrade_asked or draining:
        return Ending.CLOSE
    return Ending.KEEP_ALIVE_HTTP10 if http10 else Ending.KEEP_ALIVE


def answer_closes(*, keep_alive: bool, upgrade_asked: bool, body_unread: bool) -> bool:
    """Does the client's connection close after an answer the edge makes itself? Yes if
    the client asked, if it asked to upgrade, or if part of the request body is unread
    (what follows could not be told apart from a next request)."""
    return not keep_alive or upgrade_asked or body_unread


# -- when no machine can take it ----------------------------------------------------------


class NoCandidateVerdict(enum.Enum):
    WAIT = "wait"  # every machine is at its hard limit: wait in the capacity queue
    REFUSE = "refuse"  # answer now (HTTP) or hold and close (TCP)


def queue_until(first_deadline: float, now: float, timeout: float) -> float:
    """When waiting for a free machine ends: counted from the first wait of the request
    or connection (0.0: it has not waited yet), so being woken and finding the slot
    taken again never extends it."""
    return first_deadline if first_deadline else now + timeout


def after_no_candidate(*, can_queue: bool, now: float, deadline: float) -> NoCandidateVerdict:
    """``can_queue``: the refusal came with a capacity queue; ``deadline``: when waiting
    in it ends (``queue_until``)."""
    if can_queue and now < deadline:
        return NoCandidateVerdict.WAIT
    return NoCandidateVerdict.REFUSE


# -- when a deadline passes ---------------------------------------------------------------


class DeadlineAction(enum.Enum):
    IGNORE = "ignore"  # nothing was timed any more
    CLOSE = "close"  # close quietly: nothing is lost
    ANSWER_408_HEAD = "answer_408_head"  # the request head did not arrive in time
    ANSWER_408_BODY = "answer_408_body"  # the body a replay needs did not arrive
    REFUSE_QUEUED = "refuse_queued"  # no machine got free in time (503, PL0x)
    CONNECT_TIMEOUT = "connect_timeout"  # a connect failure with reason "timeout"
    ANSWER_504 = "answer_504"  # the machine did not answer in time (PT01)
    REPLAY_TIMEOUT = "replay_timeout"  # the replay target was not reached: fall back


_ON_DEADLINE: dict[DeadlineKind, DeadlineAction] = {
    DeadlineKind.NONE: DeadlineAction.IGNORE,
    DeadlineKind.IDLE: DeadlineAction.CLOSE,
    DeadlineKind.QUEUE: DeadlineAction.REFUSE_QUEUED,
    DeadlineKind.CONNECT: DeadlineAction.CONNECT_TIMEOUT,
    DeadlineKind.RESPONSE: DeadlineAction.ANSWER_504,
    DeadlineKind.BODY: DeadlineAction.ANSWER_408_BODY,
    DeadlineKind.REPLAY: DeadlineAction.REPLAY_TIMEOUT,
    DeadlineKind.HOLD: DeadlineAction.CLOSE,
}


def on_deadline(kind: DeadlineKind, *, head_begun: bool) -> DeadlineAction:
    """What a passed deadline of ``kind`` means. A head deadline with nothing of a head
    read yet is a client that never sent a request: close it without an answer."""
    if kind is DeadlineKind.HEAD:
        return DeadlineAction.ANSWER_408_HEAD if head_begun else DeadlineAction.CLOSE
    return _ON_DEADLINE[kind]
