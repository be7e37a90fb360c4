"""The relays' decisions (edge.core.relay_decisions) as tables: one row per branch,
the boundaries written out (tries == retries, tries == retries + 1, deadline == now)."""

from __future__ import annotations

import pytest

from edge.core.relay_decisions import (
    IDEMPOTENT_METHODS,
    ConnectVerdict,
    DeadlineAction,
    DeadlineKind,
    Ending,
    LostVerdict,
    NoCandidateVerdict,
    after_connect_failure,
    after_no_candidate,
    after_upstream_lost,
    answer_closes,
    held_against_machine,
    on_deadline,
    queue_until,
    replayable,
    request_keeps_alive,
    response_ending,
)

# --- replayable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "has_body", "expected"),
    [
        (b"GET", False, True),
        (b"HEAD", False, True),
        (b"OPTIONS", False, True),
        (b"PUT", False, True),
        (b"DELETE", False, True),
        (b"TRACE", False, True),
        (b"GET", True, False),  # a body was streamed: it is gone
        (b"PUT", True, False),
        (b"POST", False, False),  # not idempotent, even without a body
        (b"POST", True, False),
        (b"PATCH", False, False),
        (b"CONNECT", False, False),
        (b"get", False, False),  # methods are case-sensitive (RFC 9110 §9.1)
    ],
)
def test_replayable(method: bytes, has_body: bool, expected: bool) -> None:
    assert replayable(method, has_body) is expected


def test_idempotent_methods_are_rfc_9110s() -> None:
    assert frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"}) == (
        IDEMPOTENT_METHODS
    )


# --- request_keeps_alive ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http10", "conn_close", "conn_keep_alive", "client_eof", "expected"),
    [
        # HTTP/1.1: alive unless Connection: close
        (False, False, False, False, True),
        (False, True, False, False, False),
        (False, False, True, False, True),
        (False, True, True, False, False),  # close wins over keep-alive
        # HTTP/1.0: alive only when it asks
        (True, False, False, False, False),
        (True, False, True, False, True),
        (True, True, True, False, False),
        (True, True, False, False, False),
        # a client that half-closed never keeps alive
        (False, False, False, True, False),
        (True, False, True, True, False),
    ],
)
def test_request_keeps_alive(
    http10: bool, conn_close: bool, conn_keep_alive: bool, client_eof: bool, expected: bool
) -> None:
    got = request_keeps_alive(
        http10=http10, conn_close=conn_close, conn_keep_alive=conn_keep_alive, client_eof=client_eof
    )
    assert got is expected


# --- after_connect_failure, held_against_machine ------------------------------------------

RETRY, EXHAUSTED, GIVE_UP = (
    ConnectVerdict.RETRY,
    ConnectVerdict.EDGE_EXHAUSTED,
    ConnectVerdict.GIVE_UP,
)


@pytest.mark.parametrize(
    ("reason", "tries", "retries", "expected"),
    [
        ("refused", 1, 2, RETRY),
        ("refused", 2, 2, RETRY),  # tries == retries: one more machine may be tried
        ("refused", 3, 2, GIVE_UP),  # tries == retries + 1: the budget is used up
        ("refused", 1, 0, GIVE_UP),  # no retries at all
        ("refused", 1, 1, RETRY),
        ("refused", 2, 1, GIVE_UP),
        ("timeout", 1, 2, RETRY),
        ("timeout", 3, 2, GIVE_UP),
        ("reset", 2, 2, RETRY),
        ("unreachable", 1, 2, RETRY),
        ("unreachable", 3, 2, GIVE_UP),
        # out of descriptors: every machine would fail the same way, whatever the budget
        ("exhausted", 1, 2, EXHAUSTED),
        ("exhausted", 1, 0, EXHAUSTED),
        ("exhausted", 5, 2, EXHAUSTED),
        # the pool closed at shutdown: not the machine's doing, never retried
        ("cancelled", 1, 2, GIVE_UP),
        ("cancelled", 1, 0, GIVE_UP),
    ],
)
def test_after_connect_failure(
    reason: str, tries: int, retries: int, expected: ConnectVerdict
) -> None:
    assert after_connect_failure(reason, tries, retries) is expected


@pytest.mark.parametrize(
    ("reason", "held"),
    [
        ("refused", True),
        ("timeout", True),
        ("reset", True),
        ("unreachable", True),
        ("exhausted", True),  # reported (the router names it), though not retried
        ("cancelled", False),
    ],
)
def test_held_against_machine(reason: str, held: bool) -> None:
    assert held_against_machine(reason) is held


# --- after_upstream_lost ------------------------------------------------------------------

