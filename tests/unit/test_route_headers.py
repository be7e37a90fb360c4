"""The client routing headers, from raw header bytes to a RouteRequest."""

from __future__ import annotations

import pytest

from edge.config.regions import default_catalogue
from edge.core.route_headers import parse_instance, parse_regions, route_request
from edge.core.routing import RouteRequest
from edge.dataplane.contract import RouteHints

VALID = default_catalogue().codes()


@pytest.mark.parametrize(
    ("raw", "regions"),
    [
        (b"syd,nrt", ("syd", "nrt")),
        (b" SYD , Nrt ", ("syd", "nrt")),
        (b"syd,xyz,nrt", ("syd", "nrt")),
        (b"syd,syd,nrt,syd", ("syd", "nrt")),
        (b"us,eu,any", ()),
        (b"", ()),
        (b",,", ()),
        (None, ()),
        (b"s\xffd,iad", ("iad",)),
    ],
)
def test_parse_regions(raw: bytes | None, regions: tuple[str, ...]) -> None:
    assert parse_regions(raw, VALID) == regions


def test_parse_regions_uses_the_given_codes() -> None:
    assert parse_regions(b"syd,nrt", frozenset({"nrt"})) == ("nrt",)


@pytest.mark.parametrize(
    ("raw", "instance"),
    [
        (b"148e21ea7d2e89", "148e21ea7d2e89"),
        (b"  Web-1 ", "web-1"),
        (b"", None),
        (b"   ", None),
        (None, None),
        (b"a b", None),
        (b"web/1", None),
        (b"\xff", None),
        (b"x" * 65, None),
    ],
)
def test_parse_instance(raw: bytes | None, instance: str | None) -> None:
    assert parse_instance(raw) == instance


def test_a_connection_without_hints() -> None:
    request = route_request("lhr", "192.0.2.1", None, VALID)
    assert request == RouteRequest(pop="lhr", client_key="192.0.2.1")


def test_a_request_with_every_header() -> None:
    hints = RouteHints(
        host=b"app.edge.test",
        prefer_region=b"syd, nrt",
        force_region=b"IAD",
        prefer_instance=b"m-1",
        force_instance=b"m-2",
    )
    request = route_request("fra", "198.51.100.7", hints, VALID, exclude=frozenset({"m-3"}))
    assert request == RouteRequest(
        pop="fra",
        client_key="198.51.100.7",
        prefer_regions=("syd", "nrt"),
        force_regions=("iad",),
        prefer_instance="m-1",
        force_instance="m-2",
        exclude=frozenset({"m-3"}),
    )


def test_a_request_with_no_routing_headers() -> None:
    request = route_request("fra", "k", RouteHints(host=b"app.edge.test"), VALID)
    assert request == RouteRequest(pop="fra", client_key="k")
