"""Active health: the state of each (machine, service) and of each of its checks.

States: ``unknown``, ``passing`` and ``critical`` say what the checks found; ``maint``
and ``drain`` are the operator's (HAProxy's admin states) and override them. The
whole state machine is two transition tables, data in the style of h11's ``_state``:

- ``CHECK_TRANSITIONS``: one check of one machine. ``count_result`` turns a result into
  an event by counting it against ``rise`` / ``fall``: ``rose`` is the ``rise``-th pass
  in a row, ``fell`` the ``fall``-th failure in a row, and a failure while the machine
  is younger than ``grace_period`` is ``grace`` and counts for nothing.
- ``MACHINE_TRANSITIONS``: the (machine, service), driven by the combined verdict of its
  checks (``verdict``: critical if any check is, passing when all pass, else unsettled;
  a service without checks is always passing), by the operator (maint, drain, ready)
  and by the machine's lifecycle (stopped, started).

Rule: no state changes except through ``_step``, which looks the next state up in one
of these tables. The functions below only choose the event and keep the counters.

Decisions, with their reasons:
- Routable means ``passing`` (``routable``). With checks, ``unknown`` is not routable:
  the platform sends traffic only to machines passing their checks, HAProxy keeps a new
  server DOWN until ``rise`` passes and Envoy excludes a host until its first check. A
  fresh fleet is thus all unknown at first, and Envoy's panic mode (edge.core.strategies)
  routes across every started machine until the checks settle; the runtime runs a
  machine's first check within ``jitter x interval`` of its start, so it turns passing
  after about ``(rise - 1) x interval``. A machine without checks passes at once.
- ``maint`` stops the checks and forgets their streaks, so ``ready`` after it starts
  from unknown; ``drain`` keeps checking (HAProxy), so ``ready`` after it goes straight
  back to what the checks say. Both survive a stop and start of the machine.
- A stopped machine is not checked and is ``unknown``; a (re)start restarts the grace
  period. The edge never restarts a failing machine: critical only stops new traffic.
- ``apply_verdict`` writes the verdict into the routing ``EndpointStats`` and starts the
  slow-start ramp (``ready_since``) whenever a machine becomes routable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, NamedTuple

from edge.config.model import CheckTiming
from edge.core.routing import Admin, EndpointStats

KEEP_RESULTS = 10  # check results kept per (machine, service, check) for status output


class HealthState(StrEnum):
    UNKNOWN = "unknown"
    PASSING = "passing"
    CRITICAL = "critical"
    MAINT = "maint"
    DRAIN = "drain"


class Event(StrEnum):
    # one check's result, counted against rise / fall (CHECK_TRANSITIONS)
    PASSED = "passed"  # a pass, fewer than rise in a row so far
    ROSE = "rose"  # a pass, at least rise in a row
    FAILED = "failed"  # a failure, fewer than fall in a row so far
    FELL = "fell"  # a failure, at least fall in a row
    GRACE = "grace"  # a failure inside the grace period: not counted
    RESET = "reset"  # the check stops (machine stopped or in maintenance)
    # the combined verdict of a service's checks (MACHINE_TRANSITIONS)
    ALL_PASSING = "all_passing"
    ANY_CRITICAL = "any_critical"
    UNSETTLED = "unsettled"
    # the operator and the machine's lifecycle (MACHINE_TRANSITIONS)
    MAINT = "maint"
    DRAIN = "drain"
    READY = "ready"
    STOPPED = "stopped"
    STARTED = "started"


_U, _P, _C = HealthState.UNKNOWN, HealthState.PASSING, HealthState.CRITICAL
_M, _D = HealthState.MAINT, HealthState.DRAIN
_E = Event

Table = Mapping[HealthState, Mapping[Event, HealthState]]

# Each row: the next state for each event of the header, in that order.
_CHECK_EVENTS = (_E.PASSED, _E.ROSE, _E.FAILED, _E.FELL, _E.GRACE, _E.RESET)
_CHECK_ROWS = {
    #    passed rose failed fell grace reset
    _U: (_U,    _P,  _U,    _C,  _U,   _U),
    _P: (_P,    _P,  _P,    _C,  _P,   _U),
    _C: (_C,    _P,  _C,    _C,  _C,   _U),
}  # fmt: skip

_MACHINE_EVENTS = (
    _E.ALL_PASSING, _E.ANY_CRITICAL, _E.UNSETTLED,
    _E.MAINT, _E.DRAIN, _E.READY, _E.STOPPED, _E.STARTED,
)  # fmt: skip
_MACHINE_ROWS = {
    #    all_passing any_critical unsettled maint drain ready stopped started
    _U: (_P,         _C,          _U,       _M,   _D,   _U,   _U,     _U),
    _P: (_P,         _C,          _U,       _M,   _D,   _P,   _U,     _U),
    _C: (_P,         _C,          _U,       _M,   _D,   _C,   _U,     _U),
    # The operator's states hold through check verdicts, stops and starts; only
    # ``ready`` (or the other admin state) leaves them.
    _M: (_M,         _M,          _M,       _M,   _D,   _U,   _M,     _M),
    _D: (_D,         _D,          _D,       _M,   _D,   _U,   _D,     _D),
}  # fmt: skip

CHECK_TRANSITIONS: Final[Table] = {
    state: dict(zip(_CHECK_EVENTS, row, strict=True)) for state, row in _CHECK_ROWS.items()
}
MACHINE_TRANSITIONS: Final[Table] = {
    state: dict(zip(_MACHINE_EVENTS, row, strict=True)) for state, row in _MACHINE_ROWS.items()
}

OPERATOR_EVENTS: Final = frozenset({_E.MAINT, _E.DRAIN, _E.READY})


def _step(table: Table, state: HealthState, event: Event) -> HealthState:
    """The only way a state changes: look it up. A missing entry is a bug, so KeyError."""
    return table[state][event]


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of one check, kept for status output."""

    at: float  # wall-clock time the check started (epoch seconds)
    ok: bool
    output: str  # "status 200", "connected", "connection refused", "timeout after 1s", ...
    duration: float  # seconds
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class CheckHealth:
    """One check of one (machine, service)."""

    state: HealthState = HealthState.UNKNOWN
    passes: int = 0  # consecutive passes
    failures: int = 0  # consecutive failures, outside the grace period
    recent: tuple[CheckResult, ...] = ()  # the last KEEP_RESULTS results, oldest first


