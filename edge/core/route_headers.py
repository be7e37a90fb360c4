"""The platform's client routing headers, parsed from the raw bytes the HTTP parser gives.

- ``fly-prefer-region: syd,nrt``: those regions in order, then normal routing.
- ``fly-force-region: syd``: only those regions; no candidate otherwise.
- ``fly-prefer-instance-id`` / ``fly-force-instance-id``: one machine id.

Codes are lowercased and trimmed; unknown codes and repeats are dropped, so a typo
degrades to normal routing instead of an error. The platform's region aliases
(``us``, ``eu``, ``any``...) expand to their regions nearest-first from the ingress
PoP (``edge.core.region_aliases``). A replayed request (``hints.replay``) is routed by
the app's fly-replay instruction instead of the client's headers.
Requests without these headers (nearly all) cost one ``is None`` test each.
"""

from __future__ import annotations

from typing import Protocol

from edge.core.region_aliases import NO_ALIASES, RegionAliases
from edge.core.replay import ReplayRoute
from edge.core.routing import RouteRequest

_MAX_INSTANCE_ID = 64


class RouteHintsLike(Protocol):
    """The routing headers of ``edge.dataplane.contract.RouteHints``."""

    @property
    def prefer_region(self) -> bytes | None: ...
    @property
    def force_region(self) -> bytes | None: ...
    @property
    def prefer_instance(self) -> bytes | None: ...
    @property
    def force_instance(self) -> bytes | None: ...
    @property
    def replay(self) -> ReplayRoute | None: ...


def parse_regions(
    value: bytes | None,
    valid: frozenset[str],
    aliases: RegionAliases = NO_ALIASES,
    pop: str = "",
) -> tuple[str, ...]:
    """``b" SYD, nrt,xyz,syd"`` -> ``("syd", "nrt")`` when xyz is not a valid code;
    an alias (``eu``) becomes its regions nearest to ``pop`` first."""
    if not value:
        return ()
    names: list[str] = []
    for part in value.split(b","):
        code = part.strip().lower().decode("latin-1")
        if (code in valid or aliases.is_alias(code)) and code not in names:
            names.append(code)
    return aliases.expand(names, pop) if aliases.members else tuple(names)


class _AnyCode(frozenset[str]):
    """A 'valid codes' set that admits any non-empty code (for forced regions)."""

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and bool(code)


_ANY_CODE = _AnyCode()


def parse_instance(value: bytes | None) -> str | None:
    """A machine id, lowercased and trimmed; None when absent, empty or not an id."""
    if not value:
        return None
    text = value.strip().lower()
    if not text or len(text) > _MAX_INSTANCE_ID or not text.replace(b"-", b"").isalnum():
        return None
    return text.decode("ascii")


def route_request(
    pop: str,
    client_key: str,
    hints: RouteHintsLike | None,
    valid_regions: frozenset[str],
    exclude: frozenset[str] = frozenset(),
    aliases: RegionAliases = NO_ALIASES,
) -> RouteRequest:
    """The ``RouteRequest`` for a request with these headers (``hints`` None: a connection)."""
    if hints is None:
        return RouteRequest(pop=pop, client_key=client_key, exclude=exclude)
    if hints.replay is not None:
        return replay_request(pop, client_key, hints.replay, exclude, aliases)
    return RouteRequest(
        pop=pop,
        client_key=client_key,
        prefer_regions=parse_regions(hints.prefer_region, valid_regions, aliases, pop),
        # A forced region never falls back, so an unknown code is kept: it matches no
        # machine and the request gets "no candidate", as on the platform.
        force_regions=parse_regions(hints.force_region, _ANY_CODE, aliases, pop),
        prefer_instance=parse_instance(hints.prefer_instance),
        force_instance=parse_instance(hints.force_instance),
        exclude=exclude,
    )


def replay_request(
    pop: str,
    client_key: str,
    replay: ReplayRoute,
    exclude: frozenset[str],
    aliases: RegionAliases = NO_ALIASES,
) -> RouteRequest:
    """The ``RouteRequest`` of a replayed request: the app's instruction, not the headers."""
    regions = aliases.expand(replay.regions, pop)
    return RouteRequest(
        pop=pop,
        client_key=client_key,
        prefer_regions=() if replay.forced else regions,
        force_regions=regions if replay.forced else (),
        prefer_instance=replay.prefer_instance,
        force_instance=replay.force_instance,
        exclude=exclude | replay.exclude,
    )
