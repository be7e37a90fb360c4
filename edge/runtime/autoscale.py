"""Autostart and autostop, carried out: the shell around ``edge.core.autoscale``.

``AutoStarter`` is what a router asks when no started machine can take a request: it
starts the nearest stopped machine (once, however many requests arrive) and hands
back the wait queue those requests wait in (``edge.runtime.capacity``: the relays
already wait there for a free slot, so waiting for a start is no new path in them).
When the machine is routable the queue is woken and every waiter chooses again; the
cold start is measured (a histogram per app and region, a log line, and the route
explanation's ``last_cold_start``). ``AutoStopper`` runs the stop loop every
``edge.autostop_interval``.

Starting and stopping go through the store (``MachineControl``), so the state a
machine is in, and why (the audit entry and the machine's events), is the same for
the API, the dashboard and other edges sharing the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.core import autoscale as rules
from edge.core.error_codes import ErrorCode
from edge.core.routing import RoutingSnapshot, ServiceRoutes
from edge.runtime.capacity import WaitQueue
from edge.runtime.metrics import Metrics
from edge.runtime.tasks import spawn

LOG = logging.getLogger("edge.autoscale")
FAILED_HOLD = 5.0  # seconds a machine that failed to start is not tried again by autostart
WAIT_MARGIN = 1.0  # the queue outlives the start by this much: waiters hear how it ended


class MachineControl(Protocol):
    """What autoscaling needs from the daemon: change a machine's stored state."""

    async def set_state(
        self, app: str, machine_id: str, state: str, reason: str, actor: str
    ) -> None:
        """Write the state (audited with ``reason``), record the event, apply the change."""
        ...


@dataclass(frozen=True, slots=True)
class ColdStart:
    app: str
    machine_id: str
    region: str
    seconds: float
    waiters: int  # requests or connections that waited for it
    at: float  # unix time

    def sentence(self) -> str:
        return f"waited {self.seconds * 1000:.0f} ms for {self.machine_id} to start"


class _Pending:
    __slots__ = ("began", "queue", "region")

    def __init__(self, timeout: float, region: str) -> None:
        self.queue = WaitQueue(timeout)
        self.began = time.monotonic()
        self.region = region


StateOf = Callable[[str, str], str | None]  # (app, machine) -> starting / failed / None
Routable = Callable[[str, str], bool]
Failure = Callable[[str, str], str]  # why the machine failed, once it has