@dataclass(frozen=True, slots=True)
class MachineHealth:
    """One (machine, service): its state and its checks (in the service's order)."""

    state: HealthState
    checks: tuple[CheckHealth, ...]
    started: bool
    started_at: float  # when it was last started: the grace period counts from here
    since: float  # when ``state`` last changed


@dataclass(frozen=True, slots=True)
class Transition:
    """A state that changed, for logs and metrics."""

    old: HealthState
    new: HealthState
    event: Event
    cause: str  # for people: the check's output, or what the operator or machine did
    check: int | None = None  # the check's index; None for the (machine, service) itself


class Update(NamedTuple):
    health: MachineHealth
    transitions: list[Transition]


# --- the functions -----------------------------------------------------------------------


def new_machine(check_count: int, now: float, started: bool) -> Update:
    """The health of a (machine, service) first seen at ``now``: unknown until settled."""
    health = MachineHealth(_U, (CheckHealth(),) * check_count, False, now, now)
    if started:
        return machine_started(health, now)
    return Update(health, [])


def count_result(
    check: CheckHealth, ok: bool, timing: CheckTiming, in_grace: bool
) -> tuple[int, int, Event]:
    """The new (passes, failures) streaks and the event one result makes of them."""
    if ok:
        passes = check.passes + 1
        return passes, 0, _E.ROSE if passes >= timing.rise else _E.PASSED
    if in_grace:
        return check.passes, check.failures, _E.GRACE
    failures = check.failures + 1
    return 0, failures, _E.FELL if failures >= timing.fall else _E.FAILED


def record(
    health: MachineHealth, index: int, result: CheckResult, timing: CheckTiming, now: float
) -> Update:
    """Fold one result of check ``index`` in; ignored while stopped or in maintenance."""
    if not health.started or health.state is _M:
        return Update(health, [])
    check = health.checks[index]
    in_grace = now - health.started_at < timing.grace_period
    passes, failures, event = count_result(check, result.ok, timing, in_grace)
    state = _step(CHECK_TRANSITIONS, check.state, event)
    recent = (*check.recent, result)[-KEEP_RESULTS:]
    checks = list(health.checks)
    checks[index] = CheckHealth(state, passes, failures, recent)
    transitions = []
    if state is not check.state:
        transitions.append(Transition(check.state, state, event, result.output, index))
    return _settle(replace(health, checks=tuple(checks)), now, result.output, transitions)


