"""The anycast lab's decisions as tables: link delays, prepends, catchments, BIRD text."""

from __future__ import annotations

import pytest

from edge.config.model import LatencySpec
from edge.config.regions import default_catalogue
from edge.core.latency import LatencyModel
from edge.lab import bird
from edge.lab.announce import AnnounceRule, AnnounceState, step
from edge.lab.report import origin_asn, protocols
from edge.lab.topology import (
    access_link_delay,
    build_topology,
    expected_catchments,
    prepend_count,
    router_link_delay,
)

MODEL = LatencyModel.build(LatencySpec(), default_catalogue())
FLOOR = LatencySpec().per_hop_floor
POPS, CLIENTS = ("lhr", "iad", "syd"), ("lhr", "iad", "syd", "nrt")


@pytest.mark.parametrize(
    ("a", "b"), [("lhr", "syd"), ("lhr", "iad"), ("syd", "nrt"), ("iad", "syd")]
)
def test_client_to_far_pop_adds_up_to_the_model(a: str, b: str) -> None:
    # client -> router (a) -> router (b) -> PoP, both ways: the modelled RTT exactly.
    one_way = (
        access_link_delay(FLOOR) + router_link_delay(MODEL, a, b, FLOOR) + access_link_delay(FLOOR)
    )
    assert 2 * one_way == pytest.approx(MODEL.rtt(a, b))


def test_client_to_own_pop_is_the_floor() -> None:
    assert 4 * access_link_delay(FLOOR) == pytest.approx(MODEL.rtt("lhr", "lhr"))


@pytest.mark.parametrize(
    ("a", "b", "policy", "count"),
    [
        ("lhr", "iad", "nearest", 17),  # 88.6 ms: (88.6 - 6) / 5
        ("lhr", "syd", "nearest", 54),  # 275.7 ms
        ("syd", "nrt", "nearest", 23),  # 123.5 ms
        ("lhr", "syd", "shortest-path", 0),
    ],
)
def test_prepends_follow_the_modelled_distance(a: str, b: str, policy: str, count: int) -> None:
    assert prepend_count(MODEL, a, b, FLOOR, policy) == count  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "withdrawn", "expected"),
    [
        ("nearest", frozenset(), {"lhr": "lhr", "iad": "iad", "syd": "syd", "nrt": "syd"}),
        # nrt: iad (157.8 ms) before lhr (227.0 ms) once syd is gone.
        ("nearest", frozenset({"syd"}), {"lhr": "lhr", "iad": "iad", "syd": "iad", "nrt": "iad"}),
        (
            "nearest",
            frozenset({"lhr", "syd"}),
            {"lhr": "iad", "iad": "iad", "syd": "iad", "nrt": "iad"},
        ),
        # Plain AS-path length: nrt ties between every PoP, the lowest router id (lhr) wins.
        ("shortest-path", frozenset(), {"lhr": "lhr", "iad": "iad", "syd": "syd", "nrt": "lhr"}),
        (
            "shortest-path",
            frozenset({"syd"}),
            {"lhr": "lhr", "iad": "iad", "syd": "lhr", "nrt": "lhr"},
        ),
        ("nearest", frozenset(POPS), {"lhr": None, "iad": None, "syd": None, "nrt": None}),
    ],
)
def test_expected_catchments(
    policy: str, withdrawn: frozenset[str], expected: dict[str, str]
) -> None:
    topology = build_topology(MODEL, FLOOR, POPS, CLIENTS, policy=policy)  # type: ignore[arg-type]
    assert expected_catchments(topology, withdrawn) == expected


