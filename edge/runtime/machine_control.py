"""The daemon's side of machines it runs: state changes and events through the store.

Autostart, autostop and the supervisor never write the store themselves: they call
this, which writes (audited, with the reason), records the machine's event and
applies the change to the data plane, like an API call would.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edge.core.apps import parse_machine_state
from edge.errors import EdgeError
from edge.runtime.dataplane import MachineHooks
from edge.runtime.metrics import Metrics
from edge.runtime.store_runner import StoreRunner
from edge.runtime.tasks import spawn
from edge.store import Caller

LOG = logging.getLogger("edge.machines")


def exit_outcome(code: int) -> str:
    return "clean" if code == 0 else "killed" if code < 0 else "failed"


class DaemonMachineControl(MachineHooks):
    def __init__(
        self,
        store: StoreRunner,
        refresh: Callable[[], Awaitable[Any]],
        metrics: Metrics,
        regions: Callable[[str, str], str],
        reasons: dict[tuple[str, str], str],
    ) -> None:
        self._reasons = reasons  # the data plane's: shown with the machine
        self._store = store
        self._refresh = refresh
        self._metrics = metrics
        self._region = regions  # (app, machine) -> region, for metric labels

    async def set_state(
        self, app: str, machine_id: str, state: str, reason: str, actor: str
    ) -> None:
        store = self._store.store
        await self._store.call(
            store.set_machine_state,
            app,
            machine_id,
            parse_machine_state(state),
            by=Caller(actor),
            reason=reason,
        )
        why = reason.removeprefix(f"{actor}: ")
        self._reasons[(app, machine_id)] = f"{state} by {actor}: {why}"
        await self._refresh()

    def event(self, key: str, kind: str, detail: str, code: int | None) -> None:
        app, _, machine_id = key.partition("/")
        region = self._region(app, machine_id)
        if kind == "started":
            self._metrics.machine_starts.labels(app, region, "process").inc()
        elif kind in ("exited", "stopped") and code is not None:
            self._metrics.machine_exits.labels(app, region, exit_outcome(code)).inc()
        spawn(self._record(app, machine_id, kind, detail, code), name=f"event {key}")

    async def _record(
        self, app: str, machine_id: str, kind: str, detail: str, code: int | None
    ) -> None:
        store = self._store.store
        try:
            await self._store.call(
                store.record_machine_event, app, machine_id, kind, detail, exit_code=code
            )
        except Exception as exc:  # the app is gone, or the store is: the log has it
            LOG.warning("cannot keep a machine event", extra={"error": str(exc)})

    def settled(self, key: str, reason: str) -> None:
        app, _, machine_id = key.partition("/")
        spawn(self._settle(app, machine_id, reason), name=f"settle {key}")

    async def _settle(self, app: str, machine_id: str, reason: str) -> None:
        try:
            await self.set_state(app, machine_id, "stopped", reason, "supervisor")
        except EdgeError as exc:
            LOG.warning("cannot record a stopped machine", extra={"error": exc.message})