class AutoStarter:
    def __init__(
        self,
        snapshot: Callable[[], RoutingSnapshot],
        metrics: Metrics,
        runtime_state: StateOf,
        stored_state: Callable[[str, str], str],
        start_timeout: Callable[[str, str], float],
    ) -> None:
        self._snapshot = snapshot
        self._metrics = metrics
        self._runtime_state = runtime_state
        self._stored_state = stored_state
        self._start_timeout = start_timeout
        self.control: MachineControl | None = None
        self._pending: dict[tuple[str, str], _Pending] = {}
        # Machines whose last start failed: when, why, and the platform's code for it.
        self._failed: dict[tuple[str, str], tuple[float, str, ErrorCode]] = {}
        self.error_of: Callable[[str, str], str] = lambda app, machine_id: ""
        self.last: dict[str, ColdStart] = {}  # the latest cold start of each app
        self.changed = asyncio.Event()  # set whenever routing was rebuilt

    def _candidate(
        self, service: ServiceRoutes, machine_id: str, region: str, pop: str
    ) -> rules.StartCandidate:
        key = (service.app, machine_id)
        rtt = self._snapshot().model.rtt(pop, region) if pop else 0.0
        failed = self._failed.get(key)
        if key in self._pending or self._runtime_state(*key) == "starting":
            state: rules.StartState = "starting"
        elif failed is not None and time.monotonic() - failed[0] < FAILED_HOLD:
            return rules.StartCandidate(machine_id, region, "failed", rtt, failed[1])
        elif self._stored_state(*key) == "suspended":
            state = "suspended"
        else:
            state = "stopped"
        return rules.StartCandidate(machine_id, region, state, rtt)

    def admit(
        self, service: ServiceRoutes, pop: str, cause: str = "found no machine to take it"
    ) -> tuple[WaitQueue | None, str, ErrorCode | None]:
        candidates = [
            self._candidate(service, ep.machine_id, ep.region, pop)
            for ep in service.endpoints
            if not ep.started
        ]
        plan = rules.plan_autostart(service.spec.auto_start_machines, candidates)
        if plan.action == "none" or plan.machine_id is None or self.control is None:
            failed = [
                self._failed[(service.app, c.machine_id)] for c in candidates if c.state == "failed"
            ]
            return None, plan.detail, (failed[0][2] if failed else None)
        key = (service.app, plan.machine_id)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._begin(key, service, plan, f"a request at PoP {pop or '?'} {cause}")
        timeout = pending.queue.timeout - WAIT_MARGIN
        why = f"machine {plan.machine_id} did not start within {timeout:g}s"
        return pending.queue, why, ErrorCode.PM03

    def over_soft(self, service: ServiceRoutes, pop: str) -> None:
        if not service.spec.auto_start_machines:
            return
        soft = service.spec.concurrency.soft_limit
        if all(ep.stats.active >= soft for ep in service.started):
            self.admit(service, pop, "found every started machine at its soft limit")

    def _begin(
        self, key: tuple[str, str], service: ServiceRoutes, plan: rules.StartPlan, cause: str
    ) -> _Pending:
        endpoint = service.by_machine[key[1]]
        pending = _Pending(self._start_timeout(*key) + WAIT_MARGIN, endpoint.region)
        self._pending[key] = pending
        why = f"{plan.detail}: {cause}"
        spawn(self._start(key, pending, why), name=f"autostart {key[0]}/{key[1]}")
        return pending

    async def _start(self, key: tuple[str, str], pending: _Pending, detail: str) -> None:
        app, machine_id = key
        why = ""
        try:
            assert self.control is not None
            await self.control.set_state(
                app, machine_id, "started", f"autostart: {detail}", "autostart"
            )
            why = await self._until_routable(
                key, pending.began + pending.queue.timeout - WAIT_MARGIN
            )
        except Exception as exc:  # the store is down, or anything else: the waiters must hear
            why = f"could not start: {exc}"
        finally:
            del self._pending[key]
        waiters = len(pending.queue)
        if why:
            code = ErrorCode.PM03 if "timed out" in why else ErrorCode.PM08
            if why == "timed out":
                why = f"waking the machine timed out after {pending.queue.timeout - WAIT_MARGIN:g}s"
            self._failed[key] = (time.monotonic(), why, code)
            self._metrics.autostart_waits.labels(app, "failed").inc(waiters)
            LOG.warning(
                "autostart of machine %s of %s failed: %s",
                machine_id,
                app,
                why,
                extra={"app": app, "machine": machine_id},
            )
        else:
            self._record(key, pending, waiters)
        pending.queue.wake_all()

    def _record(self, key: tuple[str, str], pending: _Pending, waiters: int) -> None:
        app, machine_id = key
        cold = ColdStart(
            app, machine_id, pending.region, time.monotonic() - pending.began, waiters, time.time()
        )
        self.last[app] = cold
        self._failed.pop(key, None)
        self._metrics.machine_cold_start.labels(app, pending.region).observe(cold.seconds)
        self._metrics.autostart_waits.labels(app, "started").inc(waiters)
        LOG.info(
            "cold start: %s (%d waiting)",
            cold.sentence(),
            waiters,
            extra={
                "app": app,
                "machine": machine_id,
                "cold_start_ms": round(cold.seconds * 1000, 1),
            },
        )

    def is_starting(self, app: str, machine_id: str) -> bool:
        return (app, machine_id) in self._pending

    def routable(self, app: str, machine_id: str) -> bool:
        routes = self._snapshot().apps.get(app)
        if routes is None:
            return False
        return any(
            (ep := s.by_machine.get(machine_id)) is not None and ep.started
            for s in routes.services.values()
        )

    async def _until_routable(self, key: tuple[str, str], deadline: float) -> str:
        """'' once the machine takes traffic; else why not (failed, or out of time)."""
        while not self.routable(*key):
            if self._runtime_state(*key) == "failed":
                return self.error_of(*key) or "the machine failed to start"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timed out"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.25))
        return ""


class AutoStopper:
    """The stop loop: every ``interval`` seconds, at most one machine per region."""

    def __init__(
        self, snapshot: Callable[[], RoutingSnapshot], interval: float, metrics: Metrics
    ) -> None:
        self._snapshot = snapshot
        self.interval = interval
        self._metrics = metrics
        self.control: MachineControl | None = None
        self._picks: dict[tuple[str, str], int] = {}  # at the last pass

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_pass()
            except Exception:
                LOG.exception("autostop pass failed")

    async def run_pass(self) -> None:
        snapshot = self._snapshot()
        for app in snapshot.apps.values():
            services = {s.spec.internal_port: s for s in app.services.values()}
            stopping = [s for s in services.values() if s.spec.auto_stop_machines != "off"]
            if not stopping or self.control is None:
                continue
            action = "suspended" if stopping[0].spec.auto_stop_machines == "suspend" else "stopped"
            floor = max(s.spec.min_machines_running for s in stopping)
            for order in rules.plan_autostop(
                self._loads(stopping), app.primary_region, floor, self.interval
            ):
                await self.control.set_state(
                    app.name, order.machine_id, action, order.reason, "autostop"
                )
                self._metrics.autostops.labels(app.name, order.region, action).inc()

    def _loads(self, services: list[ServiceRoutes]) -> list[rules.MachineLoad]:
        loads: dict[str, rules.MachineLoad] = {}
        for service in services:
            soft = service.spec.concurrency.soft_limit
            for ep in service.started:
                key = (service.app, ep.machine_id)
                busy = ep.stats.picks != self._picks.get(key, 0)
                self._picks[key] = ep.stats.picks
                seen = loads.get(ep.machine_id)
                active = ep.stats.active + (seen.active if seen else 0)
                loads[ep.machine_id] = rules.MachineLoad(
                    ep.machine_id,
                    ep.region,
                    active,
                    busy or bool(seen and seen.busy),
                    ep.stats.active >= soft or bool(seen and seen.over_soft),
                )
        return list(loads.values())
