"""The platform's region aliases: ``us``/``usa``, ``na``, ``sa``, ``eu``, ``apac``, ``any``.

Each catalogue region names its ``geo_region`` (``us``, ``na`` for the rest of North
America, ``sa``, ``eu``, ``apac``, ``af``); an alias is a set of those. In a region list
(``fly-prefer-region``, ``fly-force-region``, ``fly-replay region=``) an alias expands to
its regions nearest-first from the ingress PoP, so ``fly-prefer-region: eu`` means "the
nearest European region with a machine". ``any`` is every region.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from edge.core.regions import RegionCatalogue

GEO_REGIONS: Final = ("us", "na", "sa", "eu", "apac", "af")
ALIAS_GROUPS: Final[Mapping[str, frozenset[str]]] = {
    "us": frozenset({"us"}),
    "usa": frozenset({"us"}),
    "na": frozenset({"us", "na"}),
    "sa": frozenset({"sa"}),
    "eu": frozenset({"eu"}),
    "apac": frozenset({"apac"}),
    "any": frozenset(GEO_REGIONS),
}


@dataclass(frozen=True, slots=True)
class RegionAliases:
    """Which regions each alias names, and every region's neighbours nearest-first."""

    members: Mapping[str, frozenset[str]]  # alias -> region codes
    by_rtt: Mapping[str, tuple[str, ...]]  # the latency model's regions_by_rtt

    @classmethod
    def build(
        cls, catalogue: RegionCatalogue, by_rtt: Mapping[str, tuple[str, ...]]
    ) -> RegionAliases:
        members = {
            alias: frozenset(r.code for r in catalogue if r.geo_region in groups)
            for alias, groups in ALIAS_GROUPS.items()
        }
        return cls(members, by_rtt)

    def is_alias(self, name: str) -> bool:
        return name in self.members

    def expand(self, names: Iterable[str], pop: str) -> tuple[str, ...]:
        """Codes kept in order, each alias replaced by its regions nearest to ``pop`` first."""
        out: list[str] = []
        for name in names:
            group = self.members.get(name)
            if group is None:
                if name not in out:
                    out.append(name)
                continue
            for code in self.by_rtt.get(pop, ()):
                if code in group and code not in out:
                    out.append(code)
        return tuple(out)


NO_ALIASES: Final = RegionAliases({}, {})
