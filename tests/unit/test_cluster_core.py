"""The cluster's pure decisions (edge.core.cluster) as tables: who checks a machine, how
fresh a shared verdict is, what load other nodes add."""

from __future__ import annotations

import pytest

from edge.core.cluster import (
    LOAD_STALE_AFTER,
    NODE_STALE_AFTER,
    RECENT_WINDOW,
    LoadRow,
    NodeView,
    SharedVerdict,
    checker_of,
    live_nodes,
    load_to_publish,
    must_check,
    remote_load,
    shared_state,
    uses_remote,
)
from edge.core.health import HealthState

RTT = {("lhr", "lhr"): 0, ("syd", "lhr"): 250, ("lhr", "syd"): 250, ("syd", "syd"): 0}
RTT |= {("fra", "lhr"): 10, ("fra", "syd"): 240, ("nrt", "syd"): 100, ("nrt", "lhr"): 220}
A = NodeView("a", ("lhr",), 100.0)
B = NodeView("b", ("syd", "nrt"), 100.0)
C = NodeView("c", ("fra",), 100.0)


def rtt(a: str, b: str) -> float:
    return float(RTT[(a, b)])


@pytest.mark.parametrize(
    ("region", "nodes", "expected"),
    [
        ("lhr", (A, B), "a"),
        ("syd", (A, B), "b"),
        ("lhr", (B, C), "c"),  # a gone: the next nearest
        ("lhr", (), None),
        ("lhr", (NodeView("z", ("lhr",), 0), A), "a"),  # a tie: by name
    ],
)
def test_the_nearest_live_node_checks(
    region: str, nodes: tuple[NodeView, ...], expected: str | None
) -> None:
    assert checker_of(region, nodes, rtt) == expected


def test_a_node_silent_for_longer_than_the_bound_is_not_live() -> None:
    old = NodeView("old", ("lhr",), 100.0 - NODE_STALE_AFTER - 0.1)
    assert live_nodes((A, old), 100.0) == (A,)


@pytest.mark.parametrize(
    ("age", "passing", "expected"),
    [
        (0.5, True, (HealthState.PASSING, "checked by node a 0.5s ago")),
        (2.9, False, (HealthState.CRITICAL, "checked by node a 2.9s ago")),
        (42, True, (HealthState.PASSING, "stale: last checked by node a 42s ago")),
        (RECENT_WINDOW + 1, True, None),  # past the PM11 window: not used
    ],
)
def test_how_fresh_a_shared_verdict_is(
    age: float, passing: bool, expected: tuple[HealthState, str] | None
) -> None:
    assert shared_state(SharedVerdict("a", passing, 1000.0 - age), 1000.0) == expected


@pytest.mark.parametrize(
    ("me", "checker", "verdict_age", "watched_for", "expected"),
    [
        ("a", "a", None, 0, True),  # the checker checks
        ("b", "a", 1.0, 10, False),  # the others follow a fresh verdict
        ("b", "a", 100.0, 10, False),  # ... and a stale one within the window
        ("b", "a", RECENT_WINDOW + 1, 10, True),  # past it, they check themselves
        ("b", "a", None, 10, False),  # no verdict yet: wait for the checker
        ("b", "a", None, RECENT_WINDOW + 1, True),  # ... but not for ever
        ("b", None, None, 0, True),  # nobody known: check it
    ],
)
def test_who_runs_the_checks(
    me: str, checker: str | None, verdict_age: float | None, watched_for: float, expected: bool
) -> None:
    now = 10_000.0
    verdict = None if verdict_age is None else SharedVerdict("a", True, now - verdict_age)
    assert must_check(me, checker, verdict, now - watched_for, now) is expected


def test_remote_load_sums_the_other_nodes_fresh_rows() -> None:
    key, other = ("web", "m1", 8080), ("web", "m2", 8080)
    rows = [
        LoadRow("a", key, 3, 100.0),  # this node: its own count is exact, not added
        LoadRow("b", key, 2, 99.5),
        LoadRow("c", key, 4, 99.0),
        LoadRow("d", key, 9, 100.0 - LOAD_STALE_AFTER - 0.1),  # gone: ignored
        LoadRow("b", other, 1, 100.0),
    ]
    assert remote_load(rows, "a", 100.0) == {key: 6, other: 1}


def test_load_rows_to_publish_refresh_counts_and_say_zero_once() -> None:
    one, two, three = ("w", "1", 80), ("w", "2", 80), ("w", "3", 80)
    assert load_to_publish({one: 2, two: 0, three: 0}, {two: 5, three: 0}) == {one: 2, two: 0}
    assert load_to_publish({two: 0}, {two: 0}) == {}


P, C, U = HealthState.PASSING, HealthState.CRITICAL, HealthState.UNKNOWN
M, D = HealthState.MAINT, HealthState.DRAIN


@pytest.mark.parametrize(
    ("own", "started", "owned", "remote", "expected"),
    [
        (U, True, False, P, True),  # checked elsewhere: the checker's verdict
        (U, True, False, None, False),  # no verdict yet: this node's (unknown)
        (C, True, True, P, False),  # this node checks: its own verdict
        (U, True, True, P, True),  # ... just took over, its checks not settled yet
        (M, True, False, P, False),  # the operator's maint comes first
        (D, True, False, P, False),  # ... and drain
        (U, False, False, P, False),  # a stopped machine is not routed at all
    ],
)
def test_whose_verdict_routing_uses(
    own: HealthState, started: bool, owned: bool, remote: HealthState | None, expected: bool
) -> None:
    assert uses_remote(own, started, owned, remote) is expected
