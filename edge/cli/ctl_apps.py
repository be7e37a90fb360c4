"""``edgectl orgs``, ``edgectl apps`` and ``edgectl regions``."""

from __future__ import annotations

import argparse
from typing import Any

from edge.cli.argtypes import SubParsers
from edge.cli.client import ApiClient
from edge.cli.ctl_ips import print_ips
from edge.cli.ctl_machines import HEADERS, machine_row
from edge.cli.output import print_json, print_table
from edge.cli.preflight import report_listeners
from edge.errors import BadRequest


def cmd_orgs_create(client: ApiClient, args: argparse.Namespace) -> int:
    org = client.post("/v1/orgs", {"slug": args.slug})
    if args.json:
        print_json(org)
    else:
        print(f"Created org {org['slug']}. Its token (shown once, keep it safe):")
        print(org["token"])
    return 0


def cmd_orgs_list(client: ApiClient, args: argparse.Namespace) -> int:
    orgs = client.get("/v1/orgs")["orgs"]
    if args.json:
        print_json(orgs)
    else:
        rows = [(o["slug"], o["apps"], o["ips"], o["created_at"]) for o in orgs]
        print_table(("slug", "apps", "ips", "created"), rows, "No orgs.")
    return 0


def app_row(app: dict[str, Any]) -> tuple[object, ...]:
    return (app["name"], app["org_slug"], app["primary_region"], app["created_at"])


def cmd_apps_create(client: ApiClient, args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"app_name": args.name, "public_ips": not args.no_public_ips}
    if args.org:
        request["org_slug"] = args.org
    if args.region:
        request["primary_region"] = args.region
    if args.ipv6:
        request["ipv6"] = True
    app = client.post("/v1/apps", request)
    if args.json:
        print_json(app)
    else:
        name, org, region = app["name"], app["org_slug"], app["primary_region"]
        print(f"New app created: {name} (org {org}, region {region})")
        if app.get("ips"):
            print_ips(app["ips"], as_json=False)
    return report_listeners(app.get("listeners"), args.json)


def cmd_apps_list(client: ApiClient, args: argparse.Namespace) -> int:
    apps = client.get("/v1/apps")["apps"]
    if args.json:
        print_json(apps)
    else:
        print_table(("name", "org", "region", "created"), [app_row(a) for a in apps], "No apps.")
    return 0


def cmd_apps_show(client: ApiClient, args: argparse.Namespace) -> int:
    app = client.get(f"/v1/apps/{args.name}")
    machines = client.get(f"/v1/apps/{args.name}/machines")["machines"]
    if args.json:
        print_json({**app, "machines": machines})
        return 0
    for label, key in (("Name", "name"), ("Org", "org_slug"), ("Primary region", "primary_region")):
        print(f"{label + ':':<16}{app[key]}")
    print(f"{'Created:':<16}{app['created_at']}")
    if app.get("declared_in_config"):
        print(f"{'Config:':<16}declared in the daemon's config (applied when its entry changes)")
    print()
    print_ips(app.get("ips", []), as_json=False)
    print()
    print_table(("service", "ports", "checks"), service_rows(app), "No services.")
    print()
    print_table(HEADERS, [machine_row(m) for m in machines], "No machines.")
    return 0


def service_rows(app: dict[str, Any]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for service in app.get("services", []):
        ports = ", ".join(
            f"{p['port']} [{','.join(p.get('handlers') or []) or 'tcp'}]"
            for p in service.get("ports", [])
        )
        checks = len(service.get("tcp_checks") or []) + len(service.get("http_checks") or [])
        rows.append((service["internal_port"], ports or "-", checks or "none"))
    return rows


def cmd_apps_destroy(client: ApiClient, args: argparse.Namespace) -> int:
    if not args.yes:
        raise BadRequest(
            f"destroying {args.name} releases all its IP addresses for good; "
            "run again with --yes to confirm"
        )
    client.delete(f"/v1/apps/{args.name}")
    print(f"Destroyed app {args.name}")
    return 0


def cmd_regions_list(client: ApiClient, args: argparse.Namespace) -> int:
    regions = client.get("/v1/platform/regions")["Regions"]
    if args.json:
        print_json(regions)
        return 0
    rows = [(r["code"], r["name"], "deprecated" if r["deprecated"] else "current") for r in regions]
    print_table(("code", "name", "status"), rows, "No regions.")
    return 0


def _json_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("-j", "--json", action="store_true", help="print JSON")
    return parser


def register(commands: SubParsers) -> None:
    orgs = commands.add_parser("orgs", help="organisations").add_subparsers(
        dest="subcommand", required=True, metavar="SUBCOMMAND"
    )
    create = _json_flag(orgs.add_parser("create", help="create an org (admin token)"))
    create.add_argument("slug")
    create.set_defaults(handler=cmd_orgs_create)
    _json_flag(orgs.add_parser("list", help="list orgs")).set_defaults(handler=cmd_orgs_list)
    _register_apps(commands)
    regions = commands.add_parser("regions", help="the region catalogue").add_subparsers(
        dest="subcommand", required=True, metavar="SUBCOMMAND"
    )
    _json_flag(regions.add_parser("list", help="list regions")).set_defaults(
        handler=cmd_regions_list
    )


def _register_apps(commands: SubParsers) -> None:
    apps = commands.add_parser("apps", help="apps").add_subparsers(
        dest="subcommand", required=True, metavar="SUBCOMMAND"
    )
    create = _json_flag(apps.add_parser("create", help="create an app (with a public IPv4)"))
    create.add_argument("name")
    create.add_argument("-o", "--org", help="org slug (default: personal)")
    create.add_argument("-r", "--region", help="primary region (default: the edge's local)")
    create.add_argument("--ipv6", action="store_true", help="also assign a dedicated IPv6")
    create.add_argument("--no-public-ips", action="store_true", help="assign no public IP")
    create.set_defaults(handler=cmd_apps_create)
    _json_flag(apps.add_parser("list", help="list apps")).set_defaults(handler=cmd_apps_list)
    show = _json_flag(apps.add_parser("show", help="show an app and its IPs"))
    show.add_argument("name")
    show.set_defaults(handler=cmd_apps_show)
    destroy = apps.add_parser("destroy", help="destroy an app and release its IPs")
    destroy.add_argument("name")
    destroy.add_argument("-y", "--yes", action="store_true", help="confirm")
    destroy.set_defaults(handler=cmd_apps_destroy)
