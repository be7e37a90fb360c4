"""``scripts/cluster up|down|status``: a PostgreSQL and two edge nodes on this machine.

Everything lives in one directory (``--state-dir``, default ``$STATE_DIR`` or
``/var/tmp/edge-cluster``): ``pg/`` the database server's data, ``edge/`` the state
directory the nodes share (the admin token, certificates), ``<node>.log`` and
``<node>.pid`` for each node, and ``cluster.env`` saying how to reach everything.
The nodes bind the same data-plane addresses (SO_REUSEPORT: the kernel spreads
connections between them); each answers with its own PoPs in ``Fly-Region``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from edge.cluster.pg import PrivateServer
from edge.errors import StartupError

DEFAULT_DIR = Path("/var/tmp/edge-cluster")
DATABASE = "edge"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    pops: str
    api: str


DEFAULT_NODES = (
    NodePlan("a", "lhr,fra,iad,sjc", "127.0.0.1:4280"),
    NodePlan("b", "syd,nrt,sin,gru", "127.0.0.1:4281"),
)


def ensure_database(server: PrivateServer, name: str = DATABASE) -> str:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return server.url(name) if found else server.create_database(name)


def _pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _wait_healthy(api: str, log: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise StartupError(f"the node on {api} exited: " + " | ".join(tail))
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://{api}/healthz", timeout=1) as answer,
        ):
            json.loads(answer.read())
            return
        time.sleep(0.1)
    raise StartupError(f"the node on {api} did not answer /healthz within {timeout:g} s; see {log}")


def start_node(
    top: Path, plan: NodePlan, url: str, config: Path, extra: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    log = top / f"{plan.name}.log"
    argv = [sys.executable, "-m", "edge", "serve", "--config", str(config)]
    argv += ["--state-dir", str(top / "edge"), "--store", url, "--node", plan.name]
    argv += ["--pops", plan.pops, "--api", plan.api, *extra]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, cwd=REPO, start_new_session=True)
    (top / f"{plan.name}.pid").write_text(f"{proc.pid}\n")
    _wait_healthy(plan.api, log, proc, 30.0)
    return proc


def up(top: Path, config: Path, nodes: Sequence[NodePlan], extra: Sequence[str]) -> str:
    top.mkdir(parents=True, exist_ok=True)
    top.chmod(0o755)  # PostgreSQL runs as `postgres` when this runs as root
    server = PrivateServer(top / "pg").start()
    url = ensure_database(server)
    for plan in nodes:
        if _pid(top / f"{plan.name}.pid") is None:
            start_node(top, plan, url, config, extra)
    lines = [f"EDGE_STORE={url}", f"EDGE_STATE_DIR={top / 'edge'}"]
    lines += [f"EDGE_NODE_{p.name.upper()}=http://{p.api} pops={p.pops}" for p in nodes]
    (top / "cluster.env").write_text("\n".join(lines) + "\n")
    return "\n".join(
        [
            f"PostgreSQL: {url}  (data in {server.data_dir})",
            *(
                f"node {p.name}: API http://{p.api}  PoPs {p.pops}  log {top}/{p.name}.log"
                for p in nodes
            ),
            "",
            "Talk to any node (both share the control plane):",
            f"  export EDGE_STATE_DIR={top / 'edge'} EDGE_API_URL=http://{nodes[0].api}",
            "  .venv/bin/edgectl status        # every node, its PoPs, last contact",
            "  curl -s http://127.77.0.1:8080/ # answered by whichever node the kernel picks",
            f"Stop everything: scripts/cluster down --state-dir {top}",
        ]
    )


def down(top: Path) -> str:
    stopped = []
    for pid_file in sorted(top.glob("*.pid")):
        pid = _pid(pid_file)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _pid(pid_file) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if _pid(pid_file) is not None:
                os.kill(pid, signal.SIGKILL)
            stopped.append(pid_file.stem)
        pid_file.unlink()
    if (top / "pg" / "PG_VERSION").exists():
        PrivateServer(top / "pg").stop()
        stopped.append("postgresql")
    return f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}"


def status(top: Path, nodes: Sequence[NodePlan]) -> str:
    server_up = (top / "pg" / "PG_VERSION").exists() and PrivateServer(top / "pg").running()
    lines = [f"postgresql: {'running' if server_up else 'stopped'}"]
    for plan in nodes:
        pid = _pid(top / f"{plan.name}.pid")
        lines.append(f"node {plan.name}: {'running, pid ' + str(pid) if pid else 'stopped'}")
    return "\n".join(lines)


def node_plan(text: str) -> NodePlan:
    """``NAME:POPS:HOST:PORT``, e.g. ``c:sin,gru:127.0.0.1:4282``."""
    parts = text.split(":")
    if len(parts) != 4 or not all(parts):
        raise argparse.ArgumentTypeError(
            f"--node {text!r}: expected NAME:POPS:HOST:PORT, e.g. a:lhr,fra:127.0.0.1:4280"
        )
    return NodePlan(parts[0], parts[1], f"{parts[2]}:{parts[3]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("STATE_DIR", DEFAULT_DIR)),
        help=f"where everything lives (default: $STATE_DIR or {DEFAULT_DIR})",
    )
    parser.add_argument("--config", type=Path, default=REPO / "config" / "edge.yaml")
    parser.add_argument(
        "--node",
        dest="nodes",
        action="append",
        type=node_plan,
        metavar="NAME:POPS:HOST:PORT",
        help="a node to run (repeat; default: "
        + " ".join(f"{p.name}:{p.pops}:{p.api}" for p in DEFAULT_NODES)
        + ")",
    )
    args, extra = parser.parse_known_args(argv)
    nodes = tuple(args.nodes or DEFAULT_NODES)
    top = args.state_dir.resolve()
    try:
        if args.command == "up":
            print(up(top, args.config, nodes, extra))
        elif args.command == "down":
            print(down(top))
        else:
            print(status(top, nodes))
    except StartupError as exc:
        print(f"scripts/cluster: error: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
