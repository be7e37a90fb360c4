"""Active health checks of a running daemon: timers, probes, and the verdicts routing reads.

``HealthMonitor.sync(snapshot)`` runs right after every routing rebuild, synchronously,
so no connection sees a new machine before its verdict is written. It keeps one record
per (app, machine, internal port) of the snapshot, the key ``RoutingState`` keeps
``EndpointStats`` by, and for each check of a started machine not in maintenance one
timer (``loop.call_later``). When a timer fires, a task runs the probe
(``edge.runtime.health_probes``), folds the result in through ``edge.core.health``,
writes the verdict into the machine's ``EndpointStats`` and sets the next timer
``interval x (1 +- jitter)`` after the check *began*, so a slow probe does not stretch
the period: with ``timeout <= interval``, a killed or hung machine is critical within
``fall x interval x (1 + jitter) + timeout``. Stopped machines are not checked, and the
records of machines gone are dropped.

Each change of a (machine, service)'s state is logged in one line, e.g. ``machine
hello-lhr-1 of hello is critical: connection refused``. ``states`` and ``results`` give
what ``edgectl machines list`` and ``edgectl checks list`` show; ``set_admin`` puts a
machine in maint or drain, or back in rotation. The values they return are defined in
``edge.runtime.health_status`` (and importable from here).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

from edge.config.model import CheckSpec, HttpCheckSpec
from edge.core import cluster, health
from edge.core.clock import Clock
from edge.core.health import CheckResult, Event, HealthState, MachineHealth, Transition
from edge.core.routing import Endpoint, RoutingSnapshot, ServiceRoutes
from edge.runtime.health_probes import ProbeOutcome, probe
from edge.runtime.health_status import (
    NO_CHECKS,
    CheckResultRow,
    CheckStatus,
    ServiceHealth,
    check_name,
    check_target,
)
from edge.runtime.tasks import spawn

__all__ = ["NO_CHECKS", "CheckResultRow", "CheckStatus", "HealthMonitor", "ServiceHealth"]

LOG = logging.getLogger("edge.health")

Key = tuple[str, str, int]  # (app, machine_id, internal_port)
AdminMode = Literal["maint", "drain", "ready"]
CheckOutcome = Literal["success", "failure", "timeout"]
CheckCounter = Callable[[str, str, CheckOutcome], None]  # (app, machine region, outcome)


# --- one watched (machine, service) ------------------------------------------------------


class _Runner:
    """The timer, or the probe in flight, of one check of one (machine, service)."""

    __slots__ = ("handle", "index", "stopped", "task")

    def __init__(self, index: int) -> None:
        self.index = index
        self.handle: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.task is not None:
            self.task.cancel()
            self.task = None


class _Watched:
    """A (machine, service) under watch: its current endpoint, checks, health and timers."""

    __slots__ = ("checks", "endpoint", "health", "key", "runners")

    def __init__(
        self, key: Key, endpoint: Endpoint, checks: tuple[CheckSpec, ...], state: MachineHealth
    ) -> None:
        self.key = key
        self.endpoint = endpoint  # replaced by each sync: where the machine listens now
        self.checks = checks
        self.health = state
        self.runners: list[_Runner] = []

    def stop_checks(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.runners = []

    def name(self, index: int) -> str:
        return check_name(index, self.checks[index], self.key[2])


def _services(snapshot: RoutingSnapshot) -> Iterator[ServiceRoutes]:
    """Each service once (an app maps every public port of a service to the same one)."""
    for app in snapshot.apps.values():
        yield from {id(service): service for service in app.services.values()}.values()


# --- the monitor -------------------------------------------------------------------------


class HealthMonitor:
    """Runs every service's tcp_checks and http_checks; owned by the data plane."""

    def __init__(
        self,
        rng: random.Random | None = None,
        on_check: CheckCounter | None = None,
        clock: Clock = time.monotonic,  # routing's clock: ready_since is compared with it
        wall_clock: Clock = time.time,
        on_exhausted: Callable[[str], None] | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self._on_check = on_check
        self._on_exhausted = on_exhausted  # the edge ran out of descriptors in a check
        self._clock = clock
        self._wall_clock = wall_clock
        self._watched: dict[Key, _Watched] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._synced = False  # the first sync is the daemon's start
        self._closed = False
        # In a cluster (edge.cluster.sharing): which (machine, service)s this node checks,
        # and the verdicts other nodes published for the rest.
        self._owns: Callable[[Key], bool] = lambda key: True
        self._remote: dict[Key, HealthState] = {}
        self._remote_why: dict[Key, str] = {}

    def sync(self, snapshot: RoutingSnapshot) -> None:
        """Bring records and timers in line with a new snapshot (call after each rebuild)."""
        if self._closed:
            return
        now = self._clock()
        live: set[Key] = set()
        for service in _services(snapshot):
            checks: tuple[CheckSpec, ...] = (*service.spec.tcp_checks, *service.spec.http_checks)
            for endpoint in service.endpoints:
                key = (endpoint.app, endpoint.machine_id, service.spec.internal_port)
                if key not in live:  # two services on one internal port share the stats
                    live.add(key)
                    self._sync_endpoint(key, endpoint, checks, now)
        for key in [key for key in self._watched if key not in live]:
            self._watched.pop(key).stop_checks()
        self._synced = True

    def _sync_endpoint(
        self, key: Key, endpoint: Endpoint, checks: tuple[CheckSpec, ...], now: float
    ) -> None:
        watched = self._watched.get(key)
        if watched is None:
            self._watch(key, endpoint, checks, now)
            return
        changed = watched.checks != checks
        if changed:
            self._replace_checks(watched, checks, now)
        was_started = watched.health.started
        watched.endpoint = endpoint
        if endpoint.started and not was_started:
            self._apply(watched, health.machine_started(watched.health, now), now)
            self._start_checks(watched)
        elif was_started and not endpoint.started:
            watched.stop_checks()
            self._apply(watched, health.machine_stopped(watched.health, now), now)
        else:  # the same state, written again in case the stats object is new
            health.apply_verdict(endpoint.stats, self._routing_state(watched), now)
            if changed:
                self._start_checks(watched)

    def _watch(
        self, key: Key, endpoint: Endpoint, checks: tuple[CheckSpec, ...], now: float
    ) -> None:
        """Start watching a (machine, service) first seen now."""
        if self._synced:
            # A machine added while running ramps up (slow start) once it is routable;
            # those found at the daemon's start do not, as in HAProxy.
            endpoint.stats.healthy = False
        update = health.new_machine(len(checks), now, endpoint.started)
        watched = self._watched[key] = _Watched(key, endpoint, checks, update.health)
        self._apply(watched, update, now)
        self._start_checks(watched)

    def _replace_checks(self, watched: _Watched, checks: tuple[CheckSpec, ...], now: float) -> None:
        """The service was deployed with other checks; the caller restarts the timers.

        As many checks as before (new settings, say): what they found still holds, so a
        redeploy does not take a healthy fleet out of rotation. Otherwise they start over.
        """
        watched.stop_checks()
        count = len(watched.checks)
        watched.checks = checks
        if len(checks) != count:
            self._apply(watched, health.checks_replaced(watched.health, len(checks), now), now)

    def _start_checks(self, watched: _Watched) -> None:
        if not watched.checks or not watched.endpoint.started or not self._owns(watched.key):
            return
        if watched.health.state is HealthState.MAINT:
            return  # maint stops the checks (HAProxy); ``ready`` starts them again
        loop = asyncio.get_running_loop()
        for index, check in enumerate(watched.checks):
            runner = _Runner(index)
            delay = health.first_check_delay(check.interval, check.jitter, self._rng)
            runner.handle = loop.call_later(delay, self._fire, watched, runner)
            watched.runners.append(runner)

    def _fire(self, watched: _Watched, runner: _Runner) -> None:
        runner.handle = None
        app, machine_id, _ = watched.key
        name = f"health-check {app}/{machine_id}/{watched.name(runner.index)}"
        task = runner.task = spawn(self._run_check(watched, runner), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_check(self, watched: _Watched, runner: _Runner) -> None:
        check = watched.checks[runner.index]
        endpoint = watched.endpoint
        began, at = self._clock(), self._wall_clock()
        try:
            outcome = await probe(check, endpoint.host, endpoint.port)
        except Exception:  # a bug in a probe must not end the machine's checks for good
            LOG.exception("health check %s failed unexpectedly", watched.name(runner.index))
            outcome = ProbeOutcome(False, "internal error in the check (see the log)")
        if runner.stopped:
            return
        runner.task = None
        now = self._clock()
        if outcome.edge_exhausted:  # the edge's own state, not the machine's: no verdict
            if self._on_exhausted is not None:
                self._on_exhausted("health_check")
        else:
            result = CheckResult(at, outcome.ok, outcome.output, now - began, outcome.timed_out)
            update = health.record(watched.health, runner.index, result, check, now)
            self._apply(watched, update, now)
            self._count(endpoint, result)
        delay = began + health.next_check_delay(check.interval, check.jitter, self._rng) - now
        runner.handle = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._fire, watched, runner
        )

    def _apply(self, watched: _Watched, update: health.Update, now: float) -> None:
        watched.health = update.health
        health.apply_verdict(watched.endpoint.stats, self._routing_state(watched), now)
        for transition in update.transitions:
            self._log(watched, transition)

    def _log(self, watched: _Watched, transition: Transition) -> None:
        app, machine_id, port = watched.key
        new = transition.new
        if transition.check is not None:
            name = watched.name(transition.check)
            LOG.debug("check %s of machine %s is %s: %s", name, machine_id, new, transition.cause)
            return
        admin = {HealthState.MAINT, HealthState.DRAIN}
        if not watched.checks and not admin & {transition.old, new}:
            return  # without checks a started machine is simply passing: nothing to say
        LOG.log(
            logging.WARNING if new is HealthState.CRITICAL else logging.INFO,
            "machine %s of %s is %s: %s",
            *(machine_id, app, new, transition.cause),
            extra={"app": app, "machine": machine_id, "port": port, "was": str(transition.old)},
        )

    def _count(self, endpoint: Endpoint, result: CheckResult) -> None:
        if self._on_check is not None:
            outcome: CheckOutcome = "timeout" if result.timed_out else "failure"
            self._on_check(endpoint.app, endpoint.region, "success" if result.ok else outcome)

    # --- the operator ----------------------------------------------------------------------

    def set_admin(self, app: str, machine_id: str, mode: AdminMode) -> list[ServiceHealth]:
        """Put a machine (every service of it) in maint or drain, or back in rotation.

        In memory only, like HAProxy's runtime ``set server state``: a daemon restart
        forgets it. Returns the new states; empty when the machine is unknown here.
        """
        now = self._clock()
        event = Event(mode)
        found = self._of_machine(app, machine_id)
        for watched in found:
            was_maint = watched.health.state is HealthState.MAINT
            self._apply(watched, health.operator(watched.health, event, now), now)
            if watched.health.state is HealthState.MAINT:
                watched.stop_checks()  # maint stops the checks too (HAProxy)
            elif was_maint:
                self._start_checks(watched)
        return [self._status(watched) for watched in found]

    # --- a cluster: checks run by one node, verdicts shared ---------------------------------

    def _routing_state(self, watched: _Watched) -> HealthState:
        """This node's verdict, or for a machine another node checks, that node's (the
        operator's maint and drain, and a stopped machine, still come first)."""
        remote = self._remote.get(watched.key)
        return remote if remote is not None and self._uses_remote(watched) else watched.health.state

    def _uses_remote(self, watched: _Watched) -> bool:
        key, health = watched.key, watched.health
        remote = self._remote.get(key)
        return cluster.uses_remote(health.state, health.started, self._owns(key), remote)

    def set_ownership(self, owns: Callable[[Key], bool]) -> None:
        """Run the checks of what ``owns`` says (and stop the others' checks)."""
        self._owns = owns
        now = self._clock()
        for watched in self._watched.values():
            if owns(watched.key) and not watched.runners:
                self._start_checks(watched)
            elif not owns(watched.key) and watched.runners:
                watched.stop_checks()
            health.apply_verdict(watched.endpoint.stats, self._routing_state(watched), now)

    def adopt(self, verdicts: Mapping[Key, tuple[HealthState, str]]) -> None:
        """Route the machines this node does not check on other nodes' ``verdicts``
        (each a state and whose it is, how fresh)."""
        self._remote = {key: state for key, (state, _) in verdicts.items()}
        self._remote_why = {key: why for key, (_, why) in verdicts.items()}
        now = self._clock()
        for key, watched in self._watched.items():
            if not self._owns(key):
                health.apply_verdict(watched.endpoint.stats, self._routing_state(watched), now)

    def owned_verdicts(self) -> dict[Key, bool]:
        """Whether each (machine, service) this node checks passes, for the others."""
        return {
            key: watched.health.state is HealthState.PASSING
            for key, watched in self._watched.items()
            if self._owns(key) and watched.checks and watched.health.started
        }

    def watched(self) -> dict[Key, str]:
        """Every (machine, service) under watch and its machine's region."""
        return {key: watched.endpoint.region for key, watched in self._watched.items()}

    # --- status ----------------------------------------------------------------------------

    def states(self, app: str, machine_id: str) -> list[ServiceHealth]:
        """The machine's health per service, by internal port."""
        return [self._status(watched) for watched in self._of_machine(app, machine_id)]

    def results(self, app: str, machine_id: str) -> list[CheckResultRow]:
        """The machine's recent check results (the last few per check), newest first."""
        rows = [
            CheckResultRow(watched.key[2], watched.name(index), r.at, r.ok, r.output, r.duration)
            for watched in self._of_machine(app, machine_id)
            for index, check in enumerate(watched.health.checks)
            for r in check.recent
        ]
        return sorted(rows, key=lambda row: row.at, reverse=True)

    def _of_machine(self, app: str, machine_id: str) -> list[_Watched]:
        found = [w for (a, m, _), w in self._watched.items() if a == app and m == machine_id]
        return sorted(found, key=lambda watched: watched.key[2])

    def _status(self, watched: _Watched) -> ServiceHealth:
        app, machine_id, port = watched.key
        endpoint, state = watched.endpoint, watched.health
        checks = tuple(
            CheckStatus(
                name=watched.name(index),
                type="http" if isinstance(check, HttpCheckSpec) else "tcp",
                target=check_target(check, endpoint.host, endpoint.port),
                state=checked.state,
                passes=checked.passes,
                failures=checked.failures,
                last=checked.recent[-1] if checked.recent else None,
            )
            for index, (check, checked) in enumerate(zip(watched.checks, state.checks, strict=True))
        )
        since = self._wall_clock() - (self._clock() - state.since)
        shown = self._routing_state(watched)
        by = self._remote_why[watched.key] if self._uses_remote(watched) else "this node"
        return ServiceHealth(
            app, machine_id, endpoint.region, port, state.started, shown, since, checks, by
        )

    async def close(self) -> None:
        """Stop every timer and probe; the monitor does nothing afterwards."""
        self._closed = True
        for watched in self._watched.values():
            watched.stop_checks()
        self._watched.clear()
        tasks = list(self._tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
