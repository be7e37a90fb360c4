"""``edgectl route`` (why a client lands where it does) and ``edgectl status``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from edge.cli import ctl_catchment
from edge.cli.argtypes import SubParsers
from edge.cli.client import ApiClient
from edge.cli.output import print_json, print_table
from edge.errors import NotFound

RULES = {
    "nearest": "the nearest region with a started machine, on one below its soft limit",
    "spill_over_soft": "the nearest region, but every machine there is at its soft limit: "
    "the least loaded one",
    "cross_region": "no machine of the nearest region could take it: the next nearest region",
    "prefer_region": "the first preferred region (fly-prefer-region) with a candidate",
    "force_region": "the first forced region (fly-force-region) with a candidate",
    "replay": "the app's fly-replay instruction chose the target",
    "prefer_instance": "the preferred machine (fly-prefer-instance-id)",
    "force_instance": "the forced machine (fly-force-instance-id)",
    "panic": "panic mode: too few healthy machines, so health is ignored",
    "retry": "a retry, after the machines already tried",
    "no_candidate": "no machine can take it",
    "weighted_latency": "at random, weighted by weight / RTT^k (weighted_latency)",
    "least_connections": "the fewest active connections or requests (least_connections)",
    "p2c_peak_ewma": "the cheaper of two at random by measured RTT x load (p2c_peak_ewma)",
    "maglev": "consistent hashing of the client address (maglev)",
}
BANDS = {"below_soft": "below soft", "soft": "over soft", "hard": "at hard"}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


# --- edgectl route -----------------------------------------------------------------------


def cmd_route(client: ApiClient, args: argparse.Namespace) -> int:
    query = {
        key: str(value)
        for key, value in (
            ("from", args.from_region),
            ("port", args.port),
            ("prefer", args.prefer),
            ("replay", args.replay),
        )
        if value is not None
    }
    answer = client.get(f"/v1/apps/{args.app}/route", query)
    if args.json:
        print_json(answer)
    else:
        print_route(answer, args.prefer)
    return 0


def print_route(answer: dict[str, Any], prefer: str | None = None) -> None:
    print(_landing(answer) + "\n")
    rows = []
    for pop in answer["pops"]:
        note = "<- lands here" if pop["pop"] == answer["pop"] else ""
        rows.append((pop["pop"], ms(pop["rtt_ms"]), "up" if pop["up"] else "withdrawn", note))
    print_table(("pop", "rtt", "status"), rows, "No PoPs.")
    if answer["pop"] is None:
        print("\nNo machine is chosen: the client reaches no PoP.")
        return
    wish = f", preferring {prefer}" if prefer else ""
    print(
        f"\nFrom PoP {answer['pop']}, port {answer['port']}, strategy {answer['strategy']}{wish}:"
    )
    if answer["panic"]:
        print("PANIC MODE: too few healthy machines, health checks are ignored.")
    print()
    print_table(
        ("machine", "region", "rtt", "load", "band", "health", "candidate"),
        [_candidate_row(c, answer["chosen"]) for c in answer["candidates"]],
        "This app has no machines.",
    )
    print()
    print(_verdict(answer))
    cold = answer.get("last_cold_start")
    if cold:
        who = "request" if cold["waiters"] == 1 else "requests"
        print(f"Cold start: {cold['text']} ({cold['waiters']} {who} waited)")
    if answer.get("replay") is not None:
        print_replay(answer["replay"])
    if answer.get("recent_replays"):
        print_recent_replays(answer["recent_replays"])


def print_replay(replay: dict[str, Any]) -> None:
    source = replay["source"]
    who = "no machine" if source is None else source["machine_id"]
    print(f"\nReplay: {who} answers fly-replay: {replay['instruction']}")
    refused = replay.get("refused")
    if refused is not None:
        print(f"Refused: {refused['code']}: {refused['text']}")
        return
    regions = ", ".join(replay["regions"]) or "any"
    how = "forced" if replay["forced"] else "preferred, then anywhere"
    print(f"Target: app {replay['target_app']}, regions {regions} ({how})")
    if replay.get("fallback"):
        limit = replay.get("timeout_s")
        within = f" within {limit:g}s" if limit is not None else ""
        print(f"Unreachable{within}: back to {who} ({replay['fallback']}, fly-replay-failed)")
    print()
    print_table(
        ("machine", "region", "rtt", "load", "band", "health", "candidate"),
        [_candidate_row(c, replay["chosen"]) for c in replay["candidates"]],
        "The target app has no machines.",
    )
    chosen = replay["chosen"]
    reason, detail = replay["reason"], replay["detail"]
    rule = f"Rule:   {reason}: {RULES.get(reason, reason)}" + (f" ({detail})" if detail else "")
    print()
    where = "none" if chosen is None else f"{chosen['machine_id']} in {chosen['region']}"
    print(f"Replayed to: {where}\n{rule}")


def print_recent_replays(replays: list[dict[str, Any]]) -> None:
    print("\nRecent replays (newest first):")
    rows = [
        (
            time.strftime("%H:%M:%S", time.localtime(r["at"])),
            f"{r['source_machine']} -> {r['target_machine'] or '-'}",
            r["target_region"] or "-",
            r["result"],
            r["instruction"],
        )
        for r in replays
    ]
    print_table(("time", "replay", "region", "result", "instruction"), rows, "None.")


def _landing(answer: dict[str, Any]) -> str:
    pop, origin = answer["pop"], answer["from"]
    if pop is None:
        return f"A client in {origin} reaches no PoP: every PoP is withdrawn."
    ranked = answer["pops"]
    rtt = next(p["rtt_ms"] for p in ranked if p["pop"] == pop)
    skipped = [p["pop"] for p in ranked if p["rtt_ms"] < rtt and not p["up"]]
    why = f"the nearest PoP, {ms(rtt)} away"
    if skipped:
        why = f"the nearest PoP up, {ms(rtt)} away; nearer {', '.join(skipped)} withdrawn"
    return f"A client in {origin} lands on PoP {pop} ({why})."


def _candidate_row(view: dict[str, Any], chosen: dict[str, Any] | None) -> tuple[object, ...]:
    health = view["health"] + (", ejected" if view["ejected"] else "")
    if view["why_not"] == "not started":
        health = "-"
    candidate = "yes" if view["candidate"] else f"no: {view['why_not'] or 'not a candidate'}"
    picked = chosen is not None and chosen["machine_id"] == view["machine_id"]
    return (
        view["machine_id"],
        view["region"],
        ms(view["rtt_ms"]),
        view["load"],
        BANDS.get(view["band"], view["band"]),
        health,
        candidate,
        "<- chosen" if picked else "",
    )


def _verdict(answer: dict[str, Any]) -> str:
    reason, detail, chosen = answer["reason"], answer["detail"], answer["chosen"]
    rule = f"Rule:   {reason}: {RULES.get(reason, reason)}"
    if detail:
        rule += f" ({detail})"
    if chosen is None:
        return f"Chosen: none\n{rule}"
    band = BANDS.get(chosen["band"], chosen["band"])
    return f"Chosen: {chosen['machine_id']} in {chosen['region']} ({band} limit)\n{rule}"


# --- edgectl status ----------------------------------------------------------------------


def cmd_status(client: ApiClient, args: argparse.Namespace) -> int:
    status = client.get("/v1/status")
    if args.app:
        status = only_app(status, args.app)
    if args.json:
        print_json(status)
    else:
        print_status(status)
    return 0


def only_app(status: dict[str, Any], name: str) -> dict[str, Any]:
    """The status of one app: its listeners include shared and failed ones on its IPs."""
    apps = [app for app in status["apps"] if app["name"] == name]
    if not apps:
        raise NotFound(f"app {name!r} not found")
    addresses = {ip["ip"] for ip in apps[0]["ips"]}
    return {
        **status,
        "apps": apps,
        "listeners": [
            row
            for row in status["listeners"]
            if row.get("app") == name or (row.get("app") is None and row["address"] in addresses)
        ],
        "flows": [flow for flow in status["flows"] if flow["app"] == name],
        "recent": [decision for decision in status["recent"] if decision["app"] == name],
    }


def print_cluster(cluster: dict[str, Any]) -> None:
    """The node answering, its link to the control plane, and every node."""
    link = cluster["control_plane"]
    state = "connected" if link["connected"] else "UNREACHABLE (degraded: changes refused)"
    print(f"Node:           {cluster['node']}, control plane {link['store']} {state}")
    stale = "" if cluster["nodes_fresh"] else " (last known: the control plane is unreachable)"
    rows = [
        (
            n["name"] + (" (this)" if n["self"] else ""),
            ",".join(n["pops"]),
            n["api"],
            f"{n['last_contact_seconds']:.1f}s ago" + (" STALE" if n["stale"] else ""),
            n["applied_version"],
            n["serving"],
        )
        for n in cluster["nodes"]
    ]
    print_table(("node", "pops", "api", "last contact", "version", "serving"), rows, "No nodes.")
    print(stale.strip() or "", end="\n" if stale else "")
    print()


def print_status(status: dict[str, Any]) -> None:
    if "cluster" in status:
        print_cluster(status["cluster"])
    up = [pop["code"] for pop in status["pops"] if pop["up"]]
    down = [pop["code"] for pop in status["pops"] if not pop["up"]]
    print(f"PoPs up:        {' '.join(up) or 'none'}")
    print(f"PoPs withdrawn: {' '.join(down) or 'none'}\n")
    apps = status["apps"]
    app_rows = [
        (a["name"], a["org"], a["primary_region"], _ips(a["ips"]), len(a["machines"])) for a in apps
    ]
    print_table(("app", "org", "primary", "ips", "machines"), app_rows, "No apps.")
    print()
    listener_rows = [_listener_row(row) for row in _sorted_listeners(status["listeners"])]
    print_table(("listener", "app", "handlers", "status"), listener_rows, "No listeners.")
    print()
    machines = [(app["name"], m) for app in apps for m in app["machines"]]
    machines.sort(key=lambda item: (item[0], item[1]["region"], item[1]["id"]))
    print_table(
        ("app", "region", "machine", "state", "health", "load", "soft", "hard", "band"),
        [_machine_row(app, m) for app, m in machines],
        "No machines.",
    )
    reasons = [(app, m["id"], m["state_reason"]) for app, m in machines if m.get("state_reason")]
    if reasons:
        print()
        print_table(("app", "machine", "why (last start or stop by edge)"), reasons, "")
    if status["flows"]:
        print()
        print_table(
            ("app", "client", "pop", "machine_region", "rate/s"),
            [_flow_row(f) for f in status["flows"]],
            "",
        )


def _ips(ips: list[dict[str, Any]]) -> str:
    return ", ".join(f"{ip['ip']} ({ip['type']})" for ip in ips) or "-"


def _sorted_listeners(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (row.get("app") or "", row["address"], row["port"]))


def _listener_row(row: dict[str, Any]) -> tuple[object, ...]:
    address = f"[{row['address']}]" if ":" in row["address"] else row["address"]
    known = "app" in row  # a listener refused before it existed names no app or handlers
    app = (row["app"] or "(shared)") if known else "-"
    handlers = (",".join(row["handlers"]) or "tcp") if known else "-"
    if row.get("bound"):
        state = f"bound, {row.get('connections', 0)} connection(s)"
    else:
        state = f"error: {row.get('error') or 'not bound'}"
    return (f"{address}:{row['port']}", app, handlers, state)


def _machine_row(app: str, machine: dict[str, Any]) -> tuple[object, ...]:
    health = machine["health"] + (", ejected" if machine.get("ejected") else "")
    load, soft, hard = machine["load"], machine.get("soft_limit"), machine.get("hard_limit")
    started = machine["state"] == "started"
    band = _band(load, soft, hard) if started and soft is not None else "-"
    state = machine["state"] + (" (demo)" if machine.get("demo") else "")
    limits = ("-" if soft is None else soft, "-" if hard is None else hard)
    return (app, machine["region"], machine["id"], state, health, load, *limits, band)


def _band(load: int, soft: int, hard: int | None) -> str:
    if hard is not None and load >= hard:
        return BANDS["hard"]
    return BANDS["soft"] if load >= soft else BANDS["below_soft"]


def _flow_row(flow: dict[str, Any]) -> tuple[object, ...]:
    return (flow["app"], flow["client_region"], flow["pop"], flow["machine_region"], flow["rate"])


def register(commands: SubParsers) -> None:
    """``route`` and ``status``, and ``catchment`` (edge.cli.ctl_catchment)."""
    route = commands.add_parser(
        "route", help="explain where a client of a region lands and which machine serves it"
    )
    route.add_argument("-a", "--app", required=True, help="the app")
    route.add_argument(
        "--from", dest="from_region", metavar="REGION", help="the client's region (default: local)"
    )
    route.add_argument("--port", type=int, help="the public port (default: the first service)")
    route.add_argument("--prefer", metavar="REGION[,REGION]", help="as fly-prefer-region")
    route.add_argument(
        "--replay",
        metavar="FLY-REPLAY",
        help="explain where the answer 'fly-replay: FLY-REPLAY' of the chosen machine would "
        "send the request (for example region=iad or 'app=api;elsewhere=true')",
    )
    route.add_argument("-j", "--json", action="store_true", help="print JSON")
    route.set_defaults(handler=cmd_route)
    status = commands.add_parser(
        "status", help="PoPs, apps with IPs, listeners, machines with health and load"
    )
    status.add_argument("-a", "--app", help="only this app")
    status.add_argument("-j", "--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)
    ctl_catchment.register(commands)
