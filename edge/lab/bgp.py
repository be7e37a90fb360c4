"""What BGP is expected to do in the anycast lab: each router's best route, the catchments.

A pure path-vector fixed point over a ``Topology`` (``edge.lab.topology``): shortest AS
path with the ``nearest`` policy's prepends, ties broken by the neighbour's router id,
as BIRD decides for eBGP. The lab compares it with what BIRD really chose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.lab.topology import Topology


@dataclass(frozen=True, slots=True)
class BgpRoute:
    """The best route of a router to the anycast prefix: which PoP, the AS path length."""

    pop: str
    length: int
    via: str  # the region of the neighbour it was learned from ("" for the local PoP)


def expected_routes(
    topology: Topology, withdrawn: frozenset[str] = frozenset()
) -> dict[str, BgpRoute | None]:
    """Each router's best route to the anycast prefix, by a path-vector fixed point.

    As BIRD decides for eBGP: shortest AS path (prepends included), then the lowest
    router id of the neighbour (the routers' ids follow ``topology.regions``). A PoP's
    own router learns its route with length 1. A route is not accepted by a router
    already on its path (loop prevention, which BGP does by AS number).
    """
    announcing = frozenset(p.region for p in topology.pops) - withdrawn
    order = {region: i for i, region in enumerate(topology.regions)}
    # region -> (length, tie-break, path of routers from here to the origin, pop, via)
    best: dict[str, tuple[int, int, tuple[str, ...], str, str] | None] = dict.fromkeys(
        topology.regions
    )
    for _ in range(len(topology.regions) + 2):
        changed = False
        for region in topology.regions:
            candidates: list[tuple[int, int, tuple[str, ...], str, str]] = []
            if region in announcing:
                candidates.append((1, -1, (region,), region, ""))
            for neighbour in topology.regions:
                route = best[neighbour]
                if neighbour == region or route is None or region in route[2]:
                    continue
                length = route[0] + 1 + topology.prepends[(neighbour, region)]
                candidates.append(
                    (length, order[neighbour], (region, *route[2]), route[3], neighbour)
                )
            new = min(candidates, default=None)
            if new != best[region]:
                best[region], changed = new, True
        if not changed:
            break
    return {
        region: None if route is None else BgpRoute(route[3], route[0], route[4])
        for region, route in best.items()
    }


def expected_catchments(
    topology: Topology, withdrawn: frozenset[str] = frozenset()
) -> dict[str, str | None]:
    """The PoP the clients of each client region reach, as BGP is expected to choose."""
    routes = expected_routes(topology, withdrawn)
    found: dict[str, str | None] = {}
    for client in topology.clients:
        route = routes[client.region]
        found[client.region] = None if route is None else route.pop
    return found