CUT, FRESH, ELSEWHERE, A502 = (
    LostVerdict.CUT_SHORT,
    LostVerdict.RESEND_FRESH,
    LostVerdict.RETRY_ELSEWHERE,
    LostVerdict.ANSWER_502,
)


@pytest.mark.parametrize(
    (
        "answering",
        "replayable_",
        "bytes_came",
        "reused",
        "fresh_only",
        "tries",
        "retries",
        "expected",
    ),
    [
        # the client has part of the answer (or a tunnel): whatever else, cut it short
        (True, True, False, True, False, 1, 2, CUT),
        (True, False, True, False, False, 9, 0, CUT),
        # not replayable (a POST, or a body was sent): 502
        (False, False, False, True, False, 1, 2, A502),
        (False, False, False, False, False, 1, 2, A502),
        # a byte of an answer came: the machine saw the request, 502
        (False, True, True, True, False, 1, 2, A502),
        (False, True, True, False, False, 1, 2, A502),
        # a pooled connection the machine had closed: once more, fresh, same machine
        (False, True, False, True, False, 1, 2, FRESH),
        (False, True, False, True, False, 3, 2, FRESH),  # not counted against the budget
        (False, True, False, True, False, 1, 0, FRESH),
        # the fresh resend failed too: now it is the machine's doing
        (False, True, False, True, True, 1, 2, ELSEWHERE),
        (False, True, False, True, True, 3, 2, A502),
        # a fresh connection: another machine while the budget lasts
        (False, True, False, False, False, 1, 2, ELSEWHERE),
        (False, True, False, False, False, 2, 2, ELSEWHERE),  # tries == retries
        (False, True, False, False, False, 3, 2, A502),  # tries == retries + 1
        (False, True, False, False, False, 1, 0, A502),
        (False, True, False, False, True, 1, 1, ELSEWHERE),
        (False, True, False, False, True, 2, 1, A502),
    ],
)
def test_after_upstream_lost(
    answering: bool,
    replayable_: bool,
    bytes_came: bool,
    reused: bool,
    fresh_only: bool,
    tries: int,
    retries: int,
    expected: LostVerdict,
) -> None:
    got = after_upstream_lost(
        answering=answering,
        replayable=replayable_,
        bytes_came=bytes_came,
        reused=reused,
        fresh_only=fresh_only,
        tries=tries,
        retries=retries,
    )
    assert got is expected


# --- response_ending, answer_closes -------------------------------------------------------

UPGRADE, CLOSE, KEEP, KEEP10 = (
    Ending.UPGRADE,
    Ending.CLOSE,
    Ending.KEEP_ALIVE,
    Ending.KEEP_ALIVE_HTTP10,
)


@pytest.mark.parametrize(
    ("status", "upgrade_asked", "until_close", "keep_alive", "http10", "draining", "expected"),
    [
        (200, False, False, True, False, False, KEEP),
        (204, False, False, True, False, False, KEEP),
        (200, False, False, True, True, False, KEEP10),  # HTTP/1.0 that asked for keep-alive
        (200, False, False, False, True, False, CLOSE),  # HTTP/1.0 that did not
        (200, False, False, False, False, False, CLOSE),  # Connection: close
        (200, False, True, True, False, False, CLOSE),  # body ends when the machine closes
        (200, False, True, True, True, False, CLOSE),
        (200, False, False, True, False, True, CLOSE),  # the edge is draining
        (101, True, False, True, False, False, UPGRADE),
        # a 101 wins over everything else that would close
        (101, True, True, False, True, True, UPGRADE),
        # an upgrade request not answered 101: its framing is unknown
        (200, True, False, True, False, False, CLOSE),
        (426, True, False, True, False, False, CLOSE),
        (101, False, False, False, False, False, CLOSE),
    ],
)
def test_response_ending(
    status: int,
    upgrade_asked: bool,
    until_close: bool,
    keep_alive: bool,
    http10: bool,
    draining: bool,
    expected: Ending,
) -> None:
    got = response_ending(
        status=status,
        upgrade_asked=upgrade_asked,
        until_close=until_close,
        keep_alive=keep_alive,
        http10=http10,
        draining=draining,
    )
    assert got is expected


@pytest.mark.parametrize("keep_alive", [False, True])
def test_a_101_nobody_asked_for_is_no_tunnel(keep_alive: bool) -> None:
    got = response_ending(
        status=101,
        upgrade_asked=False,
        until_close=False,
        keep_alive=keep_alive,
        http10=False,
        draining=False,
    )
    assert got is not UPGRADE


