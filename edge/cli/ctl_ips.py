"""``edgectl ips``: list, allocate (and the platform's allocate-v4/-v6), release, move."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from edge.cli import ctl_process
from edge.cli.argtypes import SubParsers, app_command
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table
from edge.cli.preflight import check_releasable, report_listeners
from edge.errors import BadRequest

IP_HEADERS = ("type", "address", "region", "created")


def ip_rows(ips: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for ip in ips:
        row = (ip["type"], ip["ip"], ip["region"], ip["created_at"])
        rows.append((*row, "(primary)") if ip.get("primary") else row)
    return rows


def print_ips(ips: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(ips)
    else:
        print_table(IP_HEADERS, ip_rows(ips), "No IP addresses are allocated to this app.")


REGION_NOTE = (
    "REGION is where an address was allocated; the address itself is anycast, announced "
    "from every PoP and served wherever a client enters."
)


def cmd_list(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get(f"/v1/apps/{args.app}/ip_assignments")
    print_ips(body["ips"], args.json)
    if body["ips"] and not args.json:
        print(f"\n{REGION_NOTE}")
    return 0


def _allocate(client: ApiClient, args: argparse.Namespace, ip_type: str) -> int:
    request: dict[str, Any] = {"type": ip_type}
    if args.region:
        request["region"] = args.region
    assignment = client.post(f"/v1/apps/{args.app}/ip_assignments", request)
    print_ips([assignment], args.json)
    return report_listeners(assignment.get("listeners"), args.json)


def cmd_allocate(client: ApiClient, args: argparse.Namespace) -> int:
    if args.ipv6 and args.shared:
        raise BadRequest("--shared is for IPv4 only: a shared IPv6 address does not exist")
    return _allocate(client, args, "v6" if args.ipv6 else "shared_v4" if args.shared else "v4")


def cmd_allocate_v4(client: ApiClient, args: argparse.Namespace) -> int:
    return _allocate(client, args, "shared_v4" if args.shared else "v4")


def cmd_allocate_v6(client: ApiClient, args: argparse.Namespace) -> int:
    return _allocate(client, args, "private_v6" if args.private else "v6")


def cmd_release(client: ApiClient, args: argparse.Namespace) -> int:
    for address in check_releasable(client, args.app, args.addresses):
        client.delete(f"/v1/apps/{args.app}/ip_assignments/{address}")
        print(f"Successfully released IP address {address}")
    return 0


def cmd_move(client: ApiClient, args: argparse.Namespace) -> int:
    try:
        ipaddress.ip_address(args.address)
    except ValueError:
        raise BadRequest(f"Invalid IP address: '{args.address}'; nothing was moved") from None
    moved = client.post(
        f"/v1/apps/{args.from_app}/ip_assignments/{args.address}/move", {"app": args.to_app}
    )
    if args.json:
        print_json(moved)
    else:
        print(f"Moved {moved['ip']} from app {args.from_app} to app {args.to_app}")
        print_ips([moved], False)
    return report_listeners(moved.get("listeners"), args.json)


def register(commands: SubParsers) -> None:
    ips = commands.add_parser("ips", help="manage an app's IP addresses")
    sub = ips.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    def app_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        return app_command(sub, name, help_text)

    app_parser("list", "list the app's IP addresses").set_defaults(handler=cmd_list)
    allocate = app_parser("allocate", "allocate an address (v4 unless --ipv6 / --shared)")
    allocate.add_argument("-r", "--region", help="region of the allocation (default: primary)")
    allocate.add_argument("--ipv6", action="store_true", help="a dedicated IPv6 address")
    allocate.add_argument("--shared", action="store_true", help="the edge's shared IPv4")
    allocate.set_defaults(handler=cmd_allocate)
    v4 = app_parser("allocate-v4", "allocate an IPv4 address")
    v4.add_argument("-r", "--region")
    v4.add_argument("--shared", action="store_true", help="the edge's shared IPv4")
    v4.add_argument("-y", "--yes", action="store_true", help="accepted for compatibility")
    v4.set_defaults(handler=cmd_allocate_v4)
    v6 = app_parser("allocate-v6", "allocate an IPv6 address")
    v6.add_argument("-r", "--region")
    v6.add_argument("--private", action="store_true", help="a private (org-only) IPv6")
    v6.set_defaults(handler=cmd_allocate_v6)
    release = app_parser("release", "release addresses (permanent)")
    release.add_argument("addresses", nargs="+", metavar="ADDRESS")
    release.set_defaults(handler=cmd_release)
    move = sub.add_parser(
        "move", help="serve an address from another app of the same org (keeps the address)"
    )
    move.add_argument("address", metavar="ADDRESS")
    move.add_argument("--from", dest="from_app", required=True, metavar="APP", help="its app now")
    move.add_argument("--to", dest="to_app", required=True, metavar="APP", help="the new app")
    move.add_argument("-j", "--json", action="store_true", help="print JSON")
    move.set_defaults(handler=cmd_move)
    ctl_process.add_ips_commands(app_parser)  # private
