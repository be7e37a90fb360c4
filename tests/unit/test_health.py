"""The health state machine: rise, fall, grace, maint, drain, stop/start, several checks."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from edge.config.model import CheckTiming
from edge.core.health import (
    CHECK_TRANSITIONS,
    KEEP_RESULTS,
    MACHINE_TRANSITIONS,
    CheckResult,
    Event,
    HealthState,
    MachineHealth,
    Transition,
    Update,
    apply_verdict,
    checks_replaced,
    first_check_delay,
    machine_started,
    machine_stopped,
    new_machine,
    next_check_delay,
    operator,
    record,
)
from edge.core.routing import EndpointStats

U, P, C = HealthState.UNKNOWN, HealthState.PASSING, HealthState.CRITICAL
M, D = HealthState.MAINT, HealthState.DRAIN
# Bare numbers are milliseconds in the config model, so durations are written out.
TIMING = CheckTiming.model_validate({"interval": "10s", "timeout": "1s", "grace_period": "5s"})
T0 = 1000.0
AFTER_GRACE = T0 + 10.0

OK = CheckResult(at=0.0, ok=True, output="status 200", duration=0.01)
BAD = CheckResult(at=0.0, ok=False, output="connection refused", duration=0.01)


def machine(checks: int = 1, now: float = T0) -> MachineHealth:
    return new_machine(checks, now, started=True).health


def feed(
    health: MachineHealth,
    results: list[CheckResult],
    index: int = 0,
    now: float = AFTER_GRACE,
    timing: CheckTiming = TIMING,
) -> MachineHealth:
    for result in results:
        health = record(health, index, result, timing, now).health
    return health


def states(health: MachineHealth) -> list[HealthState]:
    return [check.state for check in health.checks]


# --- the tables --------------------------------------------------------------------------

CHECK_EVENTS = {Event.PASSED, Event.ROSE, Event.FAILED, Event.FELL, Event.GRACE, Event.RESET}
MACHINE_EVENTS = set(Event) - CHECK_EVENTS


def test_tables_are_complete_over_their_events() -> None:
    assert set(CHECK_TRANSITIONS) == {U, P, C}
    for row in CHECK_TRANSITIONS.values():
        assert set(row) == CHECK_EVENTS
    assert set(MACHINE_TRANSITIONS) == set(HealthState)
    for row in MACHINE_TRANSITIONS.values():
        assert set(row) == MACHINE_EVENTS


def test_admin_states_hold_until_ready() -> None:
    for admin in (M, D):
        row = MACHINE_TRANSITIONS[admin]
        for event in MACHINE_EVENTS - {Event.READY, Event.MAINT, Event.DRAIN}:
            assert row[event] is admin
        assert row[Event.READY] is U


# --- rise and fall -----------------------------------------------------------------------


def test_new_machine_with_checks_is_unknown_and_not_routable() -> None:
    health = machine()
    assert health.state is U
    assert states(health) == [U]


def test_machine_without_checks_is_passing_at_once() -> None:
    update = new_machine(0, T0, started=True)
    assert update.health.state is P
    assert update.transitions == [Transition(U, P, Event.ALL_PASSING, "machine started")]


def test_rise_passes_make_it_passing() -> None:
    health = feed(machine(), [OK])
    assert health.state is U  # one pass is not enough with rise 2
    update = record(health, 0, OK, TIMING, AFTER_GRACE)
    assert update.health.state is P
    assert update.health.since == AFTER_GRACE
    assert [(t.old, t.new, t.check) for t in update.transitions] == [(U, P, 0), (U, P, None)]


def test_fall_failures_make_it_critical_and_fewer_do_not() -> None:
    health = feed(machine(), [OK, OK])
    health = feed(health, [BAD, BAD])
    assert health.state is P
    assert health.checks[0].failures == 2
    update = record(health, 0, BAD, TIMING, AFTER_GRACE)
    assert update.health.state is C
    assert update.transitions == [
        Transition(P, C, Event.FELL, "connection refused", check=0),
        Transition(P, C, Event.ANY_CRITICAL, "connection refused"),
    ]


def test_a_pass_breaks_the_failure_streak() -> None:
    health = feed(machine(), [OK, OK, BAD, BAD, OK, BAD, BAD])
    assert health.state is P


def test_critical_needs_rise_passes_in_a_row_to_recover() -> None:
    health = feed(machine(), [OK, OK, BAD, BAD, BAD])
    assert health.state is C
    health = feed(health, [OK, BAD, OK])
    assert health.state is C  # never two in a row
    assert feed(health, [OK]).state is P


def test_unknown_goes_critical_after_fall_failures() -> None:
    assert feed(machine(), [BAD, BAD]).state is U
    assert feed(machine(), [BAD, BAD, BAD]).state is C


def test_rise_and_fall_of_one() -> None:
    timing = CheckTiming.model_validate({"rise": 1, "fall": 1, "grace_period": "0s"})
    health = feed(machine(), [OK], timing=timing)
    assert health.state is P
    assert feed(health, [BAD], timing=timing).state is C


# --- grace -------------------------------------------------------------------------------


def test_failures_inside_the_grace_period_do_not_count() -> None:
    health = feed(machine(), [BAD] * 5, now=T0 + 4.9)
    assert health.state is U
    assert health.checks[0].failures == 0
    assert len(health.checks[0].recent) == 5  # still shown
    assert feed(health, [BAD] * 2, now=T0 + 5.0).state is U
    assert feed(health, [BAD] * 3, now=T0 + 5.0).state is C


def test_passes_count_inside_the_grace_period() -> None:
    assert feed(machine(), [OK, BAD, OK], now=T0 + 1.0).state is P


def test_a_restart_starts_the_grace_period_again() -> None:
    health = feed(machine(), [OK, OK])
    health = machine_stopped(health, T0 + 100.0).health
    health = machine_started(health, T0 + 200.0).health
    assert feed(health, [BAD] * 3, now=T0 + 203.0).state is U
    assert feed(health, [BAD] * 3, now=T0 + 205.0).state is C


# --- stopped machines --------------------------------------------------------------------


def test_a_stopped_machine_is_unknown_and_its_results_are_ignored() -> None:
    health = feed(machine(), [OK, OK])
    update = machine_stopped(health, AFTER_GRACE)
    assert update.health.state is U
    assert not update.health.started
    assert update.transitions == [Transition(P, U, Event.STOPPED, "machine stopped")]
    assert states(update.health) == [U]
    assert update.health.checks[0].passes == 0
    assert len(update.health.checks[0].recent) == 2  # history stays for status
    assert record(update.health, 0, OK, TIMING, AFTER_GRACE).health == update.health


def test_a_restarted_machine_needs_rise_passes_again() -> None:
    health = machine_stopped(feed(machine(), [OK, OK]), AFTER_GRACE).health
    health = machine_started(health, AFTER_GRACE).health
    assert health.state is U
    assert feed(health, [OK], now=AFTER_GRACE + 10).state is U
    assert feed(health, [OK, OK], now=AFTER_GRACE + 10).state is P


def test_a_machine_without_checks_passes_again_when_restarted() -> None:
    health = new_machine(0, T0, started=True).health
    health = machine_stopped(health, T0 + 1).health
    assert health.state is U
    assert machine_started(health, T0 + 2).health.state is P


def test_a_machine_created_stopped_stays_unknown() -> None:
    assert new_machine(0, T0, started=False).health.state is U


# --- maint and drain ---------------------------------------------------------------------


def test_maint_ignores_results_and_ready_starts_over() -> None:
    health = feed(machine(), [OK, OK])
    update = operator(health, Event.MAINT, AFTER_GRACE)
    assert update.health.state is M
    assert update.transitions == [Transition(P, M, Event.MAINT, "set to maint by the operator")]
    assert states(update.health) == [U]  # the checks stopped
    health = feed(update.health, [OK, OK, OK])
    assert health.state is M
    assert health.checks[0].passes == 0
    health = operator(health, Event.READY, AFTER_GRACE).health
    assert health.state is U
    assert feed(health, [OK, OK]).state is P


def test_drain_keeps_counting_and_ready_returns_to_what_checks_say() -> None:
    health = operator(feed(machine(), [OK, OK]), Event.DRAIN, AFTER_GRACE).health
    assert health.state is D
    health = feed(health, [BAD, BAD, BAD])
    assert health.state is D
    assert states(health) == [C]
    assert operator(health, Event.READY, AFTER_GRACE).health.state is C
    health = feed(health, [OK, OK])
    update = operator(health, Event.READY, AFTER_GRACE)
    assert update.health.state is P
    assert [(t.old, t.new) for t in update.transitions] == [(D, U), (U, P)]


def test_admin_states_survive_stop_and_start() -> None:
    for event, state in ((Event.MAINT, M), (Event.DRAIN, D)):
        health = operator(machine(), event, T0).health
        health = machine_stopped(health, T0 + 1).health
        assert health.state is state
        health = machine_started(health, T0 + 2).health
        assert health.state is state


def test_ready_without_checks_is_passing() -> None:
    health = operator(new_machine(0, T0, started=True).health, Event.MAINT, T0).health
    assert operator(health, Event.READY, T0).health.state is P


def test_ready_on_a_stopped_machine_leaves_it_unknown() -> None:
    health = operator(new_machine(0, T0, started=False).health, Event.DRAIN, T0).health
    assert operator(health, Event.READY, T0).health.state is U


def test_maint_and_drain_switch_directly() -> None:
    health = operator(machine(), Event.MAINT, T0).health
    assert operator(health, Event.DRAIN, T0).health.state is D
    assert operator(operator(health, Event.DRAIN, T0).health, Event.MAINT, T0).health.state is M


def test_checks_replaced_start_over() -> None:
    health = feed(machine(), [OK, OK])
    update = checks_replaced(health, 2, AFTER_GRACE)
    assert update.health.state is U
    assert update.transitions == [Transition(P, U, Event.UNSETTLED, "checks changed")]
    assert states(update.health) == [U, U]
    assert update.health.started_at == AFTER_GRACE  # a new grace period
    assert checks_replaced(health, 0, AFTER_GRACE).health.state is P


def test_checks_replaced_keep_admin_and_stopped_states() -> None:
    drained = operator(feed(machine(), [OK, OK]), Event.DRAIN, AFTER_GRACE).health
    assert checks_replaced(drained, 3, AFTER_GRACE).health.state is D
    stopped = machine_stopped(machine(), AFTER_GRACE).health
    update = checks_replaced(stopped, 0, AFTER_GRACE)
    assert update == (replace(stopped, checks=(), started_at=AFTER_GRACE), [])


def test_only_operator_events_are_accepted() -> None:
    with pytest.raises(ValueError, match="not an operator event"):
        operator(machine(), Event.STOPPED, T0)


# --- several checks ----------------------------------------------------------------------


def test_several_checks_combine() -> None:
    health = machine(checks=2)
    health = feed(health, [OK, OK], index=0)
    assert health.state is U  # the second check has not settled
    health = feed(health, [OK, OK], index=1)
    assert health.state is P
    health = feed(health, [BAD, BAD, BAD], index=1)
    assert health.state is C  # any critical check
    assert states(health) == [P, C]
    health = feed(health, [OK, OK], index=1)
    assert health.state is P


def test_critical_check_wins_over_an_unknown_one() -> None:
    health = feed(machine(checks=2), [BAD, BAD, BAD], index=0)
    assert states(health) == [C, U]
    assert health.state is C


# --- results kept ------------------------------------------------------------------------


def test_only_the_last_results_are_kept() -> None:
    results = [CheckResult(float(i), True, "status 200", 0.0) for i in range(KEEP_RESULTS + 5)]
    health = feed(machine(), results)
    assert [r.at for r in health.checks[0].recent] == [float(i) for i in range(5, 15)]


def test_update_is_a_pair() -> None:
    update = new_machine(1, T0, started=True)
    assert isinstance(update, Update)
    health, transitions = update
    assert health.state is U
    assert transitions == []


# --- routing's view and slow start -------------------------------------------------------


def test_apply_verdict_sets_healthy_admin_and_ready_since() -> None:
    stats = EndpointStats()
    apply_verdict(stats, U, 10.0)
    assert (stats.healthy, stats.admin, stats.ready_since) == (False, "", float("-inf"))
    apply_verdict(stats, P, 20.0)
    assert (stats.healthy, stats.ready_since) == (True, 20.0)  # slow start begins
    apply_verdict(stats, P, 30.0)
    assert stats.ready_since == 20.0  # staying routable does not restart the ramp
    apply_verdict(stats, C, 40.0)
    assert not stats.healthy
    apply_verdict(stats, P, 50.0)
    assert stats.ready_since == 50.0
    apply_verdict(stats, M, 60.0)
    assert (stats.healthy, stats.admin) == (False, "maint")
    apply_verdict(stats, D, 70.0)
    assert stats.admin == "drain"
    apply_verdict(stats, P, 80.0)
    assert (stats.healthy, stats.admin, stats.ready_since) == (True, "", 80.0)


def test_fresh_stats_found_routable_do_not_ramp() -> None:
    stats = EndpointStats()  # healthy by default: a machine found at start
    apply_verdict(stats, P, 10.0)
    assert stats.ready_since == float("-inf")


# --- jitter ------------------------------------------------------------------------------


def test_next_check_delay_stays_within_the_jitter() -> None:
    rng = random.Random(7)
    delays = [next_check_delay(10.0, 0.2, rng) for _ in range(5000)]
    assert min(delays) >= 8.0
    assert max(delays) <= 12.0
    assert min(delays) < 8.1
    assert max(delays) > 11.9
    assert sum(delays) / len(delays) == pytest.approx(10.0, abs=0.1)


def test_no_jitter_means_the_interval() -> None:
    rng = random.Random(1)
    assert {next_check_delay(3.0, 0.0, rng) for _ in range(10)} == {3.0}
    assert {first_check_delay(3.0, 0.0, rng) for _ in range(10)} == {0.0}


def test_first_check_comes_soon_but_spread() -> None:
    rng = random.Random(3)
    delays = [first_check_delay(10.0, 0.1, rng) for _ in range(2000)]
    assert min(delays) >= 0.0
    assert max(delays) < 1.0
    assert max(delays) > 0.9
