"""The scale-to-zero rules as tables: autostop, autostart, restart with backoff."""

from __future__ import annotations

import pytest

from edge.config.model import RestartSpec
from edge.core.autoscale import (
    BACKOFF_CAP,
    STABLE_AFTER,
    MachineLoad,
    StartCandidate,
    after_exit,
    backoff,
    plan_autostart,
    plan_autostop,
)


def load(
    mid: str, region: str = "lhr", active: int = 0, busy: bool = False, over: bool = False
) -> MachineLoad:
    return MachineLoad(mid, region, active, busy, over)


@pytest.mark.parametrize(
    ("machines", "min_running", "stopped"),
    [
        ([], 0, []),
        ([load("a")], 0, ["a"]),  # a lone idle machine
        ([load("a", busy=True)], 0, []),  # it had traffic since the last pass
        ([load("a", active=1)], 0, []),  # it has traffic now
        ([load("a")], 1, []),  # min_machines_running in the primary region
        ([load("a"), load("b")], 0, ["a"]),  # excess 2 - (0 + 1) = 1: one per pass
        ([load("a", active=3), load("b")], 0, ["b"]),  # the quietest goes
        ([load("a", busy=True), load("b")], 0, ["b"]),
        ([load("a", over=True, active=20), load("b", over=True, active=20)], 0, []),  # excess 0
        ([load("a", over=True, active=20), load("b"), load("c")], 0, ["b"]),  # excess 1
        ([load("a"), load("b")], 2, []),
        ([load("a"), load("b"), load("c")], 2, ["a"]),
        # Per region, one each; the floor only counts in the primary region.
        ([load("a"), load("s", "syd")], 1, ["s"]),
        ([load("a"), load("b"), load("s", "syd"), load("t", "syd")], 0, ["a", "s"]),
    ],
)
def test_autostop_stops_at_most_one_machine_per_region(
    machines: list[MachineLoad], min_running: int, stopped: list[str]
) -> None:
    orders = plan_autostop(machines, "lhr", min_running, 60.0)
    assert [o.machine_id for o in orders] == stopped
    assert all(o.reason.startswith("autostop: ") for o in orders)


def test_autostop_says_why() -> None:
    (lone,) = plan_autostop([load("a")], "lhr", 0, 30.0)
    assert lone.reason == "autostop: no load on the only machine in lhr for 30s"
    (excess,) = plan_autostop([load("a"), load("b"), load("c", over=True)], "lhr", 0, 30.0)
    assert excess.reason == (
        "autostop: 3 machines running in lhr, 1 at or over the soft limit (excess 1)"
    )


def cand(mid: str, state: str, rtt: float, why: str = "") -> StartCandidate:
    return StartCandidate(mid, "lhr", state, rtt, why)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("auto_start", "candidates", "action", "machine"),
    [
        (True, [], "none", None),
        (False, [cand("a", "stopped", 0.01)], "none", None),
        (True, [cand("far", "stopped", 0.2), cand("near", "stopped", 0.01)], "start", "near"),
        # A machine already starting is waited for: a burst starts one machine.
        (True, [cand("near", "stopped", 0.01), cand("far", "starting", 0.2)], "wait", "far"),
        (True, [cand("a", "stopped", 0.05), cand("b", "suspended", 0.05)], "start", "b"),
        (True, [cand("a", "failed", 0.01, "boom"), cand("b", "stopped", 0.1)], "start", "b"),
        (True, [cand("a", "failed", 0.01, "boom")], "none", None),
    ],
)
def test_autostart_starts_the_nearest_stopped_machine_once(
    auto_start: bool, candidates: list[StartCandidate], action: str, machine: str | None
) -> None:
    plan = plan_autostart(auto_start, candidates)
    assert (plan.action, plan.machine_id) == (action, machine)


def test_autostart_explains_why_not() -> None:
    assert plan_autostart(False, []).detail == "auto_start_machines is off"
    failed = plan_autostart(True, [cand("a", "failed", 0.0, "exited code=1")])
    assert failed.detail == "machine a failed to start: exited code=1"
    assert plan_autostart(True, [cand("a", "suspended", 0.0)]).detail == "resume a in lhr"


ON_FAILURE = RestartSpec(policy="on-failure", max_retries=2)


@pytest.mark.parametrize(
    ("policy", "code", "attempts", "ran_for", "stop", "restart", "next_attempts"),
    [
        (ON_FAILURE, 1, 0, 0.1, False, True, 1),
        (ON_FAILURE, 1, 1, 0.1, False, True, 2),
        (ON_FAILURE, 1, 2, 0.1, False, False, 2),  # max_retries reached
        (ON_FAILURE, 1, 2, STABLE_AFTER, False, True, 1),  # it ran long enough: count anew
        (ON_FAILURE, 0, 0, 0.1, False, False, 0),  # a clean exit is not a failure
        (ON_FAILURE, -9, 0, 0.1, False, True, 1),  # killed by a signal
        (ON_FAILURE, 1, 0, 0.1, True, False, 0),  # we stopped it
        (RestartSpec(policy="no"), 1, 0, 0.1, False, False, 0),
        (RestartSpec(policy="always", max_retries=0), 0, 50, 0.1, False, True, 51),
    ],
)
def test_restart_policy(
    policy: RestartSpec,
    code: int,
    attempts: int,
    ran_for: float,
    stop: bool,
    restart: bool,
    next_attempts: int,
) -> None:
    verdict = after_exit(policy, code, attempts, ran_for, stop)
    assert (verdict.restart, verdict.attempts) == (restart, next_attempts)


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff(n) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert backoff(10) == backoff(10_000) == BACKOFF_CAP
    verdict = after_exit(ON_FAILURE, 1, 1, 0.1, False)
    assert verdict.delay == 1.0 and verdict.reason == "restart 2 in 1s"
    assert after_exit(ON_FAILURE, 1, 2, 0.1, False).reason == (
        "gave up after 2 restart(s) (max_retries 2)"
    )
