"""Machines that edge runs: ``edgectl logs``, ``machines status|restart``, ``ips private``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from edge.cli.argtypes import SubParsers
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table

FOLLOW_POLL = 0.5  # seconds between asks for new lines with --follow

AppParser = Callable[[str, str], argparse.ArgumentParser]


# --- edgectl logs ------------------------------------------------------------------------


def _logs_path(args: argparse.Namespace) -> str:
    if args.machine:
        return f"/v1/apps/{args.app}/machines/{args.machine}/logs"
    return f"/v1/apps/{args.app}/logs"


def _print_line(line: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(line), flush=True)
    else:
        print(f"{line['at']} {line['machine_id']} [{line['stream']}] {line['line']}", flush=True)


def cmd_logs(client: ApiClient, args: argparse.Namespace) -> int:
    path, since = _logs_path(args), 0
    answer = client.get(path, {"since": "0", "limit": str(args.lines)})
    while True:
        for line in answer["logs"]:
            _print_line(line, args.json)
        since = answer["next_since"]
        if not args.follow:
            return 0
        time.sleep(FOLLOW_POLL)
        answer = client.get(path, {"since": str(since), "limit": "5000"})


# --- edgectl machines status / restart ---------------------------------------------------


def _event_text(event: dict[str, Any]) -> str:
    kind = str(event["kind"])
    if event["exit_code"] is not None and kind in ("exited", "stopped", "restarting", "failed"):
        kind += f" code={event['exit_code']}"
    return kind


def cmd_status(client: ApiClient, args: argparse.Namespace) -> int:
    machine = client.get(f"/v1/apps/{args.app}/machines/{args.id}/events")
    if args.json:
        print_json(machine)
        return 0
    process = machine.get("process") or {}
    print(f"Machine {machine['id']} of {machine['app']} in {machine['region']}")
    print(f"  state:     {machine['state']} ({machine.get('health', '-')})")
    if machine.get("state_reason"):
        print(f"  why:       {machine['state_reason']}")
    if process:
        print(f"  command:   {' '.join(process['command'])}")
        print(
            f"  process:   {process['state']}, pid {process['pid'] or '-'}, "
            f"{process['restarts']} restart(s), last exit code {_code(process['exit_code'])}"
        )
        print(f"  address:   {process['private_ip']}:{process['port']}")
        if process.get("error"):
            print(f"  error:     {process['error']}")
    print()
    rows = [(e["at"], _event_text(e), e["detail"]) for e in machine["events"]]
    print_table(("at", "event", "detail"), rows, "No events.")
    return 0


def _code(code: int | None) -> str:
    return "-" if code is None else str(code)


def cmd_restart(client: ApiClient, args: argparse.Namespace) -> int:
    for machine_id in args.ids:
        machine = client.post(f"/v1/apps/{args.app}/machines/{machine_id}/restart", {})
        print(f"Machine {machine['id']} restarted")
    return 0


# --- edgectl ips private -----------------------------------------------------------------


def cmd_private(client: ApiClient, args: argparse.Namespace) -> int:
    rows = client.get(f"/v1/apps/{args.app}/ips/private")["ips"]
    if args.json:
        print_json(rows)
        return 0
    table = [(r["id"], r["region"], r["ip"] or "-") for r in rows]
    print_table(("ID", "REGION", "IP"), table, "This app has no machines.")
    return 0


# --- registration ------------------------------------------------------------------------


def register(commands: SubParsers) -> None:
    logs = commands.add_parser("logs", help="what the app's process machines write")
    logs.add_argument("-a", "--app", required=True, help="the app")
    logs.add_argument("--machine", "-m", help="only this machine")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=100, help="lines to show first (100)")
    logs.add_argument("-j", "--json", action="store_true", help="one JSON object per line")
    logs.set_defaults(handler=cmd_logs)


def add_machine_commands(app_parser: AppParser) -> None:
    status = app_parser("status", "a machine's state, process and events (exit codes, why)")
    status.add_argument("id", metavar="MACHINE_ID")
    status.set_defaults(handler=cmd_status)
    restart = app_parser("restart", "stop machines' processes and start them again")
    restart.add_argument("ids", nargs="+", metavar="MACHINE_ID")
    restart.set_defaults(handler=cmd_restart)


def add_ips_commands(app_parser: AppParser) -> None:
    app_parser("private", "each machine's private address").set_defaults(handler=cmd_private)
