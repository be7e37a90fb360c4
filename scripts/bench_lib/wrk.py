"""wrk runs: the command, its output parsed, and the proxy's CPU time per request."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench_lib.procs import which

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Run:
    name: str
    target: str  # direct, haproxy-tcp, edge-tcp, haproxy-http, edge-http
    load: str  # keep-alive, close, paced
    connections: int
    seconds: float
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    non_2xx: int = 0
    proxy_cpu_us_per_req: float | None = None
    notes: list[str] = field(default_factory=list)


def parse_wrk(text: str, run: Run) -> None:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise RuntimeError(f"wrk output without Requests/sec:\n{text}")
    run.rps = float(rps.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if found:
            setattr(run, attr, float(found.group(1)) * _UNITS[found.group(2)])
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if errors:
        run.errors = sum(int(n) for n in errors.groups())
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    run.non_2xx = int(non_2xx.group(1)) if non_2xx else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children still alive (nginx: workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == pid or int(entry) == pid:  # fields[3]: process group
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_wrk(port: int, run: Run, pid: int | None, script: Path | None = None) -> Run:
    argv = [which("wrk") or "wrk", "-t1", f"-c{run.connections}", f"-d{run.seconds:g}s"]
    argv += ["--latency", "--timeout", "5s"]
    if run.load == "close":
        argv += ["-H", "Connection: close"]
    if script is not None:
        argv += ["-s", str(script)]
    before = cpu_seconds(pid) if pid else 0.0
    done = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=run.seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    parse_wrk(done.stdout, run)
    if pid and run.rps > 0:
        used = cpu_seconds(pid) - before
        run.proxy_cpu_us_per_req = used / (run.rps * run.seconds) * 1e6
    return run
