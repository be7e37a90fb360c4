"""IP address management rules: which address an allocation gets, and when it may not.

Pure functions over values; a store reads the current state inside one transaction,
asks ``plan_allocation`` (or ``plan_app_ips``) for the new assignments, and writes them.

Decisions, following the platform:

- ``v4``, ``v6`` and ``private_v6`` are dedicated: each comes from its pool
  (``ipam.pools.*``) and belongs to one app at a time.
- ``shared_v4`` is the one ``ipam.shared_v4`` address, held by every app that asks
  for it (at most once per app). The platform gives it free and shows it apart from
  the app's IP addresses, so it does **not** count toward ``ipam.max_ips_per_org``
  and its region is always ``global``.
- The app's first assignment is its primary and cannot be released while the app
  exists (destroying the app releases it).
- A released address is not handed out again for ``ipam.reuse_after`` seconds; the
  allocator prefers never-used addresses (from the start of the pool), then the one
  released longest ago.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeGuard

from edge.errors import BadRequest, ConfigError, Conflict, LimitExceeded, NotFound, PoolExhausted

if TYPE_CHECKING:
    from edge.config.model import IpamSpec, ServiceSpec

IpType = Literal["v4", "shared_v4", "v6", "private_v6"]
IP_TYPES: tuple[IpType, ...] = ("v4", "shared_v4", "v6", "private_v6")
DEDICATED_TYPES: tuple[IpType, ...] = ("v4", "v6", "private_v6")
SHARED_REGION = "global"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_ip_type(value: object) -> TypeGuard[IpType]:
    return value in IP_TYPES


def parse_ip_type(value: object) -> IpType:
    """``value`` as an IP type; BadRequest listing the valid ones otherwise."""
    if not is_ip_type(value):
        raise BadRequest(f"type must be one of {', '.join(IP_TYPES)}, not {value!r}")
    return value


def counts_toward_limit(ip_type: IpType) -> bool:
    """Whether an assignment of this type counts toward ``ipam.max_ips_per_org``."""
    return ip_type != "shared_v4"


def normalize_address(text: str) -> str:
    """The canonical text of an IP address; BadRequest when it is not one."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise BadRequest(f"invalid IP address: {text!r}") from None


def format_time(epoch: float) -> str:
    """RFC 3339 UTC with whole seconds: ``2026-11-29T10:05:00Z``."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    """Epoch seconds from RFC 3339 (``Z`` or an offset); BadRequest when malformed."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"invalid time {text!r}: use RFC 3339, like 2026-11-29T10:05:00Z"
        ) from None
    if moment.tzinfo is None:
        raise BadRequest(f"time {text!r} has no time zone: add Z for UTC")
    return int(moment.timestamp())


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IpAssignment:
    """One address held by one app. ``created_at`` is whole epoch seconds (UTC)."""

    address: str
    type: IpType
    region: str
    app: str
    org: str
    created_at: int
    shared: bool
    primary: bool

    @property
    def created(self) -> str:
        return format_time(self.created_at)


@dataclass(frozen=True, slots=True)
class AppRef:
    """What the rules need to know about the app an address is for."""

    name: str
    org: str
    primary_region: str
    # Public ports of the app's services that are raw TCP (no http or tls handler): the
    # shared IPv4 routes by Host or SNI only, so it can never serve them.
    raw_tcp_ports: tuple[int, ...] = ()


def raw_tcp_ports(services: Iterable[ServiceSpec]) -> tuple[int, ...]:
    """The public ports the shared IPv4 cannot route (neither http nor tls)."""
    return tuple(
        port.port
        for service in services
        for port in service.ports
        if not (port.is_http or port.is_tls)
    )


