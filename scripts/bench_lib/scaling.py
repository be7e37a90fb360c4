"""Workers scaling: edge `--workers 1` and `--workers 2` against HAProxy `nbthread 1`
and `nbthread 2`, the same backend and load, in the same run (`scripts/bench --scaling`).

Every target runs the http relay under wrk keep-alive (-c64) and new connections per
request (-c32); the best of ``repeat`` interleaved rounds counts. The figures: each
proxy's 1 -> 2 scaling factor, and edge (2 workers) / HAProxy (2 threads).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_lib.procs import Processes, free_port, wait_http, which
from bench_lib.servers import haproxy_config
from bench_lib.wrk import Run, run_wrk

TARGETS = ("haproxy-1", "haproxy-2", "edge-1", "edge-2")
LOADS = (("keep-alive", 64), ("close", 32))


def start_scaling_targets(
    procs: Processes, backend: int, edge_command: Callable[..., list[str]]
) -> dict[str, int]:
    ports: dict[str, int] = {}
    for threads in (1, 2):
        http_port, tcp_port = free_port(), free_port()
        cfg = procs.workdir / f"haproxy-{threads}.cfg"
        cfg.write_text(haproxy_config(http_port, tcp_port, backend, nbthread=threads))
        name = f"haproxy-{threads}"
        procs.start(name, [which("haproxy") or "haproxy", "-f", str(cfg), "-db"])
        wait_http(procs, name, http_port)
        ports[name] = http_port
    for workers in (1, 2):
        port, name = free_port(), f"edge-{workers}"
        argv = edge_command("http", port, backend, procs.workdir)
        if workers > 1:
            argv += ["--workers", str(workers)]
        procs.start(name, argv)
        wait_http(procs, name, port, timeout=30)
        ports[name] = port
    return ports


def scaling_runs(
    procs: Processes, backend: int, edge_command: Callable[..., list[str]], seconds: float,
    repeat: int,
) -> dict[str, Any]:  # fmt: skip
    ports = start_scaling_targets(procs, backend, edge_command)
    best: dict[tuple[str, str], Run] = {}
    try:
        for _ in range(repeat):
            for target in TARGETS:
                for load, conns in LOADS:
                    run = Run(target, target, load, conns, seconds)
                    run_wrk(ports[target], run, procs.procs[target].pid)
                    cpu = run.proxy_cpu_us_per_req or 0.0
                    print(
                        f"  scaling {target:10} {load:10} {run.rps:>10,.0f} req/s "
                        f"{cpu:8.1f} us CPU/req",
                        flush=True,
                    )
                    if (target, load) not in best or run.rps > best[target, load].rps:
                        best[target, load] = run
    finally:
        for target in TARGETS:
            procs.stop(target)
    return summarise(best)


def summarise(best: dict[tuple[str, str], Run]) -> dict[str, Any]:
    out: dict[str, Any] = {"cpus": os.cpu_count(), "rps": {}, "cpu_us_per_req": {}, "factors": {}}
    for (target, load), run in best.items():
        out["rps"][f"{target} {load}"] = round(run.rps)
        if run.proxy_cpu_us_per_req:
            out["cpu_us_per_req"][f"{target} {load}"] = round(run.proxy_cpu_us_per_req, 1)
    for load, _ in LOADS:
        rps = {t: best[t, load].rps for t in TARGETS if (t, load) in best}
        out["factors"][load] = {
            "haproxy 1->2 threads": round(rps["haproxy-2"] / rps["haproxy-1"], 2),
            "edge 1->2 workers": round(rps["edge-2"] / rps["edge-1"], 2),
            "edge 2 workers / haproxy 2 threads": round(rps["edge-2"] / rps["haproxy-2"], 3),
        }
    return out


def render_scaling(result: dict[str, Any]) -> str:
    lines = [f"Workers scaling (http relay, {result['cpus']} CPUs, wrk on the same machine):"]
    for key, rps in result["rps"].items():
        cpu = result["cpu_us_per_req"].get(key)
        lines.append(f"  {key:24} {rps:>10,} req/s" + (f"  {cpu:7.1f} us CPU/req" if cpu else ""))
    for load, factors in result["factors"].items():
        text = ", ".join(f"{name} {value}" for name, value in factors.items())
        lines.append(f"  {load}: {text}")
    return "\n".join(lines)


def write(path: Path, result: dict[str, Any]) -> None:
    import json

    path.write_text(json.dumps(result, indent=2) + "\n")
