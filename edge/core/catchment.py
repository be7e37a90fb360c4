"""Catchment: where simulated clients all over the world land, and how far they travel.

Clients are spread over regions in proportion to weights (by default the population
of each region's metro area), ``allocate`` turning weights into whole clients with the
largest-remainder method, so the same weights and count always give the same split.
Every client is one routing decision made now: anycast delivers it to the nearest up
PoP, and ``edge.core.routing.decide`` picks its machine from the live snapshot (health,
state, load and withdrawn PoPs all count). Simulated clients add no load to each other.
The modelled round trip is client -> PoP plus PoP -> machine region.

Everything is a pure function of the snapshot's service, the PoPs up, the latency
model, ``now`` and the rng passed in; the API, the CLI and the dashboard share it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.core.anycast import ingress_pop
from edge.core.latency import LatencyModel
from edge.core.routing import RouteRequest, ServiceRoutes, decide
from edge.errors import BadRequest

MAX_CLIENTS = 10_000  # about 0.2 s of routing decisions
WEIGHT_PRESETS = ("population", "uniform")


# --- weights -----------------------------------------------------------------------------


def parse_weight_list(text: str, known: Iterable[str]) -> dict[str, float]:
    """``"lhr:14,nrt:37"`` as a mapping; a BadRequest naming the first bad entry."""
    codes = frozenset(known)
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        region, sep, value = item.partition(":")
        region = region.strip()
        if not sep:
            raise BadRequest(f"weights: {item!r} is not REGION:WEIGHT")
        weights[region] = _weight(region, value.strip())
    return check_weights(weights, codes)


def _weight(region: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"weights: {region}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise BadRequest(f"weights: {region}: must be a finite number >= 0")
    return value


def check_weights(weights: Mapping[str, float], known: Iterable[str]) -> dict[str, float]:
    """Known regions with positive weights, in the order given; at least one."""
    codes = frozenset(known)
    unknown = sorted(region for region in weights if region not in codes)
    if unknown:
        raise BadRequest(f"weights: unknown region(s) {', '.join(unknown)}")
    kept = {region: float(w) for region, w in weights.items() if w > 0}
    if not kept:
        raise BadRequest("weights: give at least one region a weight above 0")
    if not math.isfinite(sum(kept.values())):
        raise BadRequest("weights: the weights are too large (their sum must be a finite number)")
    return kept


def resolve_weights(
    spec: str, regions: Sequence[str], population: Mapping[str, float], known: Iterable[str]
) -> dict[str, float]:
    """The weights a ``weights=`` value names, over ``regions`` for the presets.

    ``population``: each region's metro population (regions missing from the table get
    none); ``uniform``: one each; else an explicit ``REGION:WEIGHT,...`` list.
    """
    if spec == "population":
        return check_weights({r: population.get(r, 0.0) for r in regions}, known)
    if spec == "uniform":
        return check_weights(dict.fromkeys(regions, 1.0), known)
    return parse_weight_list(spec, known)


def allocate(weights: Mapping[str, float], clients: int) -> dict[str, int]:
    """Whole clients per region in proportion to weight (largest remainder, ties in order)."""
    total = sum(weights.values())
    exact = {region: clients * w / total for region, w in weights.items()}
    counts = {region: math.floor(share) for region, share in exact.items()}
    left = clients - sum(counts.values())
    order = sorted(exact, key=lambda region: counts[region] - exact[region])  # stable
    for region in order[:left]:
        counts[region] += 1
    return counts


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    """The clients of one region served from one machine region."""

    machine_region: str
    clients: int
    backhaul: float  # PoP -> machine region, seconds
    rtt: float  # client -> PoP -> machine region, seconds
    reasons: tuple[tuple[str, int], ...]  # routing reasons, most frequent first


@dataclass(frozen=True, slots=True)
class RegionCatchment:
    region: str
    share: float  # of the total weight, 0..1
    clients: int
    pop: str | None  # None: every PoP is withdrawn
    access: float | None  # client -> PoP, seconds
    legs: tuple[Leg, ...]  # most clients first
    unserved: int  # clients routing found no machine for
    why_unserved: str


@dataclass(frozen=True, slots=True)
class Summary:
    clients: int
    served: int
    median: float | None  # seconds, over served clients
    p95: float | None
    mean: float | None


@dataclass(frozen=True, slots=True)
class Catchment:
    strategy: str
    regions: tuple[RegionCatchment, ...]  # largest share first
    distribution: tuple[tuple[float, int], ...]  # (rtt, clients), fastest first
    summary: Summary


# --- the simulation ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class World:
    """What clients see: the service, the PoPs announcing, the latency model, the time."""

    service: ServiceRoutes
    pops_up: Sequence[str]
    model: LatencyModel
    now: float


def simulate(
    world: World, weights: Mapping[str, float], clients: int, rng: random.Random
) -> Catchment:
    """Spread ``clients`` over ``weights`` and route every one of them (module docstring)."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise BadRequest(f"clients: must be between 1 and {MAX_CLIENTS}")
    counts = allocate(weights, clients)
    total = sum(weights.values())
    rows = [
        _region(world, region, weights[region] / total, counts[region], rng) for region in counts
    ]
    rows.sort(key=lambda row: -row.share)  # stable: equal shares keep the weights' order
    distribution = rtt_distribution(rows)
    return Catchment(
        strategy=world.service.spec.strategy,
        regions=tuple(rows),
        distribution=distribution,
        summary=summarize(distribution, clients),
    )


