"""``edgectl catchment``: where simulated clients from every region land, and their RTT."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from edge.cli.argtypes import SubParsers, whole_number
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table
from edge.errors import BadRequest, EdgeError

PRESETS = ("population", "uniform")


def weights_query(value: str) -> str:
    """A preset name as is; a YAML file of REGION: WEIGHT as ``REGION:W,...``."""
    if value in PRESETS:
        return value
    try:
        data = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadRequest(f"--weights {value}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise BadRequest(f"--weights {value}: invalid YAML ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise BadRequest(f"--weights {value}: expected a mapping of REGION: WEIGHT")
    parts = []
    for region, weight in data.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise BadRequest(f"--weights {value}: {region}: weight must be a number")
        parts.append(f"{region}:{float(weight)!r}")
    return ",".join(parts)


def cmd_catchment(client: ApiClient, args: argparse.Namespace) -> int:
    query = {"clients": str(args.clients), "weights": weights_query(args.weights)}
    if args.port is not None:
        query["port"] = str(args.port)
    answer = client.get(f"/v1/apps/{args.app}/catchment", query)
    if args.plot:
        plot(answer, Path(args.plot))
    if args.json:
        print_json(answer)
        return 0
    print_catchment(answer)
    if args.plot:
        print(f"\nPlot written to {args.plot}")
    return 0


def plot(answer: dict[str, Any], path: Path) -> None:
    try:
        from edge.cli.catchment_plot import draw_catchment
    except ImportError:
        raise EdgeError("--plot needs matplotlib (pip install matplotlib)") from None
    try:
        draw_catchment(answer, path)
    except OSError as exc:
        raise EdgeError(f"cannot write {path}: {exc.strerror}") from None


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def print_catchment(answer: dict[str, Any]) -> None:
    summary, regions = answer["summary"], answer["regions"]
    print(
        f"Catchment of {answer['app']} (port {answer['port']}, strategy {answer['strategy']}): "
        f"{summary['clients']} simulated clients in {len(regions)} regions "
        f"(weights: {answer['weights']})\n"
    )
    rows = [line for row in regions for line in region_lines(row, summary["clients"])]
    headers = ("region", "clients", "share", "pop", "to_pop", "served_from", "backhaul", "rtt")
    print_table((*headers, "rule"), rows, "No client regions.")
    print()
    for line in summary_lines(answer):
        print(line)


def region_lines(row: dict[str, Any], total: int) -> list[tuple[object, ...]]:
    """One line per machine region serving the clients of a region (the first one named)."""
    share = f"{100.0 * row['clients'] / total:.1f}%" if total else "-"
    head = (row["region"], row["clients"], share, row["pop"] or "-", ms(row["access_ms"]))
    lines: list[tuple[object, ...]] = []
    for leg in row["served"]:
        served = leg["machine_region"]
        if len(row["served"]) > 1 and row["clients"]:
            served += f" ({100.0 * leg['clients'] / row['clients']:.0f}%)"
        rule = next(iter(leg["reasons"]), "")
        lines.append((served, ms(leg["backhaul_ms"]), ms(leg["rtt_ms"]), rule))
    if row["unserved"] or not row["served"]:
        why = row["why_unserved"] or "no machine"
        count = f" ({row['unserved']})" if row["unserved"] and row["served"] else ""
        lines.append((f"none{count}", "-", "-", why))
    return [(*(head if i == 0 else ("",) * len(head)), *line) for i, line in enumerate(lines)]


def summary_lines(answer: dict[str, Any]) -> list[str]:
    summary = answer["summary"]
    served, clients = summary["served"], summary["clients"]
    lines = []
    if served:
        lines.append(
            f"Modelled RTT over {served} served clients: median {ms(summary['median_ms'])}, "
            f"p95 {ms(summary['p95_ms'])}, mean {ms(summary['mean_ms'])}"
        )
    unserved = clients - served
    lines.append("Every client was served." if not unserved else f"Unserved: {unserved} clients")
    lines.append("Clients by PoP:            " + _shares(_by(answer, "pop"), clients))
    lines.append("Clients by machine region: " + _shares(_by(answer, "machine"), clients))
    return lines


def _by(answer: dict[str, Any], what: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in answer["regions"]:
        if what == "pop" and row["pop"] is not None:
            counts[row["pop"]] = counts.get(row["pop"], 0) + row["clients"] - row["unserved"]
        for leg in row["served"] if what == "machine" else ():
            counts[leg["machine_region"]] = counts.get(leg["machine_region"], 0) + leg["clients"]
    return counts


def _shares(counts: dict[str, int], total: int) -> str:
    ranked = sorted(((n, key) for key, n in counts.items() if n), reverse=True)
    return ", ".join(f"{key} {100.0 * n / total:.0f}%" for n, key in ranked) or "none"


def register(commands: SubParsers) -> None:
    parser = commands.add_parser(
        "catchment",
        help="simulate clients from every region: PoP, machine region and RTT of each",
    )
    parser.add_argument("-a", "--app", required=True, help="the app")
    parser.add_argument(
        "--clients",
        type=whole_number,
        default=1000,
        help="simulated clients (default 1000, max 10000)",
    )
    parser.add_argument(
        "--weights",
        default="population",
        metavar="population|uniform|FILE",
        help="clients per region: by metro population (default), uniform, "
        "or a YAML file of REGION: WEIGHT",
    )
    parser.add_argument(
        "--port", type=whole_number, help="the public port (default: the first service)"
    )
    parser.add_argument("--plot", metavar="FILE.png", help="also draw the map and RTT to a PNG")
    parser.add_argument("-j", "--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=cmd_catchment)
