"""Client placement by CIDR and anycast ingress."""

from __future__ import annotations

import pytest

from edge.config.model import ClientNet, LatencySpec
from edge.config.regions import default_catalogue
from edge.core.anycast import ClientMap, client_region_for, ingress_pop, pops_by_rtt
from edge.core.latency import LatencyModel

CLIENTS = (
    ClientNet(cidr="10.0.0.0/8", region="fra"),
    ClientNet(cidr="10.1.0.0/16", region="syd"),
    ClientNet(cidr="10.1.2.0/24", region="nrt"),
    ClientNet(cidr="2001:db8::/32", region="gru"),
    ClientNet(cidr="2001:db8:1::/48", region="jnb"),
)


@pytest.fixture(scope="module")
def model() -> LatencyModel:
    return LatencyModel.build(LatencySpec(), default_catalogue())


@pytest.mark.parametrize(
    ("ip", "region"),
    [
        ("10.9.9.9", "fra"),
        ("10.1.9.9", "syd"),
        ("10.1.2.3", "nrt"),
        ("192.0.2.1", "lhr"),
        ("2001:db8:2::1", "gru"),
        ("2001:db8:1::1", "jnb"),
        ("2001:db9::1", "lhr"),
        ("::ffff:10.1.2.3", "nrt"),
        ("127.0.0.1", "lhr"),
        ("127.9.9.9", "lhr"),
        ("::1", "lhr"),
        ("not-an-ip", "lhr"),
        ("", "lhr"),
    ],
)
def test_longest_prefix_wins(ip: str, region: str) -> None:
    assert ClientMap.build(CLIENTS, "lhr").region_for(ip) == region


def test_loopback_stays_local_even_under_a_catch_all() -> None:
    clients = (ClientNet(cidr="0.0.0.0/0", region="syd"),)
    cmap = ClientMap.build(clients, "lhr")
    assert cmap.region_for("127.0.0.1") == "lhr"
    assert cmap.region_for("8.8.8.8") == "syd"


def test_first_entry_wins_for_the_same_network() -> None:
    clients = (
        ClientNet(cidr="10.0.0.0/8", region="fra"),
        ClientNet(cidr="10.0.0.0/8", region="syd"),
    )
    assert ClientMap.build(clients, "lhr").region_for("10.0.0.1") == "fra"


def test_one_off_lookup() -> None:
    assert client_region_for("10.1.0.1", CLIENTS, "iad") == "syd"
    assert client_region_for("172.16.0.1", CLIENTS, "iad") == "iad"
    assert client_region_for("10.1.0.1", (), "iad") == "iad"


def test_ingress_is_the_nearest_up_pop(model: LatencyModel) -> None:
    assert ingress_pop("syd", ("lhr", "iad", "syd"), model) == "syd"
    assert ingress_pop("cdg", ("iad", "lhr", "syd"), model) == "lhr"
    # With Sydney down, Sydney's clients go to the nearest of the rest.
    assert ingress_pop("syd", ("lhr", "iad", "lax"), model) == "lax"


def test_no_pop_up(model: LatencyModel) -> None:
    assert ingress_pop("syd", (), model) is None


def test_ties_go_to_the_first_listed() -> None:
    flat = LatencyModel(
        matrix={"a": {"a": 0.001, "b": 0.01, "c": 0.01}},
        by_rtt={"a": ("a", "b", "c")},
    )
    assert ingress_pop("a", ("c", "b"), flat) == "c"
    assert ingress_pop("a", ("b", "c"), flat) == "b"
    assert pops_by_rtt("a", ("c", "b", "a"), flat) == (("a", 0.001), ("c", 0.01), ("b", 0.01))


def test_pops_by_rtt_sorted_with_rtts(model: LatencyModel) -> None:
    ranked = pops_by_rtt("fra", ("syd", "iad", "ams", "fra"), model)
    assert [pop for pop, _ in ranked] == ["fra", "ams", "iad", "syd"]
    assert ranked[0][1] == model.rtt("fra", "fra")
    assert [rtt for _, rtt in ranked] == sorted(rtt for _, rtt in ranked)


def test_loopback_ranges_can_place_clients_in_other_regions() -> None:
    clients = (
        ClientNet(cidr="0.0.0.0/0", region="syd"),
        ClientNet(cidr="127.1.0.0/16", region="nrt"),
    )
    cmap = ClientMap.build(clients, "lhr")
    assert cmap.region_for("127.1.2.3") == "nrt"
    assert cmap.region_for("127.0.0.1") == "lhr"
    assert cmap.region_for("8.8.8.8") == "syd"
