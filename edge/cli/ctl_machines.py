"""``edgectl machines``: list, add, start, stop and remove an app's machines."""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli import ctl_process
from edge.cli.argtypes import SubParsers, app_command, whole_number
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table
from edge.cli.preflight import check_machines
from edge.errors import BadRequest

NO_CHECKS = "no checks"  # a machine's health when no check watches it
HEADERS = ("id", "region", "state", "health", "load", "listening", "weight", "ejections")


def _load(machine: dict[str, Any]) -> str:
    services = machine.get("services") or [{}]
    first = services[0]
    soft, hard = first.get("soft_limit"), first.get("hard_limit")
    limits = f"{soft}/{hard}" if hard is not None else f"{soft}/-"
    return (
        f"{machine.get('load', 0)} of {limits}" if soft is not None else str(machine.get("load", 0))
    )


def machine_row(machine: dict[str, Any]) -> tuple[object, ...]:
    services = machine.get("services", [])
    ejections = sum(s["ejections"] for s in services)
    ejected_for = max((s["ejected_for"] for s in services), default=0)
    health = machine.get("health", "-")
    if ejected_for:
        health += f" (ejected {ejected_for:.0f}s)"
    return (
        machine["id"],
        machine["region"],
        machine["state"] + (" (demo)" if machine["demo"] else ""),
        health,
        _load(machine),
        ",".join(machine.get("listening", [])) or "-",
        machine["weight"],
        ejections,
    )


def cmd_list(client: ApiClient, args: argparse.Namespace) -> int:
    machines = client.get(f"/v1/apps/{args.app}/machines")["machines"]
    if args.json:
        print_json(machines)
    else:
        print_table(HEADERS, [machine_row(m) for m in machines], "This app has no machines.")
    return 0


def cmd_add(client: ApiClient, args: argparse.Namespace) -> int:
    if args.demo == bool(args.address):
        raise BadRequest("give either --address HOST:PORT or --demo")
    body: dict[str, Any] = {"region": args.region, "weight": args.weight, "demo": args.demo}
    if args.address:
        body["address"] = args.address
    if args.id:
        body["id"] = args.id
    machine = client.post(f"/v1/apps/{args.app}/machines", body)
    _show(machine, args.json)
    return 0


def _show(machine: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(machine)
    else:
        print_table(HEADERS, [machine_row(machine)], "")


def _change(client: ApiClient, args: argparse.Namespace, verb: str) -> int:
    check_machines(client, args.app, args.ids)
    for machine_id in dict.fromkeys(args.ids):
        machine = client.post(f"/v1/apps/{args.app}/machines/{machine_id}/{verb}", {})
        print(f"Machine {machine['id']} is now {machine['state']}")
    return 0


def cmd_start(client: ApiClient, args: argparse.Namespace) -> int:
    return _change(client, args, "start")


def cmd_stop(client: ApiClient, args: argparse.Namespace) -> int:
    return _change(client, args, "stop")


def _in_rotation(machine: dict[str, Any]) -> str:
    if machine["state"] != "started" or not machine.get("services"):
        return (
            f"machine {machine['id']!r} is {machine['state']} or in no service: "
            "it has no traffic to change"
        )
    return ""


def cmd_admin(client: ApiClient, args: argparse.Namespace) -> int:
    check_machines(client, args.app, args.ids, _in_rotation)
    for machine_id in dict.fromkeys(args.ids):
        path = f"/v1/apps/{args.app}/machines/{machine_id}/admin"
        machine = client.post(path, {"state": args.subcommand})
        print(f"Machine {machine['id']} is {machine['health']}")
    return 0


def cmd_checks(client: ApiClient, args: argparse.Namespace) -> int:
    rows = client.get(f"/v1/apps/{args.app}/checks")["checks"]
    if args.json:
        print_json(rows)
        return 0
    machines = client.get(f"/v1/apps/{args.app}/machines")["machines"]
    unchecked = [m for m in machines if m.get("health") == NO_CHECKS]
    table = [
        (
            r["machine_id"],
            r["region"],
            r["check"],
            "pass" if r["ok"] else "FAIL",
            r["output"],
            f"{r['duration_ms']}ms",
            r["at"],
        )
        for r in rows[: args.limit]
    ]
    headers = ("machine", "region", "check", "result", "output", "took", "at")
    print_table(headers, table, "" if unchecked else "No check results yet.")
    for machine in unchecked:
        print(
            f"{machine['id']} ({machine['region']}): no checks: it gets traffic, but nothing "
            "confirms that it listens (declare tcp_checks or http_checks in its service)"
        )
    for machine in machines:  # passive health: what the traffic itself found
        services = machine.get("services") or []
        ejected_for = max((s["ejected_for"] for s in services), default=0)
        if ejected_for:
            times = sum(s["ejections"] for s in services)
            print(
                f"{machine['id']} ({machine['region']}): ejected by passive health for "
                f"{ejected_for:.0f}s more (ejected {times} time(s) after failed requests)"
            )
    return 0


def cmd_remove(client: ApiClient, args: argparse.Namespace) -> int:
    check_machines(client, args.app, args.ids)
    for machine_id in dict.fromkeys(args.ids):
        client.delete(f"/v1/apps/{args.app}/machines/{machine_id}")
        print(f"Machine {machine_id} removed")
    return 0


def register(commands: SubParsers) -> None:
    machines = commands.add_parser("machines", help="an app's machines (instances)")
    sub = machines.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    def app_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        return app_command(sub, name, help_text)

    app_parser("list", "list machines with load and health").set_defaults(handler=cmd_list)
    add = app_parser("add", "add a machine: --address HOST:PORT, or --demo")
    add.add_argument("-r", "--region", required=True)
    add.add_argument("--address", help="where it serves the internal port (HOST:PORT or HOST)")
    add.add_argument("--demo", action="store_true", help="a demo machine served by the edge")
    add.add_argument("--weight", type=whole_number, default=1)
    add.add_argument("--id", help="machine id (default: 14 random hex characters)")
    add.set_defaults(handler=cmd_add)
    for name, handler, text in (
        ("maint", cmd_admin, "maintenance: out of rotation and not checked (until ready)"),
        ("drain", cmd_admin, "drain: no new traffic, checks go on (until ready)"),
        ("ready", cmd_admin, "back in rotation after maint or drain"),
        ("start", cmd_start, "start machines"),
        ("stop", cmd_stop, "stop machines (they get no traffic)"),
        ("remove", cmd_remove, "remove machines"),
    ):
        parser = app_parser(name, text)
        parser.add_argument("ids", nargs="+", metavar="MACHINE_ID")
        parser.set_defaults(handler=handler)
    ctl_process.add_machine_commands(app_parser)  # status, restart


def register_checks(commands: SubParsers) -> None:
    checks = commands.add_parser("checks", help="health-check results")
    sub = checks.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="recent check results with their errors")
    listing.add_argument("-a", "--app", required=True, help="the app")
    listing.add_argument("-n", "--limit", type=whole_number, default=30, help="rows to show (30)")
    listing.add_argument("-j", "--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_checks)
