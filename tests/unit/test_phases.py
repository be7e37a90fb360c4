"""The exchange's phase table (edge.core.phases): every phase ends, DONE is terminal,
the table and check_transition agree, and the raw TCP relay's subset is allowed."""

from __future__ import annotations

from collections import deque
from itertools import pairwise

import pytest

from edge.core.phases import (
    TRANSITIONS,
    IllegalTransition,
    Phase,
    check_transition,
    is_waiting,
)

ALLOWED = [(src, dst) for src, targets in TRANSITIONS.items() for dst in sorted(targets, key=str)]
FORBIDDEN = [(src, dst) for src in Phase for dst in Phase if dst not in TRANSITIONS[src]]


def reachable_from(start: Phase) -> set[Phase]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in TRANSITIONS[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_table_covers_every_phase_and_only_phases() -> None:
    assert set(TRANSITIONS) == set(Phase)
    for targets in TRANSITIONS.values():
        assert targets <= set(Phase)


def test_done_is_terminal() -> None:
    assert TRANSITIONS[Phase.DONE] == frozenset()
    for phase in Phase:
        with pytest.raises(IllegalTransition):
            check_transition(Phase.DONE, phase)


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.DONE])
def test_every_phase_may_end_at_once(phase: Phase) -> None:
    """The client may go away in any phase: DONE is always one move away."""
    assert Phase.DONE in TRANSITIONS[phase]
    check_transition(phase, Phase.DONE)


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_reaches_done(phase: Phase) -> None:
    assert Phase.DONE in reachable_from(phase)


def test_every_phase_is_reachable_from_head() -> None:
    assert reachable_from(Phase.HEAD) == set(Phase)


def test_nothing_goes_back_to_reading_a_head() -> None:
    """A keep-alive connection's next request is a new exchange, never a move back."""
    assert all(Phase.HEAD not in targets for targets in TRANSITIONS.values())


def test_no_phase_moves_to_itself() -> None:
    assert all(phase not in TRANSITIONS[phase] for phase in Phase)


@pytest.mark.parametrize(("src", "dst"), ALLOWED, ids=[f"{s.value}->{d.value}" for s, d in ALLOWED])
def test_each_allowed_move_passes(src: Phase, dst: Phase) -> None:
    check_transition(src, dst)  # does not raise


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (Phase.HEAD, Phase.CONNECTING),  # routed first
        (Phase.HEAD, Phase.STREAMING),
        (Phase.HEAD, Phase.TUNNEL),
        (Phase.ROUTING, Phase.STREAMING),  # no response without a machine
        (Phase.ROUTING, Phase.HEAD),
        (Phase.QUEUED, Phase.CONNECTING),  # woken: route again, the slot may be gone
        (Phase.QUEUED, Phase.SENDING),
        (Phase.CONNECTING, Phase.STREAMING),  # nothing was sent yet
        (Phase.CONNECTING, Phase.QUEUED),
        (Phase.STREAMING, Phase.ROUTING),  # the client has bytes: never replayed
        (Phase.STREAMING, Phase.CONNECTING),
        (Phase.STREAMING, Phase.TUNNEL),
        (Phase.TUNNEL, Phase.STREAMING),
        (Phase.TUNNEL, Phase.ROUTING),
        (Phase.REPLAYING, Phase.STREAMING),  # the replayed answer is never shown
        (Phase.REPLAYING, Phase.CONNECTING),
        (Phase.DONE, Phase.HEAD),
        (Phase.DONE, Phase.ROUTING),
    ],
    ids=lambda phase: phase.value,
)
def test_forbidden_moves_raise(src: Phase, dst: Phase) -> None:
    assert dst not in TRANSITIONS[src]
    with pytest.raises(IllegalTransition, match=f"{src.value} -> {dst.value}"):
        check_transition(src, dst)


def test_every_move_outside_the_table_raises() -> None:
    assert FORBIDDEN  # the table is not "anything goes"
    for src, dst in FORBIDDEN:
        with pytest.raises(IllegalTransition):
            check_transition(src, dst)


def test_the_raw_tcp_path_is_allowed() -> None:
    """The TCP relay's lifecycle: route, wait for a free machine, route again, connect,
    relay bytes, end."""
    path = [
        Phase.ROUTING,
        Phase.QUEUED,
        Phase.ROUTING,
        Phase.CONNECTING,
        Phase.TUNNEL,
        Phase.DONE,
    ]
    for src, dst in pairwise(path):
        check_transition(src, dst)


@pytest.mark.parametrize(
    "path",
    [
        # keep-alive GET on a pooled connection
        [Phase.HEAD, Phase.ROUTING, Phase.AWAITING_HEAD, Phase.STREAMING, Phase.DONE],
        # a POST whose body streams, answered before it is all sent
        [Phase.HEAD, Phase.ROUTING, Phase.CONNECTING, Phase.SENDING, Phase.STREAMING, Phase.DONE],
        # a refused connect retried elsewhere
        [
            Phase.HEAD,
            Phase.ROUTING,
            Phase.CONNECTING,
            Phase.ROUTING,
            Phase.CONNECTING,
            Phase.AWAITING_HEAD,
            Phase.STREAMING,
            Phase.DONE,
        ],
        # a pooled connection lost before answering: resent fresh on the same machine
        [
            Phase.HEAD,
            Phase.ROUTING,
            Phase.AWAITING_HEAD,
            Phase.CONNECTING,
            Phase.AWAITING_HEAD,
            Phase.STREAMING,
            Phase.DONE,
        ],
        # fly-replay: held, routed again
        [
            Phase.HEAD,
            Phase.ROUTING,
            Phase.AWAITING_HEAD,
            Phase.REPLAYING,
            Phase.ROUTING,
            Phase.CONNECTING,
            Phase.AWAITING_HEAD,
            Phase.STREAMING,
            Phase.DONE,
        ],
        # an upgrade
        [
            Phase.HEAD,
            Phase.ROUTING,
            Phase.CONNECTING,
            Phase.AWAITING_HEAD,
            Phase.TUNNEL,
            Phase.DONE,
        ],
        # a bad request head answered by the edge
        [Phase.HEAD, Phase.DONE],
    ],
    ids=["keep-alive", "body", "retry", "fresh", "replay", "upgrade", "rejected"],
)
def test_the_http_paths_are_allowed(path: list[Phase]) -> None:
    for src, dst in pairwise(path):
        check_transition(src, dst)


@pytest.mark.parametrize(
    ("phase", "waiting"),
    [
        (Phase.HEAD, False),
        (Phase.ROUTING, True),
        (Phase.QUEUED, True),
        (Phase.CONNECTING, True),
        (Phase.SENDING, False),
        (Phase.AWAITING_HEAD, False),
        (Phase.REPLAYING, False),
        (Phase.STREAMING, False),
        (Phase.TUNNEL, False),
        (Phase.DONE, False),
    ],
)
def test_is_waiting(phase: Phase, waiting: bool) -> None:
    assert is_waiting(phase) is waiting


def test_is_waiting_is_tabled_for_every_phase() -> None:
    tabled = {
        Phase.HEAD,
        Phase.ROUTING,
        Phase.QUEUED,
        Phase.CONNECTING,
        Phase.SENDING,
        Phase.AWAITING_HEAD,
        Phase.REPLAYING,
        Phase.STREAMING,
        Phase.TUNNEL,
        Phase.DONE,
    }
    assert tabled == set(Phase)