def test_topology_names_and_addresses() -> None:
    topology = build_topology(MODEL, FLOOR, POPS, CLIENTS, prefix="elab")
    assert topology.regions == ("lhr", "iad", "syd", "nrt")
    assert all(ns.startswith("elab-") for ns in topology.namespaces())
    assert len([link for link in topology.links if link.kind == "router"]) == 6  # full mesh
    assert topology.client("nrt").network == "100.64.3.0/24"
    assert topology.pop("syd").api_url == "http://198.18.0.12:4280"
    assert topology.cp_mgmt == "198.18.0.2" and topology.mgmt_net == "198.18.0.0/24"
    other = build_topology(MODEL, FLOOR, POPS, CLIENTS, prefix="elabt")
    assert other.mgmt_net != topology.mgmt_net and other.mgmt_net.startswith("198.19.")
    assert other.pop("lhr").mgmt.startswith(other.mgmt_net[: -len("0/24")])
    names = [end.ifname for link in topology.links for end in (link.a, link.b)]
    assert all(len(name) <= 15 for name in names)  # Linux interface names


@pytest.mark.parametrize(
    ("pops", "clients", "machines", "policy", "message"),
    [
        ((), ("lhr",), ("lhr",), "nearest", "at least one PoP"),
        (("xxx",), ("lhr",), ("lhr",), "nearest", "unknown region"),
        (("lhr", "lhr"), ("lhr",), ("lhr",), "nearest", "named twice"),
        (("lhr",), ("lhr",), ("lhr",), "fastest", "--policy"),
        (("lhr",), ("lhr",), (), "nearest", "--machines"),
    ],
)
def test_bad_lab_requests_are_refused(
    pops: tuple[str, ...],
    clients: tuple[str, ...],
    machines: tuple[str, ...],
    policy: str,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        build_topology(MODEL, FLOOR, pops, clients, machines, policy)  # type: ignore[arg-type]


def test_bird_configs() -> None:
    topology = build_topology(MODEL, FLOOR, POPS, CLIENTS)
    pop = bird.pop_config(topology, topology.pop("syd"))
    assert "protocol static anycast" in pop and "route 203.0.113.0/24 blackhole" in pop
    assert "neighbor 198.18.1.9 as 65003" in pop and "hold time 3" in pop
    router = bird.router_config(topology, "lhr")
    assert router.count("protocol bgp r_") == 3 and "protocol bgp pop_lhr" in router
    # lhr -> syd carries 54 extra prepends; lhr -> iad 17.
    syd_part = router.split("protocol bgp r_syd")[1].split("protocol bgp")[0]
    assert syd_part.count("bgp_path.prepend(65001)") == 54
    plain = bird.router_config(
        build_topology(MODEL, FLOOR, POPS, CLIENTS, policy="shortest-path"), "lhr"
    )
    assert "prepend" not in plain


RULE = AnnounceRule(rise=2, fall=2)


@pytest.mark.parametrize(
    ("probes", "withdrawn", "announced"),
    [
        ([True], False, False),  # one pass is not enough
        ([True, True], False, True),
        ([True, True], True, False),  # a withdraw fault acts at once
        ([True, True, False], False, True),  # one failure is tolerated
        ([True, True, False, False], False, False),  # a dead node is withdrawn
        ([True, True, False, False, True, True], False, True),
    ],
)
def test_announce_rule(probes: list[bool], withdrawn: bool, announced: bool) -> None:
    state = AnnounceState()
    for ok in probes:
        state = step(state, ok, withdrawn, RULE)
    assert state.announced is announced


def test_birdc_output_parsing() -> None:
    route = (
        "BIRD 2.0.12 ready.\nTable master4:\n"
        "203.0.113.0/24       unicast [r_iad 20:50:01.123] * (100) [AS64602i]\n"
        "\tvia 198.18.2.2 on r-iad\n"
    )
    assert origin_asn(route) == 64602
    assert origin_asn("BIRD 2.0.12 ready.\nNetwork not found\n") is None
    shown = (
        "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n"
        "anycast    Static     master4    up     20:50:01.123  \n"
        "r_iad      BGP        ---        start  20:50:01.123  Connect\n"
    )
    assert protocols(shown) == {"anycast": ("up", ""), "r_iad": ("start", "Connect")}


@pytest.mark.parametrize("prefix", ["", "Elab", "toolongprefix", "e-lab", "1lab"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        build_topology(MODEL, FLOOR, POPS, CLIENTS, prefix=prefix)
