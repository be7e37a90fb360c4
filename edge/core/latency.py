"""The round-trip-time model between regions, precomputed into a matrix.

Two models, chosen by ``LatencySpec.model``:

``calibrated`` (the default) is a shortest-path model over the world's cables. Each
region belongs to a route area (``RouteTable.area_of``: north_america, europe,
asia_east, ...). Two regions are linked directly when their areas are (within an area,
or a pair of areas in ``RouteTable.inflation``); a direct link costs

    per_hop_floor + 2 * great_circle_km * inflation(area pair) / fiber_km_per_ms

and every other pair takes the cheapest chain of direct links (Floyd-Warshall over the
catalogue, once, in ``build``). That is how traffic really goes: Europe reaches Tokyo
through Singapore (the cables run through Suez), Johannesburg reaches Sao Paulo through
Europe and the US, Sydney reaches Sao Paulo through the US west coast. Per-area-pair
inflations and the floor were fitted to published measurements
(``edge/data/rtt-calibration.yaml``; ``docs/latency-model.md`` has every pair's error,
written by ``scripts/latency-report``).

``great_circle`` is the plain formula with one inflation for every pair:

    RTT(a, b) = 2 * great_circle_km(a, b) * route_inflation / fiber_km_per_ms + per_hop_floor

Either way one region to itself is ``per_hop_floor``, and ``LatencySpec.overrides`` replace
single pairs afterwards. Lookups are two dict accesses.

What was measured is kept per endpoint as a peak EWMA (``observe_rtt``, ``peak_ewma``),
which the p2c_peak_ewma strategy reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.core.regions import RegionCatalogue

if TYPE_CHECKING:
    from edge.config.model import LatencySpec
    from edge.core.routing import EndpointStats

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)
EWMA_DECAY = 10.0  # seconds; Finagle's and linkerd2's decay time
EWMA_DEFAULT_RTT = 0.030  # seconds; linkerd2's estimate for a machine never measured


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class RouteTable:
    """How the areas of the world are cabled, for the calibrated model.

    ``area_of`` names each region's route area; ``inflation`` has, for each pair of
    areas with direct cables (and each area with itself), how much longer than the great
    circle the cable path is. Areas missing from ``inflation`` reach each other only
    through a third area.
    """

    area_of: Mapping[str, str]
    inflation: Mapping[frozenset[str], float]

    def area(self, catalogue: RegionCatalogue, code: str) -> str:
        """A region's area; a region the table does not know takes its nearest known one's."""
        area = self.area_of.get(code)
        if area is not None:
            return area
        here = catalogue[code]
        known = [catalogue[c] for c in self.area_of if c in catalogue]
        if not known:
            return ""
        nearest = min(
            known,
            key=lambda r: great_circle_km(here.latitude, here.longitude, r.latitude, r.longitude),
        )
        return self.area_of[nearest.code]

    def link_inflation(self, area_a: str, area_b: str) -> float | None:
        return self.inflation.get(frozenset((area_a, area_b)))


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """RTTs in seconds between every pair of catalogue regions."""

    matrix: Mapping[str, Mapping[str, float]]
    by_rtt: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, spec: LatencySpec, catalogue: RegionCatalogue) -> LatencyModel:
        codes = [region.code for region in catalogue]
        routes = catalogue.routes
        if spec.model == "calibrated" and routes is not None:
            matrix = _shortest_paths(spec, catalogue, routes)
        else:
            matrix = {a: {b: _modelled_rtt(spec, catalogue, a, b) for b in codes} for a in codes}
        for override in spec.overrides:
            matrix[override.a][override.b] = override.rtt
            matrix[override.b][override.a] = override.rtt
        # sorted() is stable, so equal RTTs keep catalogue order: deterministic ties.
        by_rtt = {a: tuple(sorted(codes, key=matrix[a].__getitem__)) for a in codes}
        return cls(matrix=matrix, by_rtt=by_rtt)

    def rtt(self, a: str, b: str) -> float:
        """Round trip between regions ``a`` and ``b``, seconds; KeyError for unknown codes."""
        return self.matrix[a][b]

    def regions_by_rtt(self, origin: str) -> tuple[str, ...]:
        """Every region, nearest to ``origin`` first (``origin`` itself leads)."""
        return self.by_rtt[origin]

    def codes(self) -> frozenset[str]:
        return frozenset(self.matrix)


def _modelled_rtt(spec: LatencySpec, catalogue: RegionCatalogue, a: str, b: str) -> float:
    if a == b:
        return spec.per_hop_floor
    ra, rb = catalogue[a], catalogue[b]
    km = great_circle_km(ra.latitude, ra.longitude, rb.latitude, rb.longitude)
    one_way_ms = km * spec.route_inflation / spec.fiber_km_per_ms
    return 2 * one_way_ms / 1000.0 + spec.per_hop_floor


def _link_rtt(
    spec: LatencySpec, catalogue: RegionCatalogue, routes: RouteTable, a: str, b: str
) -> float | None:
    """The RTT of a direct link between two regions, None when their areas have none."""
    inflation = routes.link_inflation(routes.area(catalogue, a), routes.area(catalogue, b))
    if inflation is None:
        return None
    ra, rb = catalogue[a], catalogue[b]
    km = great_circle_km(ra.latitude, ra.longitude, rb.latitude, rb.longitude)
    return 2 * km * inflation / spec.fiber_km_per_ms / 1000.0 + spec.per_hop_floor


def _shortest_paths(
    spec: LatencySpec, catalogue: RegionCatalogue, routes: RouteTable
) -> dict[str, dict[str, float]]:
    """Every pair's cheapest chain of direct links (Floyd-Warshall: n is a few dozen)."""
    codes = [region.code for region in catalogue]
    inf = math.inf
    matrix: dict[str, dict[str, float]] = {}
    for a in codes:
        row = matrix[a] = {}
        for b in codes:
            link = spec.per_hop_floor if a == b else _link_rtt(spec, catalogue, routes, a, b)
            row[b] = inf if link is None else link
    for via in codes:
        via_row = matrix[via]
        for a in codes:
            row = matrix[a]
            to_via = row[via]
            if to_via == inf or a == via:
                continue
            for b, onward in via_row.items():
                if b not in (via, a) and to_via + onward < row[b]:
                    row[b] = to_via + onward
    for a, row in matrix.items():  # areas the table leaves unconnected: the plain formula
        for b, rtt in row.items():
            if rtt == inf:
                row[b] = _modelled_rtt(spec, catalogue, a, b)
    return matrix


