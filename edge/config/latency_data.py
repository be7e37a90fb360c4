"""The latency model's data shipped with the package: the route table and the
calibration set (``edge/data/routes.yaml``, ``edge/data/rtt-calibration.yaml``)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, TypeVar

import yaml
from pydantic import Field, ValidationError

from edge.config.model import Frozen
from edge.core.latency import RouteTable
from edge.core.latency_fit import Measurement
from edge.errors import ConfigError

T = TypeVar("T", bound=Frozen)


class _RoutesFile(Frozen):
    areas: dict[str, tuple[str, ...]] = Field(min_length=1)
    links: tuple[tuple[str, str, float], ...] = Field(min_length=1)


class _Source(Frozen):
    title: str
    where: str
    measure: str
    cities: dict[str, str] = Field(default_factory=dict)


class _CalibrationFile(Frozen):
    sources: dict[str, _Source] = Field(min_length=1)
    pairs: tuple[tuple[str, str, float, str], ...] = Field(min_length=1)


def parse_routes(text: str, source: str) -> RouteTable:
    parsed = _validate(_RoutesFile, text, source)
    area_of: dict[str, str] = {}
    for area, codes in parsed.areas.items():
        for code in codes:
            if code in area_of:
                raise ConfigError(f"{source}: region {code} is in two areas")
            area_of[code] = area
    inflation: dict[frozenset[str], float] = {}
    for a, b, value in parsed.links:
        if a not in parsed.areas or b not in parsed.areas:
            raise ConfigError(f"{source}: link {a}-{b} names an area not in areas")
        if value < 1.0:
            raise ConfigError(f"{source}: link {a}-{b}: an inflation below 1 is faster than light")
        inflation[frozenset((a, b))] = value
    return RouteTable(area_of=area_of, inflation=inflation)


@functools.cache
def default_routes() -> RouteTable:
    return parse_routes(_packaged("routes.yaml"), "edge/data/routes.yaml")


def parse_calibration(text: str, source: str) -> tuple[tuple[Measurement, ...], dict[str, Any]]:
    """The measured pairs, and each source's citation (for the report)."""
    parsed = _validate(_CalibrationFile, text, source)
    seen: set[frozenset[str]] = set()
    pairs = []
    for a, b, ms, cited in parsed.pairs:
        key = frozenset((a, b))
        if cited not in parsed.sources:
            raise ConfigError(f"{source}: pair {a}-{b} cites unknown source {cited!r}")
        if key in seen or a == b:
            raise ConfigError(f"{source}: pair {a}-{b} is listed twice or joins a region to itself")
        seen.add(key)
        pairs.append(Measurement(a, b, ms / 1000.0, cited))
    return tuple(pairs), {k: v.model_dump() for k, v in parsed.sources.items()}


def default_calibration() -> tuple[tuple[Measurement, ...], dict[str, Any]]:
    return parse_calibration(_packaged("rtt-calibration.yaml"), "edge/data/rtt-calibration.yaml")


def _packaged(name: str) -> str:
    return resources.files("edge").joinpath(f"data/{name}").read_text(encoding="utf-8")


def _validate(kind: type[T], text: str, source: str) -> T:
    from edge.config.load import format_validation_errors

    try:
        return kind.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML", (str(exc),)) from None
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid", format_validation_errors(exc)) from None