def shared_v4_problem(app: str, ports: Sequence[int]) -> str:
    """Why ``app`` cannot be on the shared IPv4 with these raw TCP ``ports`` ("" if none)."""
    if not ports:
        return ""
    listed = ("port " if len(ports) == 1 else "ports ") + ", ".join(str(p) for p in ports)
    return (
        f"app {app!r} cannot use the shared IPv4: it has raw TCP {listed}, which the shared "
        "IPv4 cannot route (it tells apps apart by Host or SNI only): give the port the "
        "http or tls handler, or use a dedicated address (`edgectl ips allocate-v4`)"
    )


def check_shared_v4_ports(app: str, ports: Sequence[int]) -> None:
    """Conflict when an app holding (or asking for) the shared IPv4 has raw TCP ports."""
    problem = shared_v4_problem(app, ports)
    if problem:
        raise Conflict(problem)


@dataclass(frozen=True, slots=True)
class IpamState:
    """What a store reads, inside the allocating transaction, before asking for a plan.

    ``in_use``: every address currently held by a dedicated assignment (any app, any
    org). ``released``: for addresses that were held and released, the latest release
    time (epoch seconds). ``org_count``: the org's assignments that count toward its
    limit. ``app_ips``: the app's current assignments.
    """

    app_ips: tuple[IpAssignment, ...] = ()
    org_count: int = 0
    in_use: AbstractSet[str] = frozenset()
    released: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IpamPolicy:
    """The ``ipam`` section of the configuration, checked and ready for the rules."""

    max_ips_per_org: int = 100
    reuse_after: float = 3600.0
    v4_pools: tuple[str, ...] = ("127.77.0.0/16",)
    v6_pools: tuple[str, ...] = ("fd77:e0::/64",)
    private_v6_pools: tuple[str, ...] = ("fdaa:77::/64",)
    shared_v4: str = "127.77.255.254"

    def __post_init__(self) -> None:
        _check_family("ipam.shared_v4", [self.shared_v4], 4, address=True)
        _check_family("ipam.pools.v4", self.v4_pools, 4)
        _check_family("ipam.pools.v6", self.v6_pools, 6)
        _check_family("ipam.pools.private_v6", self.private_v6_pools, 6)
        if self.max_ips_per_org < 1 or self.reuse_after < 0:
            raise ConfigError("ipam: max_ips_per_org must be >= 1 and reuse_after >= 0")

    @classmethod
    def from_spec(cls, spec: IpamSpec) -> IpamPolicy:
        return cls(
            max_ips_per_org=spec.max_ips_per_org,
            reuse_after=spec.reuse_after,
            v4_pools=tuple(spec.pools.v4),
            v6_pools=tuple(spec.pools.v6),
            private_v6_pools=tuple(spec.pools.private_v6),
            shared_v4=spec.shared_v4,
        )

    def pool(self, ip_type: IpType) -> tuple[str, ...]:
        """The networks a dedicated type is allocated from."""
        pools = {"v4": self.v4_pools, "v6": self.v6_pools, "private_v6": self.private_v6_pools}
        if ip_type not in pools:
            raise ValueError(f"{ip_type} has no pool")
        return pools[ip_type]


def _check_family(name: str, values: Sequence[str], version: int, *, address: bool = False) -> None:
    if not values:
        raise ConfigError(f"{name}: give at least one network")
    for value in values:
        try:
            parsed = ipaddress.ip_address(value) if address else ipaddress.ip_network(value)
        except ValueError as exc:
            raise ConfigError(f"{name}: {value!r} is not valid: {exc}") from None
        if parsed.version != version:
            raise ConfigError(f"{name}: {value} is not an IPv{version} address or network")


# --- choosing an address -----------------------------------------------------------------


def _usable(net: IPNetwork, value: int) -> bool:
    """Whether an address of the pool may be handed out (not network, broadcast, .0/.255)."""
    if net.version == 4:
        if net.prefixlen > 30:
            return True
        edges = (int(net.network_address), int(net.broadcast_address))
        return (value & 0xFF) not in (0, 255) and value not in edges
    return net.prefixlen > 126 or value != int(net.network_address)