@pytest.mark.parametrize(
    ("keep_alive", "upgrade_asked", "body_unread", "closes"),
    [
        (True, False, False, False),
        (False, False, False, True),
        (True, True, False, True),
        (True, False, True, True),  # the rest of the body can't be told from a next request
        (False, True, True, True),
    ],
)
def test_answer_closes(
    keep_alive: bool, upgrade_asked: bool, body_unread: bool, closes: bool
) -> None:
    got = answer_closes(keep_alive=keep_alive, upgrade_asked=upgrade_asked, body_unread=body_unread)
    assert got is closes


# --- queue_until, after_no_candidate ------------------------------------------------------


@pytest.mark.parametrize(
    ("first_deadline", "now", "timeout", "expected"),
    [
        (0.0, 100.0, 5.0, 105.0),  # the first wait sets it
        (105.0, 103.0, 5.0, 105.0),  # woken and waiting again: never extended
        (105.0, 200.0, 5.0, 105.0),  # even once it has passed
        (0.0, 100.0, 0.0, 100.0),  # no time to wait at all
    ],
)
def test_queue_until(first_deadline: float, now: float, timeout: float, expected: float) -> None:
    assert queue_until(first_deadline, now, timeout) == expected


WAIT, REFUSE = NoCandidateVerdict.WAIT, NoCandidateVerdict.REFUSE


@pytest.mark.parametrize(
    ("can_queue", "now", "deadline", "expected"),
    [
        (True, 100.0, 105.0, WAIT),
        (True, 104.999, 105.0, WAIT),
        (True, 105.0, 105.0, REFUSE),  # deadline == now: the wait is over
        (True, 106.0, 105.0, REFUSE),
        (False, 100.0, 105.0, REFUSE),  # no queue came with the refusal
        (False, 100.0, 0.0, REFUSE),
    ],
)
def test_after_no_candidate(
    can_queue: bool, now: float, deadline: float, expected: NoCandidateVerdict
) -> None:
    assert after_no_candidate(can_queue=can_queue, now=now, deadline=deadline) is expected


def test_a_queue_with_no_timeout_refuses_on_the_first_wait() -> None:
    deadline = queue_until(0.0, 100.0, 0.0)
    assert after_no_candidate(can_queue=True, now=100.0, deadline=deadline) is REFUSE


# --- on_deadline ----------------------------------------------------------------------------

A = DeadlineAction
K = DeadlineKind


@pytest.mark.parametrize(
    ("kind", "head_begun", "expected"),
    [
        (K.NONE, False, A.IGNORE),
        (K.NONE, True, A.IGNORE),
        (K.IDLE, False, A.CLOSE),
        (K.IDLE, True, A.CLOSE),
        (K.HEAD, True, A.ANSWER_408_HEAD),  # part of a head came: say why it ends
        (K.HEAD, False, A.CLOSE),  # nothing came: a client that never sent a request
        (K.QUEUE, False, A.REFUSE_QUEUED),
        (K.QUEUE, True, A.REFUSE_QUEUED),
        (K.CONNECT, False, A.CONNECT_TIMEOUT),
        (K.CONNECT, True, A.CONNECT_TIMEOUT),
        (K.RESPONSE, False, A.ANSWER_504),
        (K.RESPONSE, True, A.ANSWER_504),
        (K.BODY, False, A.ANSWER_408_BODY),
        (K.BODY, True, A.ANSWER_408_BODY),
        (K.REPLAY, False, A.REPLAY_TIMEOUT),
        (K.REPLAY, True, A.REPLAY_TIMEOUT),
        (K.HOLD, False, A.CLOSE),  # a refused raw TCP connection, held a while
        (K.HOLD, True, A.CLOSE),
    ],
)
def test_on_deadline(kind: DeadlineKind, head_begun: bool, expected: DeadlineAction) -> None:
    assert on_deadline(kind, head_begun=head_begun) is expected


@pytest.mark.parametrize("head_begun", [False, True])
def test_on_deadline_is_total_over_the_kinds(head_begun: bool) -> None:
    """Every kind (one added later included) has an action: none raises, none is None."""
    actions = {kind: on_deadline(kind, head_begun=head_begun) for kind in DeadlineKind}
    assert set(actions) == set(DeadlineKind)
    assert all(isinstance(action, DeadlineAction) for action in actions.values())


def test_every_deadline_action_is_reachable() -> None:
    reached = {
        on_deadline(kind, head_begun=begun) for kind in DeadlineKind for begun in (False, True)
    }
    assert reached == set(DeadlineAction)


def test_only_nothing_timed_is_ignored() -> None:
    ignored = {
        kind
        for kind in DeadlineKind
        for begun in (False, True)
        if on_deadline(kind, head_begun=begun) is A.IGNORE
    }
    assert ignored == {K.NONE}
