"""``edge serve --workers N``: N processes of one node accepting on the same listeners.

The supervisor (the process the user started) serves nothing itself. It starts worker 0
(``edge serve ... --worker 0``), which bootstraps the store (admin token, configured
apps), waits until it says it serves, then starts the others. Every worker binds the
API and every listener with SO_REUSEPORT, so the kernel spreads connections between
them; they share the store and, through ``edge.cluster.tables``, one health picture
(the checks run in one worker: workers tie on PoPs, the first by name checks) and their
load. SIGTERM or SIGINT is passed on to every worker and the supervisor waits for them
to drain; a worker that dies otherwise is started again after ``RESTART_DELAY``.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge.cluster.tables import SqliteSharedTables
from edge.errors import StartupError

LOG = logging.getLogger("edge.workers")
READY_TIMEOUT = 60.0  # seconds a worker may take to start serving
RESTART_DELAY = 1.0


class Supervisor:
    def __init__(self, argv: Sequence[str], count: int, state_dir: Path) -> None:
        self.argv = list(argv)  # `edge serve ...` arguments, --workers included
        self.count = count
        self.state_dir = state_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        read_fd, write_fd = os.pipe()
        command = [sys.executable, "-m", "edge", *self.argv]
        command += ["--worker", str(index), "--ready-fd", str(write_fd)]
        proc = subprocess.Popen(command, pass_fds=(write_fd,))
        os.close(write_fd)
        try:
            self._wait_ready(read_fd, proc, index)
        finally:
            os.close(read_fd)
        self.procs[index] = proc
        LOG.info("worker started", extra={"worker": index, "pid": proc.pid})
        return proc

    @staticmethod
    def _wait_ready(fd: int, proc: subprocess.Popen[bytes], index: int) -> None:
        ready, _, _ = select.select([fd], [], [], READY_TIMEOUT)
        if ready and os.read(fd, 16).startswith(b"ready"):
            return
        code = proc.poll()
        if code is None:
            proc.kill()
            proc.wait()
            raise StartupError(f"worker {index} did not start within {READY_TIMEOUT:g} s")
        raise StartupError(f"worker {index} exited with {code} while starting (see its log)")

    def _signal_all(self, signum: int) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        self._signal_all(signum)

    def run(self) -> int:
        SqliteSharedTables.fresh(self.state_dir)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            for index in range(self.count):
                self._spawn(index)
        except BaseException:
            self._signal_all(signal.SIGTERM)
            self._reap()
            raise
        return self._watch()

    def _watch(self) -> int:
        while not self.stopping:
            for index, proc in list(self.procs.items()):
                code = proc.poll()
                if code is not None and not self.stopping:
                    LOG.warning("worker exited; starting it again", extra={"worker": index})
                    time.sleep(RESTART_DELAY)
                    try:
                        self._spawn(index)
                    except StartupError as exc:
                        LOG.error("cannot restart a worker", extra={"error": exc.message})
            time.sleep(0.2)
        return self._reap()

    def _reap(self) -> int:
        codes = [proc.wait() for proc in self.procs.values()]
        return max((c for c in codes if c > 0), default=0)


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_supervisor() -> None:
    """In a worker: get SIGTERM (and drain) if the supervisor dies, even by SIGKILL, so no
    worker is left holding the listeners of a node that is gone."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before the line above
        raise SystemExit(1)