def _ints(addresses: Iterable[str], version: int) -> set[int]:
    out: set[int] = set()
    for text in addresses:
        parsed = ipaddress.ip_address(text)
        if parsed.version == version:
            out.add(int(parsed))
    return out


def _first_never_used(net: IPNetwork, taken: AbstractSet[int]) -> str | None:
    """The lowest usable address of ``net`` not in ``taken``: a walk that skips used ones.

    Ends after at most ``len(taken)`` plus the skipped reserved addresses plus one
    steps, so a /64 costs no more than a /30 with the same number of used addresses.
    """
    value = int(net.network_address)
    last = int(net.broadcast_address)
    while value <= last:
        if value not in taken and _usable(net, value):
            return str(ipaddress.ip_address(value))
        value += 1
    return None


def _reusable(
    nets: Sequence[IPNetwork],
    skip: AbstractSet[str],
    released: Mapping[str, float],
    cutoff: float,
) -> list[tuple[float, int, str]]:
    """(released_at, address as int, address) of released addresses old enough to reuse."""
    out: list[tuple[float, int, str]] = []
    for text, released_at in released.items():
        if text in skip or released_at > cutoff:
            continue
        parsed = ipaddress.ip_address(text)
        for net in nets:
            if parsed.version == net.version and parsed in net and _usable(net, int(parsed)):
                out.append((released_at, int(parsed), str(parsed)))
                break
    return out


def choose_address(
    pool_networks: Sequence[str],
    in_use: AbstractSet[str],
    released: Mapping[str, float],
    now: float,
    reuse_after: float,
    *,
    exclude: AbstractSet[str] = frozenset(),
    pool_name: str = "the pool",
) -> str:
    """The address to hand out next from ``pool_networks``.

    In order of preference: a never-used address (the lowest, pool by pool), then the
    address released longest ago, provided it was released at least ``reuse_after``
    seconds before ``now``. ``in_use`` and ``exclude`` (the shared address) are never
    chosen. Addresses must be canonical (``normalize_address``). PoolExhausted when
    nothing qualifies.
    """
    nets = [ipaddress.ip_network(n) for n in pool_networks]
    skip = set(in_use) | set(exclude)
    for net in nets:
        taken = _ints(skip | set(released), net.version)
        found = _first_never_used(net, taken)
        if found is not None:
            return found
    candidates = _reusable(nets, skip, released, now - reuse_after)
    if candidates:
        return min(candidates)[2]
    raise _exhausted(nets, skip, released, now=now, reuse_after=reuse_after, pool_name=pool_name)


def _exhausted(
    nets: Sequence[IPNetwork],
    skip: AbstractSet[str],
    released: Mapping[str, float],
    *,
    now: float,
    reuse_after: float,
    pool_name: str,
) -> PoolExhausted:
    cooling = _reusable(nets, skip, released, float("inf"))
    names = ", ".join(str(n) for n in nets)
    if cooling:
        ready_at = min(at for at, _, _ in cooling) + reuse_after
        wait = (
            f"{len(cooling)} released address(es) may be reused from {format_time(ready_at)} "
            f"(ipam.reuse_after = {reuse_after:g}s); "
        )
    else:
        wait = ""
    return PoolExhausted(
        f"no free address in {pool_name} ({names}): every address is in use or was released "
        f"less than {reuse_after:g}s ago; {wait}release an address of this type or add a "
        f"network to {pool_name}"
    )


# --- the allocation rules ----------------------------------------------------------------


def resolve_region(requested: str | None, primary_region: str, regions: Collection[str]) -> str:
    """The region of a new assignment: the requested one, else the app's primary region."""
    region = primary_region if requested is None or requested == "" else requested.lower()
    if region not in regions:
        valid = ", ".join(sorted(regions))
        raise BadRequest(f"unknown region {region!r}; valid regions: {valid}")
    return region


