"""``edgectl deploy --config APP.yaml``: create or update an app from an app file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from edge.cli.argtypes import SubParsers
from edge.cli.client import ApiClient
from edge.cli.ctl_ips import print_ips
from edge.cli.output import print_json
from edge.cli.preflight import report_listeners
from edge.config.load import anchor_workdirs, load_app_file
from edge.config.regions import default_catalogue
from edge.errors import BadRequest, ConfigError


def read_app_file(path: Path) -> dict[str, Any]:
    """The file as sent to the API, after the same validation the daemon does."""
    try:
        load_app_file(path, default_catalogue())
    except ConfigError as exc:  # each problem once: a lone one is the message itself
        problems = [p for p in exc.problems if p != exc.message]
        raise BadRequest("\n  ".join([exc.message, *problems])) from None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)  # load_app_file checked it
    anchor_workdirs(data, path)  # sent as absolute paths: the daemon runs elsewhere
    return data


def summary(answer: dict[str, Any]) -> str:
    verb = "Created" if answer["created"] else "Deployed"
    parts = [
        f"{len(answer[key])} machine(s) {key}"
        for key in ("added", "updated", "removed")
        if answer[key]
    ]
    if answer.get("services_updated"):
        parts.append("services updated")
    if answer.get("ips_moved"):
        parts.append(f"IP(s) moved here: {', '.join(answer['ips_moved'])}")
    if not answer["created"] and not parts:
        return f"App {answer['name']} is already up to date"
    detail = f": {', '.join(parts)}" if parts else ""
    return f"{verb} app {answer['name']} (org {answer['org_slug']}){detail}"


def cmd_deploy(client: ApiClient, args: argparse.Namespace) -> int:
    data = read_app_file(args.config)
    name = args.app or data["app"]
    if args.app:
        data["app"] = args.app
    answer = client.request("PUT", f"/v1/apps/{name}", data)
    if args.json:
        print_json(answer)
    else:
        print(summary(answer))
        if answer.get("ips"):
            print_ips(answer["ips"], as_json=False)
    if answer.get("warning"):
        print(f"Warning: {answer['warning']}", file=sys.stderr)
    return report_listeners(answer.get("listeners"), args.json)


def register(commands: SubParsers) -> None:
    deploy = commands.add_parser("deploy", help="create or update an app from an app file")
    deploy.add_argument("-c", "--config", type=Path, required=True, help="the app file (YAML)")
    deploy.add_argument("-a", "--app", help="deploy under this name instead of the file's")
    deploy.add_argument("-j", "--json", action="store_true", help="print JSON")
    deploy.set_defaults(handler=cmd_deploy)