def peak_ewma(stats: EndpointStats, now: float, prior: float) -> float:
    """The peak-EWMA RTT estimate at ``now``, seconds.

    A machine never measured is assumed to be ``prior`` away. The stored estimate relaxes
    towards the prior with a 10 s time constant while no new sample arrives, so a machine
    that was slow once is tried again later (Finagle and linkerd2 relax towards zero,
    which here would make an idle machine on the far side of the world look free).
    """
    if stats.ewma_stamp < 0.0:
        return prior
    decay = math.exp(-max(0.0, now - stats.ewma_stamp) / EWMA_DECAY)
    return prior + (stats.ewma_rtt - prior) * decay


def observe_rtt(stats: EndpointStats, sample: float, now: float) -> None:
    """Fold one measured RTT (seconds) into the endpoint's peak EWMA (the runtime calls it).

    A sample above the estimate replaces it at once (the "peak"), so a machine that
    turns slow is avoided immediately; lower samples pull it down gradually.
    """
    if stats.ewma_stamp < 0.0 or sample >= stats.ewma_rtt:
        stats.ewma_rtt = sample
    else:
        keep = math.exp(-max(0.0, now - stats.ewma_stamp) / EWMA_DECAY)
        stats.ewma_rtt = stats.ewma_rtt * keep + sample * (1.0 - keep)
    stats.ewma_stamp = now