def check_org_limit(org: str, org_count: int, limit: int) -> None:
    """LimitExceeded when the org already holds ``limit`` counted assignments."""
    if org_count >= limit:
        raise LimitExceeded(
            f"org {org!r} has {org_count} IP assignments, the limit "
            f"(ipam.max_ips_per_org = {limit}); release one first"
        )


def plan_allocation(
    policy: IpamPolicy,
    app: AppRef,
    ip_type: IpType,
    region: str | None,
    state: IpamState,
    *,
    regions: Collection[str],
    now: float,
) -> IpAssignment:
    """The assignment an allocation makes, or the EdgeError that refuses it.

    Checks, in order: the type, the region (unknown -> BadRequest listing the valid
    codes), one shared_v4 per app and none for an app with raw TCP ports (Conflict:
    nothing could listen for them), the org limit (LimitExceeded, not for
    shared_v4), then the pool (PoolExhausted).
    """
    ip_type = parse_ip_type(ip_type)
    resolved = resolve_region(region, app.primary_region, regions)
    primary = not state.app_ips
    if ip_type == "shared_v4":
        if any(a.type == "shared_v4" for a in state.app_ips):
            raise Conflict(f"app {app.name!r} already has the shared IPv4 {policy.shared_v4}")
        check_shared_v4_ports(app.name, app.raw_tcp_ports)
        return IpAssignment(
            policy.shared_v4, ip_type, SHARED_REGION, app.name, app.org, int(now), True, primary
        )
    check_org_limit(app.org, state.org_count, policy.max_ips_per_org)
    address = choose_address(
        policy.pool(ip_type),
        state.in_use,
        state.released,
        now,
        policy.reuse_after,
        exclude=frozenset({policy.shared_v4}),
        pool_name=f"ipam.pools.{ip_type}",
    )
    return IpAssignment(address, ip_type, resolved, app.name, app.org, int(now), False, primary)


def with_assignment(state: IpamState, assignment: IpAssignment) -> IpamState:
    """``state`` after ``assignment`` was made (to plan several in one transaction)."""
    counted = counts_toward_limit(assignment.type)
    in_use = set(state.in_use)
    if not assignment.shared:
        in_use.add(assignment.address)
    return replace(
        state,
        app_ips=(*state.app_ips, assignment),
        org_count=state.org_count + (1 if counted else 0),
        in_use=frozenset(in_use),
    )


def initial_types(*, public_ips: bool, ipv6: bool) -> tuple[IpType, ...]:
    """What a new app gets: a v4 (its primary), plus a v6 with ``ipv6``; none without
    public IPs. Asking for both ``ipv6`` and no public IPs is a contradiction."""
    if not public_ips:
        if ipv6:
            raise BadRequest("ipv6 asks for a public IPv6 but public_ips is false; drop one")
        return ()
    return ("v4", "v6") if ipv6 else ("v4",)


def plan_app_ips(
    policy: IpamPolicy,
    app: AppRef,
    types: Sequence[IpType],
    state: IpamState,
    *,
    regions: Collection[str],
    now: float,
) -> tuple[IpAssignment, ...]:
    """The assignments a new app gets, all in its primary region; all or nothing."""
    planned: list[IpAssignment] = []
    for ip_type in types:
        assignment = plan_allocation(policy, app, ip_type, None, state, regions=regions, now=now)
        planned.append(assignment)
        state = with_assignment(state, assignment)
    return tuple(planned)


def check_release(app: str, app_ips: Sequence[IpAssignment], address: str) -> IpAssignment:
    """The assignment ``address`` names among the app's, if it may be released.

    BadRequest for an invalid address, NotFound when the app does not hold it,
    Conflict for the primary.
    """
    canonical = normalize_address(address)
    for assignment in app_ips:
        if assignment.address == canonical:
            if assignment.primary:
                raise Conflict(
                    f"{canonical} is the primary IP of app {app!r}: it can be released only by "
                    "destroying the app"
                )
            return assignment
    raise NotFound(f"{canonical} is not assigned to app {app!r}")
