"""Region aliases: built from the catalogue's geo_region, expanded nearest-first."""

from __future__ import annotations

import pytest

from edge.config.model import LatencySpec
from edge.config.regions import default_catalogue
from edge.core.latency import LatencyModel
from edge.core.region_aliases import RegionAliases
from edge.core.replay import ReplayRoute
from edge.core.route_headers import parse_regions, replay_request, route_request
from edge.dataplane.contract import RouteHints

CATALOGUE = default_catalogue()
MODEL = LatencyModel.build(LatencySpec(), CATALOGUE)
ALIASES = RegionAliases.build(CATALOGUE, MODEL.by_rtt)
VALID = CATALOGUE.codes()


def test_every_region_has_a_geo_region() -> None:
    assert {r.geo_region for r in CATALOGUE} == {"us", "na", "sa", "eu", "apac", "af"}


@pytest.mark.parametrize(
    ("alias", "has", "lacks"),
    [
        ("us", {"iad", "sjc", "ord"}, {"yyz", "lhr"}),
        ("usa", {"iad", "sjc"}, {"yyz"}),
        ("na", {"iad", "yyz", "qro"}, {"gru"}),
        ("sa", {"gru", "eze"}, {"iad"}),
        ("eu", {"lhr", "fra", "ams", "cdg"}, {"jnb"}),
        ("apac", {"syd", "nrt", "sin", "bom"}, {"lhr"}),
        ("any", {"jnb", "lhr", "syd", "gru"}, set()),
    ],
)
def test_alias_members(alias: str, has: set[str], lacks: set[str]) -> None:
    members = ALIASES.members[alias]
    assert has <= members and not (lacks & members)


def test_any_is_every_region() -> None:
    assert ALIASES.members["any"] == VALID


def test_an_alias_expands_nearest_first_from_the_pop() -> None:
    from_lhr = ALIASES.expand(["us"], "lhr")
    assert set(from_lhr) == ALIASES.members["us"]
    assert from_lhr == tuple(sorted(from_lhr, key=lambda code: MODEL.rtt("lhr", code)))
    from_sjc = ALIASES.expand(["us"], "sjc")
    assert from_sjc[0] == "sjc"


def test_codes_keep_their_place_and_repeats_go() -> None:
    expanded = ALIASES.expand(["syd", "eu", "lhr"], "lhr")
    assert expanded[0] == "syd" and expanded[1] == "lhr"
    assert expanded.count("lhr") == 1 and "fra" in expanded


def nearest(alias: str, pop: str) -> str:
    return min(ALIASES.members[alias], key=lambda code: (MODEL.rtt(pop, code), code))


@pytest.mark.parametrize(
    ("raw", "first"),
    [
        (b"eu", "lhr"),
        (b"apac", nearest("apac", "lhr")),
        (b"syd,eu", "syd"),
        (b"US", nearest("us", "lhr")),
    ],
)
def test_aliases_in_prefer_region(raw: bytes, first: str) -> None:
    regions = parse_regions(raw, VALID, ALIASES, "lhr")
    assert regions[0] == first


def test_aliases_in_route_request() -> None:
    hints = RouteHints(prefer_region=b"apac", force_region=b"eu")
    request = route_request("lhr", "c", hints, VALID, aliases=ALIASES)
    assert set(request.force_regions) == ALIASES.members["eu"]
    assert set(request.prefer_regions) == ALIASES.members["apac"]


def test_replay_request_forced_or_preferred() -> None:
    forced = ReplayRoute(app="a", source_app="a", regions=("eu",), forced=True)
    request = replay_request("lhr", "c", forced, frozenset({"m9"}), ALIASES)
    assert request.force_regions[0] == "lhr" and not request.prefer_regions
    assert request.exclude == frozenset({"m9"})
    preferred = ReplayRoute(
        app="a", source_app="a", regions=("syd",), exclude=frozenset({"m1"}), prefer_instance="p"
    )
    request = replay_request("lhr", "c", preferred, frozenset(), ALIASES)
    assert (request.prefer_regions, request.force_regions) == (("syd",), ())
    assert request.exclude == frozenset({"m1"}) and request.prefer_instance == "p"


def test_a_replay_route_overrides_the_clients_headers() -> None:
    route = ReplayRoute(app="a", source_app="a", force_instance="m2")
    hints = RouteHints(force_region=b"syd", replay=route)
    request = route_request("lhr", "c", hints, VALID, aliases=ALIASES)
    assert request.force_instance == "m2" and request.force_regions == ()
