"""Thin shell-outs to ``ip`` and friends, and the lab's processes in namespaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from edge.errors import EdgeError


class LabError(EdgeError):
    """Something the lab could not do; the message says what and what to try."""


def run(*args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise LabError(f"{args[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(args)} did not finish in {timeout:g}s") from None
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = ("-n", ns) if ns is not None else ()
    return run("ip", *prefix, *args, check=check)


def in_ns(
    ns: str, *args: str, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)


def namespaces(prefix: str) -> list[str]:
    """Every namespace whose name starts with ``prefix-``."""
    result = ip("-json", "netns", "list", check=False)
    try:
        rows = json.loads(result.stdout or "[]")
    except ValueError:
        rows = []
    return sorted(row["name"] for row in rows if row.get("name", "").startswith(f"{prefix}-"))


def host_links(prefix: str) -> list[str]:
    """Every host network device whose name starts with ``prefix-``."""
    result = ip("-json", "link", "show", check=False)
    try:
        rows = json.loads(result.stdout or "[]")
    except ValueError:
        rows = []
    return sorted(row["ifname"] for row in rows if row.get("ifname", "").startswith(f"{prefix}-"))


def ns_pids(ns: str) -> list[int]:
    result = ip("netns", "pids", ns, check=False)
    return [int(pid) for pid in result.stdout.split() if pid.isdigit()]


def add_namespace(ns: str, forwarding: bool = False) -> None:
    ip("netns", "add", ns)
    ip("link", "set", "lo", "up", ns=ns)
    sysctls = ["net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]
    if forwarding:
        sysctls.append("net.ipv4.ip_forward=1")
    in_ns(ns, "sysctl", "-q", "-w", *sysctls)


def kill_all(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM these processes, SIGKILL what is left after ``grace`` seconds."""
    alive = [pid for pid in pids if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _exists(pid)]
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if _exists(pid)]


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not count)."""
    return _exists(pid)


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def spawn(ns: str, args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``args`` in namespace ``ns``, detached from us, output to ``log``; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    return process.pid


def wait_for(what: str, condition: object, timeout: float, interval: float = 0.1) -> None:
    """Poll ``condition()`` until true; a LabError naming ``what`` after ``timeout``."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (OSError, LabError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
