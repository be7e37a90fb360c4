"""The replay cache as a value: path and session entries, longest prefix, TTL (fake clock)."""

from __future__ import annotations

from edge.core.replay import ReplayInstruction
from edge.core.replay_cache import (
    EMPTY,
    MAX_ENTRIES,
    ReplayCache,
    SessionCacheSpec,
    SessionKind,
    cacheable,
    expire,
    lookup,
    parse_prefix,
    store,
)

SESSION = SessionCacheSpec("/s/", 30.0, "cookie", "session")


def session_of(values: dict[str, str]):  # type: ignore[no-untyped-def]
    def value(kind: SessionKind, name: str) -> str | None:
        return values.get(f"{kind}:{name}")

    return value


NONE = session_of({})


def put(cache: ReplayCache, region: str, prefix: str | None, path: str = "/", now: float = 0.0,
        host: str = "a.test", values: dict[str, str] | None = None,
        specs: tuple[SessionCacheSpec, ...] = ()) -> ReplayCache:  # fmt: skip
    instruction = ReplayInstruction(regions=(region,), cache_prefix=prefix, cache_ttl=10.0)
    return store(
        cache, instruction, (host, path), ("m1", "web"), session_of(values or {}), specs, now
    )


def found(cache: ReplayCache, path: str, now: float, host: str = "a.test",
          values: dict[str, str] | None = None,
          specs: tuple[SessionCacheSpec, ...] = ()) -> tuple[str, ...] | None:  # fmt: skip
    entry = lookup(cache, host, path, session_of(values or {}), specs, now)
    return None if entry is None else entry.route.regions


def test_parse_prefix() -> None:
    assert parse_prefix("/api/*", "h") == ("h", "/api/")
    assert parse_prefix("Example.COM/api/*", "h") == ("example.com", "/api/")
    assert parse_prefix("api*", "h") == ("h", "/api")
    assert parse_prefix("/exact", "h") == ("h", "/exact")


def test_miss_then_hit_then_expiry() -> None:
    cache = put(EMPTY, "iad", "/api/*", now=100.0)
    assert found(EMPTY, "/api/x", 100.0) is None  # miss: nothing stored
    assert found(cache, "/api/x", 105.0) == ("iad",)  # hit
    assert found(cache, "/api/x", 109.9) == ("iad",)
    assert found(cache, "/api/x", 110.0) is None  # the TTL passed
    assert found(cache, "/other", 105.0) is None
    assert expire(cache, 111.0) == ReplayCache(lengths=frozenset())
    assert expire(cache, 105.0) is cache


def test_longest_prefix_wins() -> None:
    cache = put(put(EMPTY, "iad", "/api/*"), "syd", "/api/v2/*")
    assert found(cache, "/api/v2/x", 1.0) == ("syd",)
    assert found(cache, "/api/v1/x", 1.0) == ("iad",)


def test_entries_are_per_host() -> None:
    cache = put(EMPTY, "iad", "/api/*", host="a.test")
    assert found(cache, "/api/x", 1.0, host="b.test") is None
    named = put(EMPTY, "iad", "b.test/api/*", host="a.test")
    assert found(named, "/api/x", 1.0, host="b.test") == ("iad",)


def test_entries_keep_only_the_target() -> None:
    instruction = ReplayInstruction(
        regions=("iad",), state="s", timeout=1.0, fallback="force_self", cache_prefix="/a*"
    )
    cache = store(EMPTY, instruction, ("h", "/a"), ("m1", "web"), NONE, (), 0.0)
    entry = lookup(cache, "h", "/a", NONE, (), 1.0)
    assert entry is not None and entry.route.regions == ("iad",) and entry.source_machine == "m1"
    assert "state" not in entry.route.why and "fallback" not in entry.route.why


def test_session_entries_by_cookie() -> None:
    specs = (SESSION,)
    abc = {"cookie:session": "abc"}
    cache = put(EMPTY, "syd", None, "/s/1", 0.0, values=abc, specs=specs)
    assert found(cache, "/s/2", 1.0, values=abc, specs=specs) == ("syd",)
    assert found(cache, "/s/2", 1.0, values={"cookie:session": "xyz"}, specs=specs) is None
    assert found(cache, "/s/2", 1.0, specs=specs) is None  # no cookie
    assert found(cache, "/t/2", 1.0, values=abc, specs=specs) is None  # outside the prefix
    assert found(cache, "/s/2", 30.0, values=abc, specs=specs) is None  # ttl_seconds 30


def test_session_entries_by_header_and_before_path_entries() -> None:
    spec = SessionCacheSpec("/api/", 60.0, "header", "x-user")
    user = {"header:x-user": "u1"}
    cache = put(EMPTY, "iad", "/api/*", "/api/a", 0.0, values=user, specs=(spec,))
    cache = put(cache, "syd", None, "/api/a", 0.0, values=user, specs=(spec,))
    assert found(cache, "/api/b", 1.0, values=user, specs=(spec,)) == ("syd",)
    assert found(cache, "/api/b", 1.0, specs=(spec,)) == ("iad",)


def test_nothing_cacheable_leaves_the_cache_alone() -> None:
    assert put(EMPTY, "iad", None) == EMPTY
    assert not cacheable(ReplayInstruction(), "/x", (SESSION,))
    assert cacheable(ReplayInstruction(), "/s/x", (SESSION,))
    assert cacheable(ReplayInstruction(cache_prefix="/x"), "/y", ())


def test_the_cache_is_bounded() -> None:
    specs = (SESSION,)
    cache = EMPTY
    for i in range(MAX_ENTRIES + 5):
        values = {"cookie:session": str(i)}
        cache = put(cache, "syd", None, "/s/", i / 1000, values=values, specs=specs)
    assert len(cache) == MAX_ENTRIES  # none expired: those expiring soonest made room
    first = {"cookie:session": "0"}
    assert found(cache, "/s/", 11.0, values=first, specs=specs) is None
    last = {"cookie:session": str(MAX_ENTRIES + 4)}
    assert found(cache, "/s/", 11.0, values=last, specs=specs) == ("syd",)


def test_invalidate_drops_the_entry_that_routed_the_request() -> None:
    from edge.core.replay_cache import invalidate

    cache = put(put(EMPTY, "iad", "/api/*"), "syd", "/api/v2/*")
    cache = invalidate(cache, "a.test", "/api/v2/x", NONE, (), 1.0)
    assert found(cache, "/api/v2/x", 1.0) == ("iad",)  # the shorter prefix still holds
    cache = invalidate(cache, "a.test", "/api/v2/x", NONE, (), 1.0)
    assert found(cache, "/api/v2/x", 1.0) is None
    assert invalidate(cache, "a.test", "/api/x", NONE, (), 1.0) is cache  # nothing to drop


def test_invalidate_in_both_forms() -> None:
    from edge.core.replay import parse_json, with_cache_headers

    header = with_cache_headers(ReplayInstruction(instance="m1"), b"invalidate", None)
    assert header.cache_invalidate and header.cache_prefix is None
    assert parse_json(b'{"instance": "m1", "cache": {"invalidate": true}}').cache_invalidate
