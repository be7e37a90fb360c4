"""Process machines: the app's own command, run and watched by edge.

Each machine is a child process in its own process group (``start_new_session``),
started through a tiny launcher that asks the kernel to kill it when edge dies
(``PR_SET_PDEATHSIG``), so even a SIGKILLed edge leaves no machine running. The
machine listens on its own loopback address (``FLY_PRIVATE_IP``) at ``PORT``; it is
"started" only once that port accepts. Stopping sends ``kill_signal`` to the group,
then SIGKILL after ``kill_timeout``. A process that exits is restarted or not by its
restart policy (``edge.core.autoscale.after_exit``); one that never comes up (missing
binary, exits at once, never opens its port within ``start_timeout``) ends in the
``failed`` state with the reason and its last lines of output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from edge.core.autoscale import after_exit
from edge.runtime.machine_logs import MachineLogs
from edge.runtime.process_plan import LAUNCHER, ProcessPlan, describe_exit
from edge.runtime.tasks import spawn

LOG = logging.getLogger("edge.machines")

RunState = Literal["stopped", "starting", "started", "stopping", "suspended", "failed"]
READY_POLL = 0.05  # seconds between tries of the machine's port while it starts
TAIL_LINES = 10  # output lines kept in a failure's explanation

Event = Callable[[str, str, str, int | None], None]  # (key, kind, detail, exit code)
Settled = Callable[[str, str], None]  # (key, reason): the process is gone for good


class ProcessMachine:
    """One process machine and the task that runs it."""

    def __init__(self, plan: ProcessPlan, logs: MachineLogs, owner: Supervisor) -> None:
        self.plan = plan
        self.logs = logs
        self.owner = owner
        self.state: RunState = "stopped"
        self.error = ""  # why it failed, with its last lines of output
        self.pid: int | None = None
        self.exit_code: int | None = None
        self.started_at = 0.0  # monotonic: when it last became ready
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = False
        self._wake = asyncio.Event()  # interrupts a restart backoff
        self._stopping: asyncio.Task[None] | None = None  # a stop going on in the background
        self._start_after_stop = False

    @property
    def key(self) -> str:
        return f"{self.plan.app}/{self.plan.machine_id}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run it (and keep it running per its restart policy) unless it already runs."""
        if self._stopping is not None:
            self._start_after_stop = True  # started again while stopping: once it is down
            return
        if self.state == "suspended":
            self.resume()
            return
        if self.running:
            return
        self._stop_requested = False
        self.error = ""
        self._task = spawn(self._run(), name=f"machine {self.key}")

    def stop_soon(self) -> None:
        """Stop it in the background (a long kill_timeout must not hold the caller)."""
        self._start_after_stop = False
        if self._stopping is None and (self.running or self.state == "suspended"):
            self._stopping = spawn(self._stop_then_maybe_start(), name=f"stop {self.key}")

    async def _stop_then_maybe_start(self) -> None:
        try:
            await self.stop()
        finally:
            self._stopping = None
        if self._start_after_stop:
            self._start_after_stop = False
            self.start()

    async def stop(self) -> None:
        """Stop it: ``kill_signal`` to its group, SIGKILL after ``kill_timeout``."""
        self._stop_requested = True
        self._wake.set()
        task = self._task
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self.state = "stopping"
            await self._terminate(proc)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.state != "failed":
            self.state = "stopped"

    def suspend(self) -> bool:
        """Freeze a started process (SIGSTOP to its group); whether it was frozen."""
        if self.state != "started" or self.pid is None:
            return False
        self._signal_group(signal.SIGSTOP)
        self.state = "suspended"
        self.owner.emit(self.key, "suspended", "frozen with SIGSTOP", None)
        return True

    def resume(self) -> None:
        if self.state != "suspended":
            return
        self._signal_group(signal.SIGCONT)
        self.state = "started"
        self.started_at = time.monotonic()
        self.owner.emit(self.key, "started", "resumed with SIGCONT", None)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        spec = self.plan.spec
        self._signal_group(signal.Signals[spec.kill_signal])
        self._signal_group(signal.SIGCONT)  # a suspended process must run to handle it
        try:
            await asyncio.wait_for(proc.wait(), spec.kill_timeout)
        except TimeoutError:
            self.logs.note(
                self.plan.app,
                self.plan.machine_id,
                f"still running {spec.kill_timeout:g}s after {spec.kill_signal}: SIGKILL",
            )
            self._signal_group(signal.SIGKILL)
            await proc.wait()
        # Whatever else the command started in its group goes with it.
        self._signal_group(signal.SIGKILL)

    # --- the run loop --------------------------------------------------------------------

    async def _run(self) -> None:
        attempts = 0
        while not self._stop_requested:
            began = time.monotonic()
            code = await self._run_once()
            if code is None:  # could not even be spawned: nothing to restart
                break
            ran_for = time.monotonic() - began
            verdict = after_exit(
                self.plan.spec.restart, code, attempts, ran_for, self._stop_requested
            )
            attempts = verdict.attempts
            if not verdict.restart:
                if not self._stop_requested:
                    await self._give_up(code, verdict.reason)
                break
            self.restarts += 1
            self.state = "starting"
            self.owner.emit(self.key, "restarting", verdict.reason, code)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), verdict.delay)

    async def _give_up(self, code: int, reason: str) -> None:
        self.state = "failed" if self.error else "stopped"
        if self.error:
            self.owner.emit(self.key, "failed", self.error, code)
        self.owner.settled(self.key, f"exited code={code}; {reason}")

    async def _run_once(self) -> int | None:
        """Start the process, wait until it is ready, then until it exits; its exit code
        (None when it could not be started at all)."""
        plan = self.plan
        self.state, self.started_at, self.exit_code = "starting", 0.0, None
        proc = await self._spawn()
        if proc is None:
            return None
        self._proc, self.pid = proc, proc.pid
        readers = [
            spawn(self._pump(proc.stdout, "stdout"), name=f"stdout {self.key}"),
            spawn(self._pump(proc.stderr, "stderr"), name=f"stderr {self.key}"),
        ]
        command = " ".join(plan.spec.command)
        self.owner.emit(self.key, "launched", f"pid {proc.pid}: {command}", None)
        if await self._wait_ready(proc):
            self.state, self.started_at, self.error = "started", time.monotonic(), ""
            self.owner.emit(
                self.key, "started", f"listening on {plan.private_ip}:{plan.port}", None
            )
            self.owner.ready_changed()
        elif proc.returncode is None and not self._stop_requested:
            self.error = (
                f"waking the machine timed out: it did not accept connections on "
                f"{plan.private_ip}:{plan.port} within start_timeout {plan.spec.start_timeout:g}s"
            )
            await self._terminate(proc)
        code = await proc.wait()
        await asyncio.gather(*readers, return_exceptions=True)
        self.logs.release(plan.app, plan.machine_id)  # no descriptor kept while it is down
        self._proc, self.pid, self.exit_code = None, None, code
        was_ready = self.started_at > 0
        if not was_ready and not self._stop_requested:
            self.error = self._with_tail(
                self.error or f"exited with code {code} before it was ready"
            )
        self.state = "stopped"
        kind = "stopped" if self._stop_requested else "exited"
        self.owner.emit(self.key, kind, describe_exit(code), code)
        if was_ready:
            self.owner.ready_changed()
        return code

    def _with_tail(self, reason: str) -> str:
        tail = self.logs.tail(self.plan.app, self.plan.machine_id, TAIL_LINES)
        return reason + ("; last output: " + " | ".join(tail) if tail else "; no output")

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        plan = self.plan
        command = plan.spec.command
        env = plan.environment()
        workdir = plan.spec.workdir or os.getcwd()
        if not Path(workdir).is_dir():
            self._cannot_start(f"workdir {workdir} is not a directory")
            return None
        found = shutil.which(command[0], path=env.get("PATH")) if "/" not in command[0] else None
        if "/" in command[0]:
            path = Path(workdir, command[0])
            found = str(path) if os.access(path, os.X_OK) and path.is_file() else None
        if found is None:
            self._cannot_start(f"command not found or not executable: {command[0]}")
            return None
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                "-c",
                LAUNCHER,
                str(os.getpid()),
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
        except OSError as exc:
            self._cannot_start(f"cannot start {command[0]}: {exc.strerror}")
            return None

    def _cannot_start(self, reason: str) -> None:
        self.state, self.error = "failed", reason
        self.owner.emit(self.key, "failed", reason, None)
        self.owner.settled(self.key, f"failed: {reason}")

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> bool:
        """Until the port accepts (True), the process exits or start_timeout (False)."""
        plan = self.plan
        deadline = time.monotonic() + plan.spec.start_timeout
        while proc.returncode is None and not self._stop_requested:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(plan.private_ip, plan.port), READY_POLL * 4
                )
            except (OSError, TimeoutError):
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(READY_POLL)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return proc.returncode is None
        return False

    async def _pump(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        app, machine_id = self.plan.app, self.plan.machine_id
        while chunk := await stream.read(65536):
            self.logs.feed(app, machine_id, name, chunk)
        self.logs.flush(app, machine_id, name)


class Supervisor:
    """Every process machine of one daemon, by ``app/machine`` key."""

    def __init__(
        self, logs: MachineLogs, on_event: Event, on_settled: Settled, on_ready: Callable[[], None]
    ) -> None:
        self.logs = logs
        self.machines: dict[str, ProcessMachine] = {}
        self._removed: set[ProcessMachine] = set()  # removed from the app, maybe still stopping
        self._on_event = on_event
        self._on_settled = on_settled
        self._on_ready = on_ready

    def emit(self, key: str, kind: str, detail: str, code: int | None) -> None:
        app, _, machine_id = key.partition("/")
        text = kind if not detail else f"{kind}: {detail}"
        self.logs.note(app, machine_id, text)
        LOG.info(
            "machine %s of %s %s", machine_id, app, text, extra={"app": app, "machine": machine_id}
        )
        self._on_event(key, kind, detail, code)

    def settled(self, key: str, reason: str) -> None:
        # Not awaited by the machine's task: recording it applies the change, which
        # may wait for that very task to end.
        self._on_settled(key, reason)

    def ready_changed(self) -> None:
        self._on_ready()

    async def sync(self, wanted: Mapping[str, tuple[ProcessPlan, str]]) -> None:
        """Make the processes match ``wanted``: key -> (plan, stored state)."""
        self._removed = {m for m in self._removed if m.running}
        for key in [k for k in self.machines if k not in wanted]:
            gone = self.machines.pop(key)
            gone.stop_soon()
            self._removed.add(gone)  # close_all still waits for it
        for key, (plan, state) in wanted.items():
            machine = self.machines.get(key)
            if machine is not None and machine.plan != plan:
                await machine.stop()  # its command, env or address changed: run it anew
                machine = None
            if machine is None:
                machine = self.machines[key] = ProcessMachine(plan, self.logs, self)
            await self._apply(machine, state)

    async def _apply(self, machine: ProcessMachine, state: str) -> None:
        if state == "started":
            machine.start()
        elif state == "suspended":
            if not machine.suspend() and machine.state != "suspended":
                machine.stop_soon()
        else:
            machine.stop_soon()

    def get(self, key: str) -> ProcessMachine | None:
        return self.machines.get(key)

    def is_ready(self, key: str) -> bool:
        machine = self.machines.get(key)
        return machine is not None and machine.state == "started"

    async def close_all(self) -> None:
        """Stop every machine at once (each within its kill_timeout)."""
        machines, self.machines = [*self.machines.values(), *self._removed], {}
        await asyncio.gather(*(m.stop() for m in machines), return_exceptions=True)
        self.logs.close()
