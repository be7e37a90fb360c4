"""The replay cache: requests under a path go straight to where the app replayed them.

Two kinds of entry, both with a TTL:
- path-scoped: the app's replay answer carried ``fly-replay-cache: [host]/path/*`` (with
  ``fly-replay-cache-ttl-secs``, at least 10 s), or the JSON form's ``cache`` object;
- session-scoped: the port's ``http_options.replay_cache`` names a path prefix and a
  cookie or header; a replay of a request under that prefix is remembered for that
  cookie's (header's) value only.

Longest prefix wins; session entries before path entries of the same length. A
target that answers ``fly-replay-cache: invalidate`` (with its replay back) removes
the entry that routed the request to it (``invalidate``). An entry
keeps only where to go (never state, transform, timeout or fallback, as on the
platform). ``ReplayCache`` is an immutable value: ``store`` and ``expire`` return a new
one, time is an argument. The relay keeps one per listener and swaps it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

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


PathKey = tuple[str, str]  # (host, path prefix)
SessionKey = tuple[str, str, str]  # (host, "cookie:name=value", path prefix)


@dataclass(frozen=True, slots=True)
class ReplayCache:
    paths: Mapping[PathKey, CacheEntry] = field(default_factory=dict)
    sessions: Mapping[SessionKey, CacheEntry] = field(default_factory=dict)
    # The lengths of the path prefixes in ``paths``: a lookup tries only these.
    lengths: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self.paths) + len(self.sessions)

    @property
    def entries(self) -> bool:
        """Whether there is anything to look up (the relay's per-request test)."""
        return bool(self.paths or self.sessions)


EMPTY: Final = ReplayCache()
SessionValue = Callable[[SessionKind, str], str | None]  # the request's cookie/header value


def parse_prefix(pattern: str, host: str) -> tuple[str, str]:
    """``example.com/api/*`` -> ``("example.com", "/api/")``; ``/api/*`` -> ``(host, "/api/")``.

    Entries are per host name (as on the platform), so on a shared address one app's
    replays never route another app's requests.
    """
    pattern = pattern.strip()
    slash = pattern.find("/")
    if slash > 0:
        host, pattern = pattern[:slash].lower(), pattern[slash:]
    elif slash < 0:
        pattern = "/" + pattern
    return host, pattern.rstrip("*")


def lookup(
    cache: ReplayCache,
    host: str,
    path: str,
    session: SessionValue,
    specs: tuple[SessionCacheSpec, ...],
    now: float,
) -> CacheEntry | None:
    """The live entry for a request (longest prefix first; a session's before a path's)."""
    found = _find(cache, host, path, session, specs, now)
    return None if found is None else found[1]


def invalidate(
    cache: ReplayCache,
    host: str,
    path: str,
    session: SessionValue,
    specs: tuple[SessionCacheSpec, ...],
    now: float,
) -> ReplayCache:
    """The cache without the entry that routes this request (``fly-replay-cache: invalidate``
    in the target's replay answer: it sends the request back and wants no more of them)."""
    found = _find(cache, host, path, session, specs, now)
    if found is None:
        return cache
    key = found[0]
    paths = {k: e for k, e in cache.paths.items() if k != key}
    sessions = {k: e for k, e in cache.sessions.items() if k != key}
    return ReplayCache(paths, sessions, _lengths(paths))


def _find(
    cache: ReplayCache,
    host: str,
    path: str,
    session: SessionValue,
    specs: tuple[SessionCacheSpec, ...],
    now: float,
) -> tuple[PathKey | SessionKey, CacheEntry] | None:
    best: tuple[int, int, PathKey | SessionKey, CacheEntry] | None = None
    for spec in specs:
        if cache.sessions and path.startswith(spec.path_prefix):
            value = session(spec.type, spec.name)
            if value is not None:
                skey = (host, _scope(spec, value), spec.path_prefix)
                best = _better(best, len(spec.path_prefix), 1, skey, cache.sessions.get(skey), now)
    for length in cache.lengths:
        if length <= len(path):
            pkey = (host, path[:length])
            best = _better(best, length, 0, pkey, cache.paths.get(pkey), now)
    return None if best is None else (best[2], best[3])


def _better(
    best: tuple[int, int, PathKey | SessionKey, CacheEntry] | None,
    length: int,
    rank: int,
    key: PathKey | SessionKey,
    entry: CacheEntry | None,
    now: float,
) -> tuple[int, int, PathKey | SessionKey, CacheEntry] | None:
    if entry is None or entry.expires <= now:
        return best
    if best is None or (length, rank) > best[:2]:
        return (length, rank, key, entry)
    return best


def _scope(spec: SessionCacheSpec, value: str) -> str:
    return f"{spec.type}:{spec.name.lower()}={value}"


def store(
    cache: ReplayCache,
    instruction: ReplayInstruction,
    request: tuple[str, str],
    source: tuple[str, str],
    session: SessionValue,
    specs: tuple[SessionCacheSpec, ...],
    now: float,
) -> ReplayCache:
    """The cache after a replay of the request (``host``, ``path``) by ``source``
    (machine, app): entries for the instruction's prefix and for matching sessions."""
    host, path = request
    source_machine, source_app = source
    bare = ReplayInstruction(
        regions=instruction.regions,
        instance=instruction.instance,
        prefer_instance=instruction.prefer_instance,
        app=instruction.app,
        elsewhere=instruction.elsewhere,
    )
    route = replay_route(bare, source_machine, source_app)
    paths = dict(cache.paths)
    sessions = dict(cache.sessions)
    if instruction.cache_prefix:
        key = parse_prefix(instruction.cache_prefix, host)
        paths[key] = CacheEntry(route, now + instruction.cache_ttl, source_machine)
    for spec in specs:
        value = session(spec.type, spec.name) if path.startswith(spec.path_prefix) else None
        if value is not None:
            entry = CacheEntry(route, now + spec.ttl_seconds, source_machine)
            sessions[(host, _scope(spec, value), spec.path_prefix)] = entry
    return _bounded(ReplayCache(paths, sessions, _lengths(paths)), now)


def _lengths(paths: Mapping[PathKey, CacheEntry]) -> frozenset[int]:
    return frozenset(len(prefix) for _, prefix in paths)


def _bounded(cache: ReplayCache, now: float) -> ReplayCache:
    """At most ``MAX_ENTRIES``: expired entries go first, then those expiring soonest."""
    if len(cache) <= MAX_ENTRIES:
        return cache
    cache = expire(cache, now)
    paths, sessions = dict(cache.paths), dict(cache.sessions)
    while len(paths) + len(sessions) > MAX_ENTRIES:
        table: dict[Any, CacheEntry] = sessions if len(sessions) >= len(paths) else paths
        del table[min(table, key=lambda key: table[key].expires)]
    return ReplayCache(paths, sessions, _lengths(paths))


def expire(cache: ReplayCache, now: float) -> ReplayCache:
    """The cache without the entries whose TTL passed."""
    paths = {key: entry for key, entry in cache.paths.items() if entry.expires > now}
    sessions = {key: entry for key, entry in cache.sessions.items() if entry.expires > now}
    if len(paths) + len(sessions) == len(cache):
        return cache
    return ReplayCache(paths, sessions, _lengths(paths))


def cacheable(
    instruction: ReplayInstruction, path: str, specs: tuple[SessionCacheSpec, ...]
) -> bool:
    """Whether a replay of this request adds anything to the cache."""
    return bool(instruction.cache_prefix) or any(path.startswith(s.path_prefix) for s in specs)
