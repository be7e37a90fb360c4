"""The anycast lab's topology as one immutable value: namespaces, links, addresses, delays.

Every decision the lab makes about its network is a pure function here, so it is
tested as tables: which namespaces exist, which address each interface gets, the
one-way delay of each link (from the latency model), the AS-path prepends of the
``nearest`` policy; the catchments BGP is expected to produce are in ``edge.lab.bgp``.

The network, per region R in the lab (PoP regions, client regions, machine regions):

- ``<prefix>-r-R``: a router running BIRD, AS ``65001 + i``, with a full mesh of
  links to every other router. A router link carries half the modelled RTT minus the
  region floor, so that client -> router -> router -> PoP adds up to the model.
- ``<prefix>-p-R`` (PoP regions): one edge node and a BIRD speaker, AS ``64601 + i``,
  announcing the anycast prefix to R's router; uplink and access links carry a quarter
  of the floor each, so a client reaches its own region's PoP in ``per_hop_floor``.
- ``<prefix>-c-R`` (client regions): a client with its own address ``100.64.i.2``,
  mapped to R in the edge configuration (``edge.clients``).
- ``<prefix>-m-R`` (machine regions): a machine of the lab's app.
- ``<prefix>-cp``: the control plane (PostgreSQL), on the management bridge with
  every PoP node and the host.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge.core.latency import LatencyModel
from edge.lab.bgp import BgpRoute, expected_catchments, expected_routes

__all__ = ["BgpRoute", "Topology", "build_topology", "expected_catchments", "expected_routes"]

Policy = Literal["nearest", "shortest-path"]
POLICIES: tuple[Policy, ...] = ("nearest", "shortest-path")

ANYCAST_PREFIX = "203.0.113.0/24"  # TEST-NET-3: the anycast pool, inside the lab only
SHARED_V4 = "203.0.113.254"
DEFAULT_PREFIX = "elab"
PG_PORT = 5432
API_PORT = 4280
APP_PORT = 8080  # the lab app's public port and its machines' internal port
ROUTER_ASN_BASE = 65001
POP_ASN_BASE = 64601
PREPEND_STEP = 0.005  # seconds of modelled RTT per AS-path prepend (nearest policy)
MAX_REGIONS = 32  # router links take 198.18.2.0/23 as /30s: 32 regions is 496 links
DEFAULT_POPS = ("lhr", "iad", "syd")
DEFAULT_CLIENTS = ("lhr", "iad", "syd", "nrt")
DEFAULT_MACHINES = ("lhr",)


@dataclass(frozen=True, slots=True)
class End:
    """One end of a link: the namespace (None: the host), interface name, address."""

    ns: str | None
    ifname: str
    address: str | None  # "A.B.C.D/len", or None (a bridge port)


@dataclass(frozen=True, slots=True)
class Link:
    """A point-to-point link; ``delay`` is one way, seconds, each direction."""

    name: str
    kind: Literal["router", "pop", "client", "machine", "mgmt"]
    a: End
    b: End
    delay: float
    jitter: float = 0.0


@dataclass(frozen=True, slots=True)
class Router:
    region: str
    ns: str
    asn: int
    router_id: str


@dataclass(frozen=True, slots=True)
class PopNode:
    region: str
    ns: str
    asn: int
    router_id: str
    uplink: str  # this side of the PoP -> router link, "A.B.C.D"
    gateway: str  # the router's side
    mgmt: str  # the management address: API and control-plane traffic

    @property
    def api_url(self) -> str:
        return f"http://{self.mgmt}:{API_PORT}"


@dataclass(frozen=True, slots=True)
class Client:
    region: str
    ns: str
    address: str
    gateway: str
    network: str  # the CIDR mapped to ``region`` in edge.clients


@dataclass(frozen=True, slots=True)
class MachineNode:
    region: str
    ns: str
    machine_id: str
    address: str
    gateway: str


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str
    policy: Policy
    regions: tuple[str, ...]  # every region with a router, in router-id order
    routers: tuple[Router, ...]
    pops: tuple[PopNode, ...]
    clients: tuple[Client, ...]
    machines: tuple[MachineNode, ...]
    links: tuple[Link, ...]
    prepends: dict[tuple[str, str], int]  # (from region, to region) -> extra prepends
    floor: float

    @property
    def mgmt_net(self) -> str:
        return f"{mgmt_base(self.prefix)}.0/24"

    @property
    def host_mgmt(self) -> str:
        return f"{mgmt_base(self.prefix)}.1"

    @property
    def cp_mgmt(self) -> str:
        return f"{mgmt_base(self.prefix)}.2"

    @property
    def cp_ns(self) -> str:
        return f"{self.prefix}-cp"

    @property
    def wire_ns(self) -> str:
        return f"{self.prefix}-wire"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-mgmt"

    def namespaces(self) -> tuple[str, ...]:
        nodes: list[str] = [r.ns for r in self.routers]
        nodes += [p.ns for p in self.pops] + [c.ns for c in self.clients]
        nodes += [m.ns for m in self.machines]
        return (self.wire_ns, self.cp_ns, *nodes)

    def router(self, region: str) -> Router:
        return next(r for r in self.routers if r.region == region)

    def pop(self, region: str) -> PopNode:
        for pop in self.pops:
            if pop.region == region:
                return pop
        raise KeyError(region)

    def client(self, region: str) -> Client:
        for client in self.clients:
            if client.region == region:
                return client
        raise KeyError(region)

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise KeyError(name)

    def router_links(self, region: str) -> tuple[tuple[Link, str], ...]:
        """Every router link of ``region`` with the region at its other end."""
        found = []
        for link in self.links:
            if link.kind != "router":
                continue
            ends = link.name.split("-")
            if region in ends:
                found.append((link, ends[1] if ends[0] == region else ends[0]))
        return tuple(found)


_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,7}$")


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"prefix {prefix!r}: use 1-8 lowercase letters and digits, starting with a letter "
            "(it starts every namespace and interface name, at most 15 characters)"
        )
    return prefix


def mgmt_base(prefix: str) -> str:
    """The first three octets of the lab's management /24 (host .1, control plane .2,
    PoP i .10+i). It is the one network the host sees, so labs under other prefixes
    get their own: 198.18.0 for the default prefix, 198.19.N for the others."""
    if prefix == DEFAULT_PREFIX:
        return "198.18.0"
    return f"198.19.{zlib.crc32(prefix.encode()) % 254 + 1}"


def ordered_regions(*groups: Sequence[str]) -> tuple[str, ...]:
    """Regions of every group, first appearance first, without repeats."""
    seen: dict[str, None] = {}
    for group in groups:
        for region in group:
            seen.setdefault(region, None)
    return tuple(seen)


def router_link_delay(model: LatencyModel, a: str, b: str, floor: float) -> float:
    """One way across the link between the routers of ``a`` and ``b``, seconds.

    The access links at both ends add ``floor / 2`` to the round trip, so a router link
    carries the rest of the modelled RTT: ``(rtt - floor) / 2`` each way.
    """
    return max(0.0, (model.rtt(a, b) - floor) / 2)


def access_link_delay(floor: float) -> float:
    """One way on a client, PoP or machine link: a quarter of the in-region floor."""
    return floor / 4


def prepend_count(model: LatencyModel, a: str, b: str, floor: float, policy: Policy) -> int:
    """Extra AS-path prepends on routes router ``a`` exports to router ``b``.

    ``nearest``: one per ``PREPEND_STEP`` of modelled RTT beyond the floor, so BGP's
    shortest AS path is the nearest PoP; ``shortest-path``: none, plain BGP.
    """
    if policy == "shortest-path":
        return 0
    return round(max(0.0, model.rtt(a, b) - floor) / PREPEND_STEP)


def _ns(prefix: str, role: str, region: str) -> str:
    return f"{prefix}-{role}-{region}"


def _p2p(base: str, index: int) -> tuple[str, str]:
    """The two host addresses of the ``index``-th /30 after ``base``."""
    network = ipaddress.ip_address(base) + 4 * index
    return f"{network + 1}", f"{network + 2}"


def build_topology(
    model: LatencyModel,
    floor: float,
    pops: Sequence[str],
    clients: Sequence[str],
    machines: Sequence[str] = DEFAULT_MACHINES,
    policy: Policy = "nearest",
    prefix: str = "elab",
) -> Topology:
    """The whole lab for these regions; ValueError names what is wrong."""
    check_prefix(prefix)
    check_regions(model, pops, clients, machines, policy)
    base = mgmt_base(prefix)
    regions = ordered_regions(pops, clients, machines)
    routers = tuple(
        Router(region, _ns(prefix, "r", region), ROUTER_ASN_BASE + i, f"198.18.255.{i + 1}")
        for i, region in enumerate(regions)
    )
    links: list[Link] = []
    pop_nodes = []
    access = access_link_delay(floor)
    for i, region in enumerate(pops):
        gateway, uplink = _p2p("198.18.1.0", i)
        ns = _ns(prefix, "p", region)
        router = _ns(prefix, "r", region)
        links.append(
            Link(
                f"pop-{region}",
                "pop",
                End(ns, "up0", f"{uplink}/30"),
                End(router, f"p-{region}", f"{gateway}/30"),
                access,
            )
        )
        mgmt = f"{base}.{10 + i}"
        links.append(
            Link(
                f"mgmt-{region}",
                "mgmt",
                End(ns, "mg0", f"{mgmt}/24"),
                End(None, f"{prefix}-g{i}", None),
                0.0,
            )
        )
        pop_nodes.append(
            PopNode(region, ns, POP_ASN_BASE + i, f"198.18.254.{i + 1}", uplink, gateway, mgmt)
        )
    links.append(
        Link(
            "mgmt-cp",
            "mgmt",
            End(f"{prefix}-cp", "mg0", f"{base}.2/24"),
            End(None, f"{prefix}-gcp", None),
            0.0,
        )
    )
    client_nodes = []
    for region in clients:
        i = regions.index(region)
        ns, router = _ns(prefix, "c", region), _ns(prefix, "r", region)
        client = Client(region, ns, f"100.64.{i}.2", f"100.64.{i}.1", f"100.64.{i}.0/24")
        client_nodes.append(client)
        links.append(
            Link(
                f"client-{region}",
                "client",
                End(ns, "eth0", f"{client.address}/24"),
                End(router, f"c-{region}", f"{client.gateway}/24"),
                access,
            )
        )
    machine_nodes = []
    for i, region in enumerate(machines):
        gateway, address = _p2p("198.18.3.0", i)
        ns, router = _ns(prefix, "m", region), _ns(prefix, "r", region)
        machine_nodes.append(MachineNode(region, ns, f"hello-{region}-1", address, gateway))
        links.append(
            Link(
                f"machine-{region}",
                "machine",
                End(ns, "eth0", f"{address}/30"),
                End(router, f"m-{region}", f"{gateway}/30"),
                access,
            )
        )
    prepends: dict[tuple[str, str], int] = {}
    index = 0
    for i, a in enumerate(regions):
        for b in regions[i + 1 :]:
            end_a, end_b = _p2p("198.18.2.0", index)
            index += 1
            delay = router_link_delay(model, a, b, floor)
            links.append(
                Link(
                    f"{a}-{b}",
                    "router",
                    End(_ns(prefix, "r", a), f"r-{b}", f"{end_a}/30"),
                    End(_ns(prefix, "r", b), f"r-{a}", f"{end_b}/30"),
                    delay,
                )
            )
            prepends[(a, b)] = prepend_count(model, a, b, floor, policy)
            prepends[(b, a)] = prepend_count(model, b, a, floor, policy)
    return Topology(
        prefix=prefix,
        policy=policy,
        regions=regions,
        routers=routers,
        pops=tuple(pop_nodes),
        clients=tuple(client_nodes),
        machines=tuple(machine_nodes),
        links=tuple(links),
        prepends=prepends,
        floor=floor,
    )


def check_regions(
    model: LatencyModel,
    pops: Sequence[str],
    clients: Sequence[str],
    machines: Sequence[str],
    policy: str,
) -> None:
    known = model.codes()
    for label, group in (("--pops", pops), ("--clients", clients), ("--machines", machines)):
        unknown = [r for r in group if r not in known]
        if unknown:
            raise ValueError(f"{label}: unknown region(s) {', '.join(unknown)}")
        if len(set(group)) != len(group):
            raise ValueError(f"{label}: a region is named twice")
    if not pops:
        raise ValueError("--pops: the lab needs at least one PoP")
    if not machines:
        raise ValueError("--machines: the lab's app needs at least one machine region")
    if len(ordered_regions(pops, clients, machines)) > MAX_REGIONS:
        raise ValueError(f"the lab takes at most {MAX_REGIONS} regions")
    if len(pops) > 200:
        raise ValueError("--pops: at most 200 PoPs")
    if policy not in POLICIES:
        raise ValueError(f"--policy: use one of {', '.join(POLICIES)}, not {policy!r}")
