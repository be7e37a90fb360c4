"""The latency model against measured RTTs: each pair's error, and fitting the route table.

A ``Measurement`` is one published RTT between two catalogue regions. ``pair_errors``
compares a model with them; ``fit`` finds the per-hop floor and the inflation of every
area link that minimise the squared log error over a set of measurements (coordinate
descent over a grid: a few thousand model builds, seconds); ``cross_validate`` fits on
all but one fold and measures the fold it did not see, which is how well the model does
for pairs nobody measured.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.core.latency import LatencyModel, RouteTable, great_circle_km
from edge.core.regions import RegionCatalogue

if TYPE_CHECKING:
    from edge.config.model import LatencySpec

INFLATION_GRID = tuple(round(1.0 + 0.05 * i, 2) for i in range(41))  # 1.00 .. 3.00
FLOORS = (0.002, 0.003, 0.004, 0.0045, 0.005, 0.0055, 0.006, 0.0065, 0.007, 0.008, 0.010)


@dataclass(frozen=True, slots=True)
class Measurement:
    a: str
    b: str
    rtt: float  # seconds
    source: str


@dataclass(frozen=True, slots=True)
class PairError:
    measurement: Measurement
    km: float
    modelled: float  # seconds

    @property
    def error(self) -> float:
        """(modelled - measured) / measured."""
        return (self.modelled - self.measurement.rtt) / self.measurement.rtt


@dataclass(frozen=True, slots=True)
class Summary:
    pairs: int
    within: float  # the share of pairs within +/- tolerance
    max_error: float  # the largest |error|
    tolerance: float


def pair_errors(
    model: LatencyModel, catalogue: RegionCatalogue, measurements: Sequence[Measurement]
) -> tuple[PairError, ...]:
    """Every measured pair the catalogue knows, with the model's RTT for it."""
    out = []
    for m in measurements:
        if m.a in catalogue and m.b in catalogue:
            ra, rb = catalogue[m.a], catalogue[m.b]
            km = great_circle_km(ra.latitude, ra.longitude, rb.latitude, rb.longitude)
            out.append(PairError(m, km, model.rtt(m.a, m.b)))
    return tuple(out)


def summarise(errors: Sequence[PairError], tolerance: float = 0.20) -> Summary:
    if not errors:
        return Summary(0, 0.0, 0.0, tolerance)
    within = sum(1 for e in errors if abs(e.error) <= tolerance + 1e-9) / len(errors)
    return Summary(len(errors), within, max(abs(e.error) for e in errors), tolerance)


def _loss(model: LatencyModel, measurements: Sequence[Measurement]) -> float:
    return sum(math.log(model.rtt(m.a, m.b) / m.rtt) ** 2 for m in measurements)


@dataclass(frozen=True, slots=True)
class Fitted:
    floor: float  # seconds: LatencySpec.per_hop_floor
    routes: RouteTable


def fit(
    spec: LatencySpec,
    catalogue: RegionCatalogue,
    measurements: Sequence[Measurement],
    rounds: int = 3,
) -> Fitted:
    """The floor and link inflations (on their grids) that fit ``measurements`` best.

    Links no measured pair's path uses keep their inflation. Deterministic: the same
    data gives the same table.
    """
    routes = catalogue.routes
    assert routes is not None, "fitting needs a catalogue with a route table"
    inflation = dict(routes.inflation)
    floor = spec.per_hop_floor

    def loss_with(floor_s: float, table: dict[frozenset[str], float]) -> float:
        candidate = dataclasses.replace(routes, inflation=dict(table))
        model = LatencyModel.build(
            spec.model_copy(update={"per_hop_floor": floor_s, "model": "calibrated"}),
            dataclasses.replace(catalogue, routes=candidate),
        )
        return _loss(model, measurements)

    for _ in range(rounds):
        for link in sorted(inflation, key=sorted):
            inflation[link] = _best_inflation(link, floor, inflation, loss_with)
        floor = _best(floor, FLOORS, functools.partial(_floor_loss, loss_with, dict(inflation)))
    return Fitted(floor, dataclasses.replace(routes, inflation=inflation))


def _floor_loss(
    loss_with: Callable[[float, dict[frozenset[str], float]], float],
    inflation: dict[frozenset[str], float],
    floor: float,
) -> float:
    return loss_with(floor, inflation)


def _best_inflation(
    link: frozenset[str],
    floor: float,
    inflation: dict[frozenset[str], float],
    loss_with: Callable[[float, dict[frozenset[str], float]], float],
) -> float:
    return _best(
        inflation[link], INFLATION_GRID, lambda v: loss_with(floor, {**inflation, link: v})
    )


def _best(current: float, grid: Sequence[float], loss: Callable[[float], float]) -> float:
    # min keeps the first of equal losses: a value no pair depends on stays as it was.
    return min((current, *grid), key=loss)


def cross_validate(
    spec: LatencySpec,
    catalogue: RegionCatalogue,
    measurements: Sequence[Measurement],
    folds: int = 5,
) -> tuple[PairError, ...]:
    """Each pair's error from a model fitted without its fold (every folds-th pair)."""
    out: list[PairError] = []
    for k in range(folds):
        held = [m for i, m in enumerate(measurements) if i % folds == k]
        kept = [m for i, m in enumerate(measurements) if i % folds != k]
        fitted = fit(spec, catalogue, kept, rounds=2)
        model = LatencyModel.build(
            spec.model_copy(update={"per_hop_floor": fitted.floor, "model": "calibrated"}),
            dataclasses.replace(catalogue, routes=fitted.routes),
        )
        out.extend(pair_errors(model, catalogue, held))
    order = {m: i for i, m in enumerate(measurements)}
    return tuple(sorted(out, key=lambda e: order[e.measurement]))
