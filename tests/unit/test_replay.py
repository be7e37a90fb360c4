"""fly-replay rules as tables: parsing both forms, limits, targets, fallbacks, headers."""

from __future__ import annotations

import json

import pytest

from edge.core.error_codes import ErrorCode
from edge.core.replay import (
    MAX_JSON_BODY,
    InvalidReplay,
    ReplayInstruction,
    ReplayRoute,
    ReplayTransform,
    check_replay,
    fallback_route,
    parse_header,
    parse_json,
    replay_failed,
    replay_route,
    replay_src,
    with_cache_headers,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"region=lhr", ReplayInstruction(regions=("lhr",))),
        (b" region = LHR ", ReplayInstruction(regions=("lhr",))),
        (b'region="ams,fra,ams"', ReplayInstruction(regions=("ams", "fra"))),
        (b'region="ams, any"', ReplayInstruction(regions=("ams", "any"))),
        (b"region=eu", ReplayInstruction(regions=("eu",))),
        (b"instance=abc-1", ReplayInstruction(instance="abc-1")),
        (b"prefer_instance=abc", ReplayInstruction(prefer_instance="abc")),
        (b"app=api;state=a=b", ReplayInstruction(app="api", state="a=b")),
        (b"elsewhere=true", ReplayInstruction(elsewhere=True)),
        (b"elsewhere=false;", ReplayInstruction()),
        (
            b"timeout=800ms;fallback=force_self",
            ReplayInstruction(timeout=0.8, fallback="force_self"),
        ),
        (
            b"timeout=10s;fallback=prefer_self",
            ReplayInstruction(timeout=10, fallback="prefer_self"),
        ),
        (b"timeout=2", ReplayInstruction(timeout=2.0)),
        (b"timeout=1m", ReplayInstruction(timeout=60.0)),
        (b'state="x;y"', ReplayInstruction(state="x;y")),
        (b"", ReplayInstruction()),
    ],
)
def test_parse_header(value: bytes, expected: ReplayInstruction) -> None:
    assert parse_header(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"regoin=lhr", "unknown field 'regoin'"),
        (b"region", "is not name=value"),
        (b'region="lhr', "unterminated quote"),
        (b'region="lhr,,fra"', "empty entry"),
        (b"region=l!r", "not a region code"),
        (b"elsewhere=yes", "true or false"),
        (b"fallback=retry", "force_self or prefer_self"),
        (b"timeout=soon", "duration"),
        (b"instance=a b", "not a valid id"),
        (b"app=\xff", "not ASCII"),
    ],
)
def test_invalid_headers_are_pa03(value: bytes, message: str) -> None:
    with pytest.raises(InvalidReplay, match=message) as info:
        parse_header(value)
    assert info.value.code == ErrorCode.PA03


def test_region_lists_force_unless_they_end_in_any() -> None:
    assert parse_header(b'region="ams,fra"').forced_regions
    assert parse_header(b'region="ams,fra"').target_regions == ("ams", "fra")
    relaxed = parse_header(b'region="ams,any"')
    assert not relaxed.forced_regions and relaxed.target_regions == ("ams",)
    assert not parse_header(b"elsewhere=true").forced_regions


def test_parse_json_with_transform_and_cache() -> None:
    body = {
        "region": ["ams", "any"],
        "elsewhere": True,
        "state": "s",
        "transform": {
            "path": "/v2/x",
            "delete_headers": ["Cookie"],
            "set_headers": [{"name": "X-A", "value": "1"}],
        },
        "cache": {"prefix": "/v2/*", "ttl": 5},
    }
    found = parse_json(json.dumps(body).encode())
    assert found == ReplayInstruction(
        regions=("ams", "any"),
        elsewhere=True,
        state="s",
        transform=ReplayTransform("/v2/x", ("cookie",), (("X-A", "1"),)),
        cache_prefix="/v2/*",
        cache_ttl=10.0,  # raised to the minimum
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "must be an object"),
        (b'{"regions": "lhr"}', "unknown field"),
        (b'{"region": [1]}', "must hold strings"),
        (b'{"app": {}}', "must be a string"),
        (b'{"transform": {"path": "x"}}', "starting with '/'"),
        (b'{"transform": {"path": "/a b"}}', "starting with '/'"),
        (b'{"transform": {"verb": "GET"}}', "takes path"),
        (b'{"transform": {"delete_headers": ["a b"]}}', "header names"),
        (b'{"transform": {"set_headers": [{"value": "x"}]}}', "name, value"),
        (b'{"transform": {"set_headers": [{"name": "a", "value": "x\\r\\ny: z"}]}}', "line breaks"),
        (b'{"cache": {"ttl": 10}}', "prefix"),
        (b'{"cache": {"prefix": "/a", "ttl": "long"}}', "number of seconds"),
        (b"{" + b" " * MAX_JSON_BODY + b"}", "over"),
    ],
)
def test_invalid_json_is_pa03(body: bytes, message: str) -> None:
    with pytest.raises(InvalidReplay, match=message):
        parse_json(body)


