"""Regions: the platform's region codes with the coordinates the latency model uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.core.latency import RouteTable


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    city: str
    latitude: float
    longitude: float
    gateway: bool
    deprecated: bool
    geo_region: str = ""  # us, na, sa, eu, apac, af: what region aliases are made of


@dataclass(frozen=True, slots=True)
class RegionCatalogue:
    """Every known region by code, in catalogue order (and how they are cabled)."""

    by_code: Mapping[str, Region]
    routes: RouteTable | None = None  # None: the latency model is the plain great circle

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def __iter__(self) -> Iterator[Region]:
        return iter(self.by_code.values())

    def __len__(self) -> int:
        return len(self.by_code)

    def __getitem__(self, code: str) -> Region:
        return self.by_code[code]

    def codes(self) -> frozenset[str]:
        return frozenset(self.by_code)

    def current(self) -> tuple[Region, ...]:
        return tuple(r for r in self if not r.deprecated)
