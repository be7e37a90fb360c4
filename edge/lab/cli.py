"""``scripts/lab``: the anycast lab's commands (see docs/anycast-lab.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.lab import control, report
from edge.lab.links import BACKENDS
from edge.lab.netns import LabError, ns_pids
from edge.lab.topology import (
    DEFAULT_CLIENTS,
    DEFAULT_MACHINES,
    DEFAULT_POPS,
    POLICIES,
    Topology,
    check_prefix,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _regions(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/lab", description=__doc__)
    parser.add_argument(
        "--prefix",
        default=os.environ.get("EDGE_LAB_PREFIX", "elab"),
        help="name prefix of everything the lab creates (default elab)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="build the lab (takes a previous one down first)")
    up.add_argument("--pops", type=_regions, default=DEFAULT_POPS)
    up.add_argument("--clients", type=_regions, default=DEFAULT_CLIENTS)
    up.add_argument("--machines", type=_regions, default=DEFAULT_MACHINES,
                    help="regions of the app's machines (default lhr)")  # fmt: skip
    up.add_argument("--policy", choices=POLICIES, default="nearest")
    up.add_argument(
        "--links",
        choices=BACKENDS,
        default="wire",
        help="wire: the delay line on TAP devices (default, any kernel); netem: tc netem on "
        "veth pairs (kernels with sch_netem)",
    )
    commands.add_parser("down", help="remove every namespace, link and process of the lab")
    status = commands.add_parser("status", help="namespaces, nodes, routes, BGP sessions")
    status.add_argument("--json", action="store_true")
    catchment = commands.add_parser("catchment", help="the model's catchments beside BGP's")
    catchment.add_argument("--json", action="store_true")
    run = commands.add_parser("exec", help="run a command in a client region's namespace")
    run.add_argument("region")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    fault = commands.add_parser(
        "fault", help="loss=1%% | delay=+50ms | rate=1mbit | partition | clear"
    )
    fault.add_argument("target", help="lhr-iad, pop:syd, client:syd, mgmt:syd, machine:lhr")
    fault.add_argument("items", nargs="+")
    node = commands.add_parser(
        "node", help="stop (SIGTERM), kill (SIGKILL) or start a PoP's edge node"
    )
    node.add_argument("action", choices=("stop", "kill", "start"))
    node.add_argument("pop")
    measure = commands.add_parser("measure", help="withdraw/SIGKILL failover and ping figures")
    measure.add_argument("--region", default="syd", help="client region under load")
    measure.add_argument("--pop", default="syd", help="PoP to withdraw and kill")
    measure.add_argument("--loops", type=int, default=4, help="concurrent request loops")
    measure.add_argument("--out", type=Path, help="write the JSON (with timelines) here")
    ctl = commands.add_parser("edgectl", help="run edgectl against a PoP's node")
    ctl.add_argument("pop")
    ctl.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- ARGS ...")
    return parser


def state_dir(prefix: str) -> Path:
    base = Path(os.environ.get("EDGE_LAB_DIR", "/run/edge-lab"))
    return base / prefix


def _strip_dashes(argv: list[str]) -> list[str]:
    return argv[1:] if argv[:1] == ["--"] else argv


def cmd_up(args: argparse.Namespace) -> int:
    options = control.LabOptions(args.pops, args.clients, args.machines, args.policy,
                                 args.prefix, state_dir(args.prefix), args.links)  # fmt: skip
    control.require_root("up")
    topology = control.up(options)
    report.print_status(report.status(topology, options.state_dir))
    address = report.anycast_addresses(topology, options.state_dir)
    ip = address[0]["address"] if address else "203.0.113.1"
    print(f"\ntry: scripts/lab exec {topology.clients[-1].region} -- curl -s http://{ip}:8080/")
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    control.require_root("down")
    removed = control.down(args.prefix, state_dir(args.prefix))
    print(f"removed {len(removed)} namespaces and links" if removed else "nothing to remove")
    return EXIT_OK


def _running(args: argparse.Namespace) -> tuple[Topology, Path]:
    control.require_root(args.command)
    state = state_dir(args.prefix)
    return control.topology_for(control.load_options(state)), state


def cmd_status(args: argparse.Namespace) -> int:
    topology, state = _running(args)
    data = report.status(topology, state)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        report.print_status(data)
    return EXIT_OK


def cmd_catchment(args: argparse.Namespace) -> int:
    topology, state = _running(args)
    data = report.status(topology, state)
    rows = [
        {"region": c["region"], "model": c["model"], "bgp_expected": c["expected"],
         "lab": c["pop"], "agree": c["model"] == c["pop"]}
        for c in data["clients"]
    ]  # fmt: skip
    if args.json:
        print(json.dumps({"policy": topology.policy, "regions": rows}, indent=2))
        return EXIT_OK
    print(f"policy {topology.policy}: the model (edgectl catchment's nearest-PoP rule) "
          "beside the lab's BGP routes\n")  # fmt: skip
    print("region  model  bgp-expected  lab    agree")
    for row in rows:
        print(f"{row['region']:<7} {row['model'] or '-':<6} {row['bgp_expected'] or '-':<13} "
              f"{row['lab'] or '-':<6} {'yes' if row['agree'] else 'NO'}")  # fmt: skip
    return EXIT_OK


def cmd_exec(args: argparse.Namespace) -> int:
    topology, _ = _running(args)
    argv = _strip_dashes(args.argv)
    if not argv:
        raise LabError("exec: give a command after --, e.g. scripts/lab exec syd -- curl ...")
    try:
        ns = topology.client(args.region).ns
    except KeyError:
        regions = ", ".join(c.region for c in topology.clients)
        raise LabError(f"no client region {args.region!r} in this lab ({regions})") from None
    os.execvp("ip", ["ip", "netns", "exec", ns, *argv])
    return EXIT_FAILED  # not reached


def cmd_fault(args: argparse.Namespace) -> int:
    topology, state = _running(args)
    answer = report.fault(topology, state, args.target, args.items)
    print(f"{answer['link']}: {answer['shape']}")
    return EXIT_OK


def edge_node_pids(ns: str) -> list[int]:
    found = []
    for pid in ns_pids(ns):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"edge.cli.edge" in cmdline and b"serve" in cmdline:
            found.append(pid)
    return found


def cmd_node(args: argparse.Namespace) -> int:
    topology, state = _running(args)
    try:
        pop = topology.pop(args.pop)
    except KeyError:
        raise LabError(f"no PoP {args.pop!r} in this lab") from None
    pids = edge_node_pids(pop.ns)
    if args.action == "start":
        if pids:
            raise LabError(f"the {pop.region} edge node is running (pid {pids[0]})")
        control.start_node(topology, state, pop.region)
        print(f"{pop.region}: edge node started")
        return EXIT_OK
    if not pids:
        raise LabError(f"the {pop.region} edge node is not running")
    sig = signal.SIGKILL if args.action == "kill" else signal.SIGTERM
    for pid in pids:
        os.kill(pid, sig)
    print(f"{pop.region}: sent {sig.name} to the edge node (pid {', '.join(map(str, pids))})")
    return EXIT_OK


def cmd_edgectl(args: argparse.Namespace) -> int:
    topology, state = _running(args)
    try:
        pop = topology.pop(args.pop)
    except KeyError:
        raise LabError(f"no PoP {args.pop!r} in this lab") from None
    token = control.token_file(state, pop.region).read_text().strip()
    env = {**os.environ, "EDGE_API_URL": pop.api_url, "EDGE_API_TOKEN": token}
    argv = [sys.executable, "-m", "edge.cli.edgectl", *_strip_dashes(args.argv)]
    os.execvpe(argv[0], argv, env)
    return EXIT_FAILED  # not reached


def cmd_measure(args: argparse.Namespace) -> int:
    from edge.lab.measure import measure

    topology, state = _running(args)
    result = measure(topology, state, args.region, args.pop, args.loops)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    brief = {k: v for k, v in result.items() if k != "pings"}
    for part in brief.values():
        part.pop("timeline", None)
    print(json.dumps({"pings": result["pings"], **brief}, indent=2))
    return EXIT_OK


HANDLERS = {
    "up": cmd_up, "down": cmd_down, "status": cmd_status, "catchment": cmd_catchment,
    "exec": cmd_exec, "fault": cmd_fault, "node": cmd_node, "edgectl": cmd_edgectl,
    "measure": cmd_measure,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_prefix(args.prefix)
    except ValueError as exc:
        print(f"scripts/lab: error: --prefix/EDGE_LAB_PREFIX: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return HANDLERS[args.command](args)
    except LabError as exc:
        print(f"scripts/lab: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE if "needs root" in exc.message else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
