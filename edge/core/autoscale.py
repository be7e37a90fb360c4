"""Scale to zero: which machine autostop stops, which one autostart starts, and
when a process machine that exited is started again.

The platform's rules (flyio-dynamic.md 1b): a stop loop runs every few minutes and,
per region, stops at most one machine per pass when
``machines - (machines over the soft limit + 1) >= 1``, or when a region's lone
machine has had no load since the last pass; ``min_machines_running`` counts only in
the primary region. A request that finds no started machine (or every started one
at or over its soft limit) starts the nearest stopped one; a burst of requests starts
one machine, not one each. Everything here is a plain function over values: the
runtime (``edge.runtime.autoscale``, ``edge.runtime.supervisor``) gathers the values
and carries the verdicts out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from edge.config.model import RestartSpec

# --- autostop ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MachineLoad:
    """A started machine as the stop loop sees it."""

    machine_id: str
    region: str
    active: int  # connections or requests in flight now
    busy: bool  # it was chosen for traffic since the last pass
    over_soft: bool  # at or over its soft limit now


@dataclass(frozen=True, slots=True)
class StopOrder:
    machine_id: str
    region: str
    reason: str  # for people: why this machine, kept in its stop event and the audit


def _quietest(machines: Iterable[MachineLoad]) -> MachineLoad:
    # The least loaded, then one without traffic since the last pass, then by id
    # (a deterministic choice, so a pass can be tested and explained).
    return min(machines, key=lambda m: (m.active, m.busy, m.machine_id))


def _region_stop(
    region: str, machines: Sequence[MachineLoad], floor: int, interval: float
) -> StopOrder | None:
    count = len(machines)
    if count == 0 or count - 1 < floor:
        return None
    if count == 1:
        lone = machines[0]
        if lone.active or lone.busy:
            return None
        why = f"autostop: no load on the only machine in {region} for {interval:g}s"
        return StopOrder(lone.machine_id, region, why)
    over = sum(1 for m in machines if m.over_soft)
    excess = count - (over + 1)
    if excess < 1:
        return None
    chosen = _quietest(machines)
    why = (
        f"autostop: {count} machines running in {region}, {over} at or over the soft limit "
        f"(excess {excess})"
    )
    return StopOrder(chosen.machine_id, region, why)


def plan_autostop(
    running: Iterable[MachineLoad], primary_region: str, min_running: int, interval: float
) -> tuple[StopOrder, ...]:
    """At most one machine to stop per region this pass, never going below
    ``min_running`` started machines in ``primary_region``."""
    by_region: dict[str, list[MachineLoad]] = {}
    for machine in running:
        by_region.setdefault(machine.region, []).append(machine)
    orders = []
    for region in sorted(by_region):
        floor = min_running if region == primary_region else 0
        order = _region_stop(region, by_region[region], floor, interval)
        if order is not None:
            orders.append(order)
    return tuple(orders)


# --- autostart ---------------------------------------------------------------------------

StartState = Literal["stopped", "suspended", "starting", "failed"]


@dataclass(frozen=True, slots=True)
class StartCandidate:
    """A machine of the service that is not routable now."""

    machine_id: str
    region: str
    state: StartState  # failed: its last start failed a moment ago (not retried at once)
    rtt: float  # from the request's PoP, seconds
    why: str = ""  # for failed: the reason


@dataclass(frozen=True, slots=True)
class StartPlan:
    action: Literal["start", "wait", "none"]
    machine_id: str | None = None
    detail: str = ""


def plan_autostart(auto_start: bool, candidates: Iterable[StartCandidate]) -> StartPlan:
    """What a request that no started machine can take does: wait for a machine that is
    already starting (the nearest), start the nearest stopped or suspended one, or fail."""
    if not auto_start:
        return StartPlan("none", None, "auto_start_machines is off")
    ordered = sorted(candidates, key=lambda c: (c.rtt, c.state != "suspended", c.machine_id))
    starting = [c for c in ordered if c.state == "starting"]
    if starting:
        return StartPlan("wait", starting[0].machine_id, f"{starting[0].machine_id} is starting")
    startable = [c for c in ordered if c.state in ("stopped", "suspended")]
    if startable:
        chosen = startable[0]
        verb = "resume" if chosen.state == "suspended" else "start"
        return StartPlan(
            "start", chosen.machine_id, f"{verb} {chosen.machine_id} in {chosen.region}"
        )
    failed = [c for c in ordered if c.state == "failed"]
    if failed:
        return StartPlan(
            "none", None, f"machine {failed[0].machine_id} failed to start: {failed[0].why}"
        )
    return StartPlan("none", None, "no stopped machine to start")


# --- restarting a process that exited ----------------------------------------------------

BACKOFF_BASE = 0.5  # seconds before the first restart
BACKOFF_CAP = 30.0
STABLE_AFTER = 10.0  # a process that ran this long starts its retry count again


@dataclass(frozen=True, slots=True)
class RestartVerdict:
    restart: bool
    delay: float  # seconds to wait before starting it again
    attempts: int  # the retry count after this exit (pass it to the next verdict)
    reason: str


def backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, 4 s ... at most 30 s before restart number ``attempt + 1``."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt, 16)))


def after_exit(
    policy: RestartSpec, exit_code: int, attempts: int, ran_for: float, stop_requested: bool
) -> RestartVerdict:
    """Whether a process that exited with ``exit_code`` (negative: killed by that signal)
    after running ``ran_for`` seconds is started again, and after how long."""
    if stop_requested:
        return RestartVerdict(False, 0.0, 0, "stopped on request")
    attempts = 0 if ran_for >= STABLE_AFTER else attempts
    if policy.policy == "no":
        return RestartVerdict(False, 0.0, attempts, "restart policy is no")
    if policy.policy == "on-failure" and exit_code == 0:
        return RestartVerdict(False, 0.0, attempts, "exited cleanly (restart policy on-failure)")
    if policy.policy == "on-failure" and attempts >= policy.max_retries:
        why = f"gave up after {attempts} restart(s) (max_retries {policy.max_retries})"
        return RestartVerdict(False, 0.0, attempts, why)
    delay = backoff(attempts)
    return RestartVerdict(True, delay, attempts + 1, f"restart {attempts + 1} in {delay:g}s")
