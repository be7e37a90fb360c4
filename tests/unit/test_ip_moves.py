"""The rules for serving one app's address from another app of the org, as tables."""

from __future__ import annotations

import pytest

from edge.config.model import PortSpec, ServiceSpec
from edge.core.ip_moves import (
    MoveTarget,
    check_move,
    declared_ips,
    moved,
    plan_declared,
    shared_problem,
)
from edge.core.ipam import IpAssignment
from edge.errors import BadRequest, Conflict, EdgeError, NotFound

SHARED = "127.77.255.254"
HTTP = ServiceSpec(ports=(PortSpec(port=8080, handlers=("http",)),))
RAW = ServiceSpec(internal_port=7000, ports=(PortSpec(port=7000),))


def ip(address: str, app: str, *, primary: bool = False, shared: bool = False) -> IpAssignment:
    kind = "shared_v4" if shared else "v4"
    region = "global" if shared else "lhr"
    return IpAssignment(address, kind, region, app, "acme", 1000, shared, primary)


BLUE = (
    ip("127.77.0.1", "blue", primary=True),
    ip("127.77.0.9", "blue"),
    ip(SHARED, "blue", shared=True),
)
GREEN = MoveTarget("green", "acme", (HTTP,), (ip("127.77.0.2", "green", primary=True),))
GREEN_RAW = MoveTarget("green", "acme", (HTTP, RAW), GREEN.ips)
GREEN_SHARED = MoveTarget("green", "acme", (HTTP,), (*GREEN.ips, ip(SHARED, "green", shared=True)))


@pytest.mark.parametrize(
    ("address", "source", "target", "error"),
    [
        ("127.77.0.9", "blue", GREEN, None),
        ("127.077.0.9", "blue", GREEN, BadRequest),  # not an address
        ("127.77.0.9", "green", GREEN, BadRequest),  # the same app
        ("127.77.0.3", "blue", GREEN, NotFound),  # not the source's
        ("127.77.0.1", "blue", GREEN, Conflict),  # the source's primary
        (SHARED, "blue", GREEN, None),  # the shared IPv4 to an http app
        (SHARED, "blue", GREEN_RAW, Conflict),  # ... not to one with a raw TCP port
        (SHARED, "blue", GREEN_SHARED, Conflict),  # ... not to one that has it
    ],
)
def test_check_move(
    address: str, source: str, target: MoveTarget, error: type[EdgeError] | None
) -> None:
    if error is None:
        assert check_move(address, source, BLUE, target).address == address
    else:
        with pytest.raises(error):
            check_move(address, source, BLUE, target)


def test_a_moved_address_keeps_everything_but_its_app_and_is_never_primary() -> None:
    primary_looking = ip("127.77.0.9", "blue", primary=True)
    after = moved(primary_looking, "green")
    assert (after.app, after.primary) == ("green", False)
    assert (after.address, after.type, after.region, after.created_at, after.org) == (
        "127.77.0.9",
        "v4",
        "lhr",
        1000,
        "acme",
    )


@pytest.mark.parametrize(
    ("services", "problem"),
    [((HTTP,), ""), ((HTTP, RAW), "raw TCP port 7000"), ((), "")],
)
def test_shared_problem(services: tuple[ServiceSpec, ...], problem: str) -> None:
    found = shared_problem("green", services)
    assert (problem in found) if problem else found == ""


def test_declared_ips_name_their_path_once_each() -> None:
    one = ServiceSpec(ports=HTTP.ports, ips=("127.77.0.9", "127.77.0.10"))
    two = ServiceSpec(ports=RAW.ports, ips=("127.77.0.10",))
    assert declared_ips((one, two)) == (
        ("services[0].ips[0]", "127.77.0.9"),
        ("services[0].ips[1]", "127.77.0.10"),
    )


ORG_IPS = {a.address: a for a in (*BLUE[:2], *GREEN.ips)}


@pytest.mark.parametrize(
    ("address", "moves", "error"),
    [
        ("127.77.0.9", ["127.77.0.9"], None),  # another app's: moved
        ("127.77.0.2", [], None),  # the app's own: nothing to do
        ("127.77.0.1", [], Conflict),  # another app's primary
        ("127.77.5.5", [], BadRequest),  # not the org's
        (SHARED, [], BadRequest),  # the shared IPv4 is no org's address
    ],
)
def test_plan_declared(address: str, moves: list[str], error: type[EdgeError] | None) -> None:
    declared = (("services[0].ips[0]", address),)
    if error is None:
        plan = plan_declared("green", "acme", declared, ORG_IPS, SHARED)
        assert [a.address for a in plan] == moves
    else:
        with pytest.raises(error, match=r"^services\[0\]\.ips\[0\]: "):
            plan_declared("green", "acme", declared, ORG_IPS, SHARED)
