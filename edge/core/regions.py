"""Regions: the platform's region codes with the coordinates the latency model uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass


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
    """Every known region by code, in catalogue order."""

    by_code: Mapping[str, Region]

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
