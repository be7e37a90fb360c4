"""The replay cache: requests under a path go straight to where the app replayed them.

Two kinds of entry, both with a TTL:
- path-scoped: the app's replay answer carried ``fly-replay-cache: [host]/path/*`` (with
  ``fly-replay-cache-ttl-secs``, at least 10 s), or the JSON form's ``cache`` object;
- session-scoped: the port's ``http_options.replay_cache`` names a path prefix and a
  cookie or header; a replay of a request under that prefix is remembered for that
  cookie's (header's) value only.

Longest prefix wins; session entries before path entries of the same length. An entry
keeps only where to go (never state, transform, timeout or fallback, as on the
platform). ``ReplayCache`` is an immutable value: ``store`` and ``expire`` return a new
one, time is an argument. The relay keeps one per listener and swaps it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from edge.core.replay import ReplayInstruction, ReplayRoute, replay_route

MAX_ENTRIES: Final = 10_000  # no client can grow the cache without bound
SessionKind = Literal["cookie", "header"]
CacheStatus = Literal["miss", "hit", "bypass"]


@dataclass(frozen=True, slots=True)
class SessionCacheSpec:
    """One ``http_options.replay_cache`` entry of a port."""

    path_prefix: str
    ttl_seconds: float
    type: SessionKind
    name: str


@dataclass(frozen=True, slots=True)
class CacheEntry:
    route: ReplayRoute
    expires: float
    source_machine: str


CacheKey = tuple[str, str, str]  # (host or "", session scope or "", path prefix)


@dataclass(frozen=True, slots=True)
class ReplayCache:
    entries: Mapping[CacheKey, CacheEntry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)


EMPTY: Final = ReplayCache()
SessionValue = Callable[[SessionKind, str], str | None]  # the request's cookie/header value


def parse_prefix(pattern: str) -> tuple[str, str]:
    """``example.com/api/*`` -> ``("example.com", "/api/")``; ``/api/*`` -> ``("", "/api/")``."""
    pattern = pattern.strip()
    slash = pattern.find("/")
    host, path = ("", pattern) if slash <= 0 else (pattern[:slash].lower(), pattern[slash:])
    if not path.startswith("/"):
        path = "/" + path
    return host, path.rstrip("*")


def lookup(
    cache: ReplayCache,
    host: str,
    path: str,
    session: SessionValue,
    specs: tuple[SessionCacheSpec, ...],
    now: float,
) -> CacheEntry | None:
    """The live entry for a request (longest prefix first), or None."""
    best: tuple[int, int, CacheEntry] | None = None
    for spec in specs:
        if path.startswith(spec.path_prefix):
            value = session(spec.type, spec.name)
            if value is not None:
                entry = cache.entries.get(("", _scope(spec, value), spec.path_prefix))
                best = _better(best, len(spec.path_prefix), 1, entry, now)
    for (entry_host, scope, prefix), entry in cache.entries.items():
        if not scope and path.startswith(prefix) and entry_host in ("", host):
            best = _better(best, len(prefix), 0, entry, now)
    return None if best is None else best[2]


def _better(
    best: tuple[int, int, CacheEntry] | None,
    length: int,
    rank: int,
    entry: CacheEntry | None,
    now: float,
) -> tuple[int, int, CacheEntry] | None:
    if entry is None or entry.expires <= now:
        return best
    if best is None or (length, rank) > best[:2]:
        return (length, rank, entry)
    return best


def _scope(spec: SessionCacheSpec, value: str) -> str:
    return f"{spec.type}:{spec.name.lower()}={value}"


def store(
    cache: ReplayCache,
    instruction: ReplayInstruction,
    source_machine: str,
    source_app: str,
    path: str,
    session: SessionValue,
    specs: tuple[SessionCacheSpec, ...],
    now: float,
) -> ReplayCache:
    """The cache after a replay: entries for the instruction's prefix and matching sessions."""
    bare = ReplayInstruction(
        regions=instruction.regions,
        instance=instruction.instance,
        prefer_instance=instruction.prefer_instance,
        app=instruction.app,
        elsewhere=instruction.elsewhere,
    )
    route = replay_route(bare, source_machine, source_app)
    added: dict[CacheKey, CacheEntry] = {}
    if instruction.cache_prefix:
        host, prefix = parse_prefix(instruction.cache_prefix)
        added[(host, "", prefix)] = CacheEntry(route, now + instruction.cache_ttl, source_machine)
    for spec in specs:
        value = session(spec.type, spec.name) if path.startswith(spec.path_prefix) else None
        if value is not None:
            key = ("", _scope(spec, value), spec.path_prefix)
            added[key] = CacheEntry(route, now + spec.ttl_seconds, source_machine)
    if not added:
        return cache
    entries = dict(expire(cache, now).entries) if len(cache) >= MAX_ENTRIES else dict(cache.entries)
    while len(entries) + len(added) > MAX_ENTRIES and entries:
        del entries[min(entries, key=lambda k: entries[k].expires)]
    entries.update(added)
    return ReplayCache(entries)


def expire(cache: ReplayCache, now: float) -> ReplayCache:
    """The cache without the entries whose TTL passed."""
    live = {key: entry for key, entry in cache.entries.items() if entry.expires > now}
    return cache if len(live) == len(cache.entries) else ReplayCache(live)


def cacheable(
    instruction: ReplayInstruction, path: str, specs: tuple[SessionCacheSpec, ...]
) -> bool:
    """Whether a replay of this request adds anything to the cache."""
    return bool(instruction.cache_prefix) or any(path.startswith(s.path_prefix) for s in specs)
