"""What the running lab looks like: real BGP routes, sessions, nodes; faults on links."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from edge.core.anycast import ingress_pop
from edge.lab import labconfig
from edge.lab.control import (
    bird_socket,
    latency_model,
    node_healthy,
    shared_store,
    token_file,
)
from edge.lab.links import load_shapes, set_shape
from edge.lab.netns import LabError, run
from edge.lab.shape import parse_fault
from edge.lab.topology import ANYCAST_PREFIX, Topology, expected_catchments

_ORIGIN = re.compile(r"\[AS(\d+)[ie?]\]")
_PROTOCOL = re.compile(r"^(\S+)\s+(BGP|Static)\s+\S+\s+(\S+)\s+\S+\s*(.*)$")


def birdc(state: Path, ns: str, *command: str) -> str:
    result = run("birdc", "-s", bird_socket(state, ns), *command, check=False, timeout=5)
    if result.returncode != 0:
        raise LabError(f"birdc in {ns}: {result.stdout.strip() or result.stderr.strip()}")
    return result.stdout


def origin_asn(show_route: str) -> int | None:
    """The origin AS of the best route in ``birdc show route for ...`` output."""
    for line in show_route.splitlines():
        if " * " in line or line.rstrip().endswith("]"):
            match = _ORIGIN.search(line)
            if match:
                return int(match.group(1))
    return None


def protocols(show_protocols: str) -> dict[str, tuple[str, str]]:
    """``birdc show protocols``: name -> (state, info) for BGP and static protocols."""
    found = {}
    for line in show_protocols.splitlines():
        match = _PROTOCOL.match(line.strip())
        if match:
            found[match.group(1)] = (match.group(3), match.group(4).strip())
    return found


def real_catchments(topology: Topology, state: Path) -> dict[str, str | None]:
    """The PoP each client region's router forwards the anycast prefix to, from BIRD."""
    by_asn = {pop.asn: pop.region for pop in topology.pops}
    address = ANYCAST_PREFIX.split("/")[0]
    found: dict[str, str | None] = {}
    for client in topology.clients:
        text = birdc(state, topology.router(client.region).ns, "show", "route", "for", address)
        asn = origin_asn(text)
        found[client.region] = None if asn is None else by_asn.get(asn)
    return found


def model_catchments(topology: Topology, withdrawn: frozenset[str]) -> dict[str, str | None]:
    """What ``edgectl catchment`` says: the nearest PoP up by modelled RTT (one rule)."""
    model, _ = latency_model()
    up = [p.region for p in topology.pops if p.region not in withdrawn]
    return {c.region: ingress_pop(c.region, up, model) for c in topology.clients}


def announced(topology: Topology, state: Path) -> dict[str, bool]:
    found = {}
    for pop in topology.pops:
        try:
            rows = protocols(birdc(state, pop.ns, "show", "protocols"))
            found[pop.region] = rows.get("anycast", ("down", ""))[0] == "up"
        except LabError:
            found[pop.region] = False
    return found


def anycast_addresses(topology: Topology, state: Path) -> list[dict[str, Any]]:
    for pop in topology.pops:
        try:
            token = token_file(state, pop.region).read_text().strip()
            request = urllib.request.Request(
                f"{pop.api_url}/v1/apps/{labconfig.APP}/ip_assignments",
                headers={"Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=2) as answer:
                ips = json.loads(answer.read())["ips"]
        except (OSError, ValueError, KeyError):
            continue
        return [
            {"app": labconfig.APP, "address": row["ip"], "ports": [8080], "type": row["type"]}
            for row in ips
        ]
    return []


def status(topology: Topology, state: Path) -> dict[str, Any]:
    real = real_catchments(topology, state)
    up = announced(topology, state)
    withdrawn = frozenset(region for region, on in up.items() if not on)
    expected = expected_catchments(topology, withdrawn)
    model = model_catchments(topology, withdrawn)
    sessions = {}
    for router in topology.routers:
        rows = protocols(birdc(state, router.ns, "show", "protocols"))
        sessions[router.region] = {name: info for name, (_, info) in rows.items()}
    return {
        "prefix": topology.prefix,
        "policy": topology.policy,
        "state_dir": str(state),
        "store": shared_store(state) or "sqlite (one per node)",
        "pops": [
            {"pop": p.region, "namespace": p.ns, "unicast": p.uplink, "mgmt": p.mgmt,
             "api_url": p.api_url, "asn": p.asn, "edge_healthy": node_healthy(p.api_url),
             "announced": up[p.region],
             "token_file": str(token_file(state, p.region))}
            for p in topology.pops
        ],
        "clients": [
            {"region": c.region, "namespace": c.ns, "address": c.address, "pop": real[c.region],
             "expected": expected[c.region], "model": model[c.region]}
            for c in topology.clients
        ],
        "machines": [
            {"id": m.machine_id, "region": m.region, "namespace": m.ns, "address": m.address}
            for m in topology.machines
        ],
        "anycast": anycast_addresses(topology, state),
        "bgp_sessions": sessions,
    }  # fmt: skip


def print_status(data: dict[str, Any]) -> None:
    print(f"lab {data['prefix']} (policy {data['policy']}), state in {data['state_dir']}")
    print(f"control plane: {data['store']}\n")
    print("PoP  namespace        unicast       api                        edge  announced")
    for p in data["pops"]:
        print(
            f"{p['pop']:<4} {p['namespace']:<16} {p['unicast']:<13} {p['api_url']:<26} "
            f"{'up' if p['edge_healthy'] else 'DOWN':<5} {'yes' if p['announced'] else 'WITHDRAWN'}"
        )
    print("\nclient namespace        address       reaches  (BGP expects, model)")
    for c in data["clients"]:
        print(
            f"{c['region']:<6} {c['namespace']:<16} {c['address']:<13} {c['pop'] or '-':<8} "
            f"({c['expected'] or '-'}, {c['model'] or '-'})"
        )
    print(
        "\nanycast:",
        ", ".join(
            f"{a['address']}:{','.join(map(str, a['ports']))} ({a['app']})" for a in data["anycast"]
        )
        or "none",
    )
    print("\nBGP sessions:")
    for region, rows in data["bgp_sessions"].items():
        print(f"  {region}: " + ", ".join(f"{name} {info}" for name, info in rows.items()))


def resolve_link(topology: Topology, target: str) -> str:
    """``lhr-iad``/``iad-lhr`` (router link), ``pop:syd``, ``client:syd``, ``mgmt:syd``."""
    kind, sep, region = target.partition(":")
    names = [target] if not sep else [f"{kind}-{region}"]
    if not sep and "-" in target:
        a, _, b = target.partition("-")
        names.append(f"{b}-{a}")
    for name in names:
        try:
            return topology.link(name).name
        except KeyError:
            continue
    known = ", ".join(link.name for link in topology.links)
    raise LabError(f"no link {target!r}; use pop:REGION, client:REGION, mgmt:REGION, "
                   f"machine:REGION or a router link ({known})")  # fmt: skip


def fault(topology: Topology, state: Path, target: str, items: list[str]) -> dict[str, Any]:
    name = resolve_link(topology, target)
    _, shapes = load_shapes(state)
    try:
        shape = parse_fault(items, shapes[name])
    except ValueError as exc:
        raise LabError(str(exc)) from None
    set_shape(topology, state, name, shape)
    return {"link": name, "shape": shape.describe()}