def _region(
    world: World, region: str, share: float, clients: int, rng: random.Random
) -> RegionCatchment:
    pop = ingress_pop(region, world.pops_up, world.model)
    if pop is None:
        return RegionCatchment(region, share, clients, None, None, (), clients, "no PoP is up")
    # A region too small for a whole client still gets one probe, so its row tells
    # where it would go; the probe counts for nothing.
    tally: dict[str, Counter[str]] = {}
    unserved, why = 0, ""
    for index in range(max(clients, 1)):
        request = RouteRequest(pop=pop, client_key=f"{region}#{index}")
        decision = decide(world.service, request, world.model, world.now, rng)
        if decision.endpoint is None:
            unserved, why = unserved + 1, decision.detail
        else:
            tally.setdefault(decision.endpoint.region, Counter())[decision.reason] += 1
    access = world.model.rtt(region, pop)
    legs = [_leg(world.model, pop, access, machine, reasons) for machine, reasons in tally.items()]
    legs.sort(key=lambda leg: (-leg.clients, leg.rtt))
    if clients == 0:
        legs = [Leg(leg.machine_region, 0, leg.backhaul, leg.rtt, ()) for leg in legs]
        unserved = 0
    return RegionCatchment(region, share, clients, pop, access, tuple(legs), unserved, why)


def _leg(
    model: LatencyModel, pop: str, access: float, machine_region: str, reasons: Counter[str]
) -> Leg:
    backhaul = model.rtt(pop, machine_region)
    return Leg(
        machine_region=machine_region,
        clients=sum(reasons.values()),
        backhaul=backhaul,
        rtt=access + backhaul,
        reasons=tuple(reasons.most_common()),
    )


def rtt_distribution(rows: Iterable[RegionCatchment]) -> tuple[tuple[float, int], ...]:
    """Served clients by modelled RTT, fastest first (equal RTTs merged)."""
    counts: Counter[float] = Counter()
    for row in rows:
        for leg in row.legs:
            if leg.clients:
                counts[leg.rtt] += leg.clients
    return tuple(sorted(counts.items()))


def percentile(distribution: Sequence[tuple[float, int]], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0..1) of a (value, count) distribution."""
    total = sum(count for _, count in distribution)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for value, count in distribution:
        seen += count
        if seen >= rank:
            return value
    return distribution[-1][0]


def summarize(distribution: Sequence[tuple[float, int]], clients: int) -> Summary:
    served = sum(count for _, count in distribution)
    mean = sum(v * c for v, c in distribution) / served if served else None
    return Summary(
        clients=clients,
        served=served,
        median=percentile(distribution, 0.5),
        p95=percentile(distribution, 0.95),
        mean=mean,
    )
