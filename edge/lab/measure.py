"""``scripts/lab measure``: the figures of docs/anycast-lab.md, from the running lab.

Measures, with steady load from the ``--region`` client namespace (``--loops``
concurrent request loops, ``edge.lab.probe``): the time from a ``withdraw`` fault to
that region's clients being served by the next PoP and the requests failed meanwhile;
the same for the PoP's edge node killed with SIGKILL; and ping RTTs from clients to
far PoPs beside the model.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge.lab import control
from edge.lab.netns import LabError, wait_for
from edge.lab.topology import Topology

ANYCAST = "http://203.0.113.1:8080/"


def _probes(
    topology: Topology, region: str, loops: int, seconds: float
) -> list[subprocess.Popen[str]]:
    ns = topology.client(region).ns
    argv = [sys.executable, "-m", "edge.lab.probe", "--url", ANYCAST, "--duration", str(seconds),
            "--interval", "0.02", "--timeout", "2"]  # fmt: skip
    return [
        subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, text=True)
        for _ in range(loops)
    ]


def _collect(processes: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    rows = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        rows += [json.loads(line) for line in out.splitlines() if line.startswith('{"t"')]
    return sorted(rows, key=lambda row: row["t"])


def _failover(rows: list[dict[str, Any]], start: float, old: str) -> dict[str, Any]:
    after = [r for r in rows if r["t"] >= start]
    moved = next((r for r in after if r["ok"] and r["pop"] not in (old, None)), None)
    failed = [r for r in rows if not r["ok"]]
    return {
        "moved_after_s": None if moved is None else round(moved["t"] - start, 3),
        "next_pop": None if moved is None else moved["pop"],
        "requests": len(rows),
        "failed": len(failed),
        "failing_for_s": round(failed[-1]["t"] - failed[0]["t"], 3) if failed else 0.0,
        "last_old_pop_answer_s": max((round(r["t"] - start, 3) for r in after if r["pop"] == old),
                                     default=None),
        "errors": sorted({str(r.get("error") or r.get("status")) for r in failed}),
    }  # fmt: skip


def _edgectl(topology: Topology, state: Path, pop: str, *args: str) -> None:
    node = topology.pop(pop)
    token = control.token_file(state, pop).read_text().strip()
    env = {**os.environ, "EDGE_API_URL": node.api_url, "EDGE_API_TOKEN": token}
    subprocess.run([sys.executable, "-m", "edge.cli.edgectl", *args], env=env, check=True,
                   capture_output=True, timeout=30)  # fmt: skip


def withdraw(topology: Topology, state: Path, region: str, pop: str, loops: int) -> dict[str, Any]:
    processes = _probes(topology, region, loops, 8.0)
    time.sleep(2.0)
    _edgectl(topology, state, pop, "faults", "add", "withdraw", "--pop", pop)
    start = time.time()  # the fault exists from the moment the API answered
    rows = _collect(processes)
    _edgectl(topology, state, pop, "faults", "restore", "--pop", pop)
    return {**_failover(rows, start, pop), "timeline": rows}


def kill(topology: Topology, state: Path, region: str, pop: str, loops: int) -> dict[str, Any]:
    from edge.lab.cli import edge_node_pids

    processes = _probes(topology, region, loops, 8.0)
    time.sleep(2.0)
    start = time.time()
    for pid in edge_node_pids(topology.pop(pop).ns):
        os.kill(pid, signal.SIGKILL)
    rows = _collect(processes)
    control.start_node(topology, state, pop)
    return {**_failover(rows, start, pop), "timeline": rows}


def pings(topology: Topology, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    model, _ = control.latency_model()
    found = []
    for client, pop in pairs:
        result = subprocess.run(
            ["ip", "netns", "exec", topology.client(client).ns, "ping", "-c", "10", "-i", "0.2",
             "-q", topology.pop(pop).uplink],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        match = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", result.stdout)
        if match is None:
            raise LabError(f"ping {client} -> {pop} failed: {result.stdout}{result.stderr}")
        modelled = model.rtt(client, pop) * 1000
        average = float(match.group(2))
        found.append({"client": client, "pop": pop, "model_ms": round(modelled, 2),
                      "min_ms": float(match.group(1)), "avg_ms": average,
                      "max_ms": float(match.group(3)),
                      "error_pct": round((average - modelled) / modelled * 100, 2)})  # fmt: skip
    return found


def measure(topology: Topology, state: Path, region: str, pop: str, loops: int) -> dict[str, Any]:
    pairs = [(c.region, p.region) for c in topology.clients for p in topology.pops]
    result: dict[str, Any] = {"pings": pings(topology, pairs)}
    result["withdraw"] = withdraw(topology, state, region, pop, loops)
    wait_for(f"{pop} announced again", lambda: _announced(topology, state, pop), 30)
    time.sleep(2.0)
    result["sigkill"] = kill(topology, state, region, pop, loops)
    wait_for(f"{pop} announced again", lambda: _announced(topology, state, pop), 60)
    return result


def _announced(topology: Topology, state: Path, pop: str) -> bool:
    from edge.lab.report import announced

    return announced(topology, state)[pop]