def verdict(checks: tuple[CheckHealth, ...]) -> Event:
    """The combined verdict of a service's checks (all passing when there are none)."""
    if any(c.state is _C for c in checks):
        return _E.ANY_CRITICAL
    if all(c.state is _P for c in checks):
        return _E.ALL_PASSING
    return _E.UNSETTLED


def operator(health: MachineHealth, event: Event, now: float) -> Update:
    """The operator sets the machine to maint, drain or ready (back in rotation)."""
    if event not in OPERATOR_EVENTS:
        raise ValueError(f"{event} is not an operator event")
    cause = f"set to {event} by the operator"
    if event is _E.MAINT:
        health = replace(health, checks=_reset(health.checks))
    updated, transitions = _machine_step(health, event, now, cause, [])
    if event is _E.READY and health.started:
        return _settle(updated, now, cause, transitions)
    return Update(updated, transitions)


def machine_stopped(health: MachineHealth, now: float) -> Update:
    """The machine stopped: its checks stop and it is unknown (or keeps an admin state)."""
    stopped = replace(health, started=False, checks=_reset(health.checks))
    return _machine_step(stopped, _E.STOPPED, now, "machine stopped", [])


def machine_started(health: MachineHealth, now: float) -> Update:
    """The machine (re)started at ``now``: its grace period begins."""
    started = replace(health, started=True, started_at=now)
    updated, transitions = _machine_step(started, _E.STARTED, now, "machine started", [])
    return _settle(updated, now, "machine started", transitions)


def checks_replaced(health: MachineHealth, check_count: int, now: float) -> Update:
    """The service now has another number of checks: they start over, as after a start.

    An operator's maint or drain stays; otherwise the state follows the new checks.
    """
    fresh = replace(health, checks=(CheckHealth(),) * check_count, started_at=now)
    if not health.started:
        return Update(fresh, [])
    return _settle(fresh, now, "checks changed", [])


def _reset(checks: tuple[CheckHealth, ...]) -> tuple[CheckHealth, ...]:
    """Checks that stop: back to unknown with no streak; their results stay for status."""
    return tuple(
        CheckHealth(_step(CHECK_TRANSITIONS, c.state, _E.RESET), recent=c.recent) for c in checks
    )


def _settle(health: MachineHealth, now: float, cause: str, transitions: list[Transition]) -> Update:
    return _machine_step(health, verdict(health.checks), now, cause, transitions)


def _machine_step(
    health: MachineHealth, event: Event, now: float, cause: str, transitions: list[Transition]
) -> Update:
    state = _step(MACHINE_TRANSITIONS, health.state, event)
    if state is health.state:
        return Update(health, transitions)
    transitions.append(Transition(health.state, state, event, cause))
    return Update(replace(health, state=state, since=now), transitions)


# --- what routing sees -------------------------------------------------------------------


def routable(state: HealthState) -> bool:
    return state is _P


def admin_of(state: HealthState) -> Admin:
    if state is _M:
        return "maint"
    return "drain" if state is _D else ""


def apply_verdict(stats: EndpointStats, state: HealthState, now: float) -> None:
    """Write a (machine, service)'s state into the stats routing reads.

    A machine that becomes routable starts its slow-start ramp at ``now``.
    """
    ok = routable(state)
    if ok and not stats.healthy:
        stats.ready_since = now
    stats.healthy = ok
    stats.admin = admin_of(state)


# --- when checks run ---------------------------------------------------------------------


def next_check_delay(interval: float, jitter: float, rng: random.Random) -> float:
    """``interval x (1 +- jitter x u)``: spread so a fleet's checks do not fire in step."""
    return interval * (1.0 + jitter * (2.0 * rng.random() - 1.0))


def first_check_delay(interval: float, jitter: float, rng: random.Random) -> float:
    """A new machine's first check: soon, but spread over ``jitter x interval``."""
    return interval * jitter * rng.random()
