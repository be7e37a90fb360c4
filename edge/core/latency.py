"""The round-trip-time model between regions, precomputed into a matrix.

RTT(a, b) = 2 * great_circle_km(a, b) * route_inflation / fiber_km_per_ms + per_hop_floor,
and per_hop_floor alone within one region. Light in fiber covers about 200 km per ms;
``route_inflation`` accounts for cables not following great circles, and the floor for
the switching, queueing and processing every path pays at least once.

The defaults of ``LatencySpec`` (inflation 1.24, floor 4.5 ms) were fitted to typical
public inter-city ping figures (approximate, as published by ping-statistics sites and
cloud providers' inter-region latency tables): London-Ashburn ~75-80 ms,
London-Frankfurt ~12-18 ms, Amsterdam-Frankfurt ~7-10 ms, Ashburn-Chicago ~15-25 ms,
Sydney-Los Angeles ~140-160 ms, Tokyo-Los Angeles ~100-115 ms. One straight-line
inflation cannot fit every path: London-Sydney is measured at ~250-290 ms because the
cables detour through Asia or the US, and the model gives ~215 ms. Such pairs are what
``LatencySpec.overrides`` is for.

Lookups are two dict accesses; ``build`` does all the trigonometry once.

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
class LatencyModel:
    """RTTs in seconds between every pair of catalogue regions."""

    matrix: Mapping[str, Mapping[str, float]]
    by_rtt: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, spec: LatencySpec, catalogue: RegionCatalogue) -> LatencyModel:
        codes = [region.code for region in catalogue]
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
