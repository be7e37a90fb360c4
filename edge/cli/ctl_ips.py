"""``edgectl ips``: list, allocate (and the platform's allocate-v4/-v6), release."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from edge.cli import ctl_process
from edge.cli.argtypes import SubParsers, app_command
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table
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


def cmd_list(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get(f"/v1/apps/{args.app}/ip_assignments")
    print_ips(body["ips"], args.json)
    return 0


def _allocate(client: ApiClient, args: argparse.Namespace, ip_type: str) -> int:
    request: dict[str, Any] = {"type": ip_type}
    if args.region:
        request["region"] = args.region
    assignment = client.post(f"/v1/apps/{args.app}/ip_assignments", request)
    print_ips([assignment], args.json)
    return 0


def cmd_allocate(client: ApiClient, args: argparse.Namespace) -> int:
    if args.ipv6 and args.shared:
        raise BadRequest("--shared is for IPv4 only: a shared IPv6 address does not exist")
    return _allocate(client, args, "v6" if args.ipv6 else "shared_v4" if args.shared else "v4")


def cmd_allocate_v4(client: ApiClient, args: argparse.Namespace) -> int:
    return _allocate(client, args, "shared_v4" if args.shared else "v4")


def cmd_allocate_v6(client: ApiClient, args: argparse.Namespace) -> int:
    return _allocate(client, args, "private_v6" if args.private else "v6")


def cmd_release(client: ApiClient, args: argparse.Namespace) -> int:
    for address in args.addresses:  # check them all before sending anything
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise BadRequest(f"Invalid IP address: '{address}'; nothing was released") from None
    for address in args.addresses:
        client.delete(f"/v1/apps/{args.app}/ip_assignments/{address}")
        print(f"Successfully released IP address {address}")
    return 0


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
    ctl_process.add_ips_commands(app_parser)  # private