@pytest.mark.parametrize(
    ("cache", "ttl", "prefix", "seconds"),
    [
        (None, None, None, 10.0),
        (b"/api/*", None, "/api/*", 10.0),
        (b"/api/*", b"3", "/api/*", 10.0),
        (b"example.com/api/*", b"60", "example.com/api/*", 60.0),
    ],
)
def test_cache_headers(
    cache: bytes | None, ttl: bytes | None, prefix: str | None, seconds: float
) -> None:
    found = with_cache_headers(ReplayInstruction(regions=("lhr",)), cache, ttl)
    assert (found.cache_prefix, found.cache_ttl) == (prefix, seconds)


def test_cache_ttl_must_be_a_number() -> None:
    with pytest.raises(InvalidReplay):
        with_cache_headers(ReplayInstruction(), b"/a", b"ten")


@pytest.mark.parametrize(
    ("done", "complete", "fallback", "code"),
    [
        (0, True, False, None),
        (9, True, False, None),
        (10, True, False, ErrorCode.PA02),
        (0, False, False, ErrorCode.PA01),
        (0, True, True, ErrorCode.PA03),
    ],
)
def test_check_replay(done: int, complete: bool, fallback: bool, code: ErrorCode | None) -> None:
    refusal = check_replay(done, complete, fallback, 1024)
    assert (refusal.code if refusal else None) == code


def test_replay_route() -> None:
    route = replay_route(parse_header(b"region=lhr;elsewhere=true"), "m1", "web")
    assert route == ReplayRoute(
        app="web",
        source_app="web",
        regions=("lhr",),
        forced=True,
        exclude=frozenset({"m1"}),
        why="replay from m1: region=lhr;elsewhere=true",
    )
    other = replay_route(parse_header(b'app=api;region="ams,any";instance=x'), "m1", "web")
    assert (other.app, other.source_app, other.forced, other.regions) == (
        "api",
        "web",
        False,
        ("ams",),
    )
    assert other.force_instance == "x" and other.exclude == frozenset()


@pytest.mark.parametrize(
    ("fallback", "force", "prefer"),
    [(None, None, None), ("force_self", "m1", None), ("prefer_self", None, "m1")],
)
def test_fallback_route(fallback: str | None, force: str | None, prefer: str | None) -> None:
    instruction = ReplayInstruction(regions=("syd",), fallback=fallback)  # type: ignore[arg-type]
    route = fallback_route(instruction, "m1", "web")
    if fallback is None:
        assert route is None
        return
    assert route is not None and route.app == "web"
    assert (route.force_instance, route.prefer_instance) == (force, prefer)


def test_request_headers_of_a_replay() -> None:
    assert replay_src("m1", "lhr", 123, None) == b"instance=m1;region=lhr;t=123"
    assert replay_src("m1", "lhr", 123, "s") == b"instance=m1;region=lhr;t=123;state=s"
    failed = replay_failed(ReplayInstruction(regions=("syd", "any")), "web", "m1", "timeout", 512)
    assert failed == (
        b"instance=;app=web;region=syd,any;replay_source=m1;reason=timeout;elapsed_ms=512"
    )


def test_describe() -> None:
    assert parse_header(b"region=lhr;timeout=1s;fallback=force_self").describe() == (
        "region=lhr;fallback=force_self;timeout=1s"
    )
    assert ReplayInstruction().describe() == "(no target: any machine)"
