"""What it takes to run one process machine: its plan, environment and launcher.

The launcher is a few lines of Python run in the child before the app's command:
it asks the kernel to SIGKILL the child when edge dies (``PR_SET_PDEATHSIG``), checks
that edge did not die before that, and then becomes the command (``exec``), so the
app's process is the machine's process, in its own session and process group.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from edge.config.model import ProcessSpec

# Runs in the child before the app's command: die with edge, then become the command.
LAUNCHER = """
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # edge died between fork and prctl
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    print(f"edge: cannot run {sys.argv[2]}: {exc.strerror}", file=sys.stderr)
    os._exit(127)
"""

_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


@dataclass(frozen=True, slots=True)
class ProcessPlan:
    """Everything needed to run one process machine."""

    app: str
    machine_id: str
    region: str
    primary_region: str
    spec: ProcessSpec
    private_ip: str
    port: int  # PORT: the first service's internal port
    public_ip: str

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
        env.update(
            PORT=str(self.port),
            FLY_APP_NAME=self.app,
            FLY_MACHINE_ID=self.machine_id,
            FLY_ALLOC_ID=self.machine_id,
            FLY_REGION=self.region,
            FLY_PUBLIC_IP=self.public_ip,
            FLY_PRIVATE_IP=self.private_ip,
            PRIMARY_REGION=self.primary_region,
            FLY_PROCESS_GROUP=self.spec.process_group,
        )
        env.update(self.spec.env)
        return env


def describe_exit(code: int) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "exited cleanly" if code == 0 else f"exit status {code}"
