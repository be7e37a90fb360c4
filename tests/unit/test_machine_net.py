"""Private addresses of process machines: unique, stable, inside the network."""

from __future__ import annotations

import ipaddress

import pytest

from edge.core.machine_net import assign_private_ips


def test_each_machine_gets_its_own_address_in_the_network() -> None:
    keys = [("app", f"m{n}") for n in range(50)]
    ips = assign_private_ips(keys, "127.78.0.0/16", {})
    assert len(set(ips.values())) == 50
    net = ipaddress.ip_network("127.78.0.0/16")
    assert all(ipaddress.ip_address(ip) in net for ip in ips.values())
    assert str(net.network_address) not in ips.values()


def test_addresses_are_stable() -> None:
    first = assign_private_ips([("a", "1"), ("a", "2")], "127.78.0.0/16", {})
    # Derived from app and id: a restarted edge gives the same ones.
    assert assign_private_ips([("a", "2"), ("a", "1")], "127.78.0.0/16", {}) == first
    # A machine keeps its address while others come and go.
    kept = assign_private_ips([("a", "1"), ("b", "9")], "127.78.0.0/16", first)
    assert kept[("a", "1")] == first[("a", "1")] and ("a", "2") not in kept


def test_a_small_network_fills_up_then_says_so() -> None:
    keys = [("a", "1"), ("a", "2")]
    ips = assign_private_ips(keys, "127.9.9.0/30", {})  # two usable addresses
    assert sorted(ips.values()) == ["127.9.9.1", "127.9.9.2"]
    with pytest.raises(ValueError, match="no free address for 3"):
        assign_private_ips([*keys, ("a", "3")], "127.9.9.0/30", ips)
