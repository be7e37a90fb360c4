"""``edgectl faults``: add, list, clear and restore injected faults (Toxiproxy-style)."""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.argtypes import SubParsers, whole_number
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table
from edge.core.faults import FAULT_KINDS
from edge.errors import BadRequest

ATTRIBUTES = ("latency", "jitter", "rate", "timeout", "delay", "bytes")


def describe(fault: dict[str, Any]) -> str:
    parts = []
    units = (
        ("latency_ms", "ms"), ("jitter_ms", "ms jitter"), ("timeout_ms", "ms"),
        ("delay_ms", "ms delay"), ("rate_kbps", " KB/s"), ("bytes", " bytes"),
    )  # fmt: skip
    for key, unit in units:
        if fault.get(key):
            parts.append(f"{fault[key]:g}{unit}")
    return " ".join(parts) or "-"


def fault_row(fault: dict[str, Any]) -> tuple[object, ...]:
    target = f"{fault['app']}/{fault['target']}" if fault["app"] else fault["target"]
    stream = fault["stream"] if fault["kind"] not in ("down", "withdraw") else "-"
    return (
        fault["id"], fault["kind"], fault["scope"], target, stream, describe(fault),
        fault["created_at"],
    )  # fmt: skip


HEADERS = ("id", "kind", "scope", "target", "stream", "attributes", "created")


def cmd_add(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"kind": args.kind, "stream": args.stream}
    for scope in ("machine", "region", "pop"):
        if getattr(args, scope):
            body[scope] = getattr(args, scope)
    if args.app:
        body["app"] = args.app
    for name in ATTRIBUTES:
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    fault = client.post("/v1/faults", body)
    if args.json:
        print_json(fault)
    else:
        print_table(HEADERS, [fault_row(fault)], "")
    return 0


def cmd_list(client: ApiClient, args: argparse.Namespace) -> int:
    faults = client.get("/v1/faults")["faults"]
    if args.json:
        print_json(faults)
    else:
        print_table(HEADERS, [fault_row(f) for f in faults], "No faults.")
    return 0


def cmd_clear(client: ApiClient, args: argparse.Namespace) -> int:
    if args.ids:
        for fault_id in args.ids:
            client.delete(f"/v1/faults/{fault_id}")
            print(f"Removed {fault_id}")
        return 0
    removed = client.post("/v1/faults/reset", {})["removed"]
    print(f"Removed {removed} fault(s)")
    return 0


def cmd_restore(client: ApiClient, args: argparse.Namespace) -> int:
    faults = client.get("/v1/faults")["faults"]
    withdrawn = [f for f in faults if f["kind"] == "withdraw" and f["target"] == args.pop]
    if not withdrawn:
        raise BadRequest(f"PoP {args.pop} is not withdrawn")
    for fault in withdrawn:
        client.delete(f"/v1/faults/{fault['id']}")
    print(f"PoP {args.pop} is announced again")
    return 0


def register(commands: SubParsers) -> None:
    faults = commands.add_parser("faults", help="inject faults: latency, down, withdraw ...")
    sub = faults.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    add = sub.add_parser("add", help="add a fault to a machine, a region or a PoP")
    add.add_argument("kind", choices=FAULT_KINDS)
    where = add.add_mutually_exclusive_group(required=True)
    where.add_argument("--machine", metavar="ID", help="a machine (with -a APP)")
    where.add_argument("--region", metavar="CODE", help="every machine in a region")
    where.add_argument("--pop", metavar="CODE", help="a PoP (traffic entering there)")
    add.add_argument("-a", "--app", help="the machine's app")
    add.add_argument("--stream", choices=("upstream", "downstream"), default="downstream")
    add.add_argument("--latency", help="added delay, e.g. 200ms (latency)")
    add.add_argument("--jitter", help="+- uniform jitter, e.g. 50ms (latency)")
    add.add_argument("--rate", type=float, help="KB/s (bandwidth)")
    add.add_argument("--timeout", help="black hole, then close after this (0: until removed)")
    add.add_argument("--delay", help="delay before closing (slow_close)")
    add.add_argument("--bytes", type=whole_number, help="close after this many bytes (limit_data)")
    add.add_argument("-j", "--json", action="store_true")
    add.set_defaults(handler=cmd_add)
    listing = sub.add_parser("list", help="active faults")
    listing.add_argument("-j", "--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    clear = sub.add_parser("clear", help="remove faults (all, or the ids given)")
    clear.add_argument("ids", nargs="*", metavar="ID")
    clear.set_defaults(handler=cmd_clear)
    restore = sub.add_parser("restore", help="announce a withdrawn PoP again")
    restore.add_argument("--pop", required=True, metavar="CODE")
    restore.set_defaults(handler=cmd_restore)
