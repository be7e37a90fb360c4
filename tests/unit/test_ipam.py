"""The IP allocation rules of ``edge.core.ipam``, without I/O."""

from __future__ import annotations

import ipaddress
import time

import pytest

from edge.config.model import IpamSpec, ServiceSpec
from edge.core import ipam
from edge.core.ipam import (
    AppRef,
    IpamPolicy,
    IpamState,
    IpAssignment,
    check_release,
    choose_address,
    plan_allocation,
    plan_app_ips,
    with_assignment,
)
from edge.errors import BadRequest, ConfigError, Conflict, LimitExceeded, NotFound, PoolExhausted

NOW = 1_800_000_000.0
HOUR = 3600.0
REGIONS = frozenset({"lhr", "fra", "iad", "syd"})
APP = AppRef("web", "personal", "lhr")
POLICY = IpamPolicy()


def plan(
    ip_type: ipam.IpType = "v4",
    region: str | None = None,
    state: IpamState | None = None,
    policy: IpamPolicy = POLICY,
    app: AppRef = APP,
) -> IpAssignment:
    return plan_allocation(
        policy, app, ip_type, region, state or IpamState(), regions=REGIONS, now=NOW
    )


# --- choose_address ----------------------------------------------------------------------


def test_never_used_addresses_come_first_from_the_start_of_the_pool() -> None:
    assert choose_address(["127.77.0.0/16"], set(), {}, NOW, HOUR) == "127.77.0.1"
    in_use = {"127.77.0.1", "127.77.0.2"}
    assert choose_address(["127.77.0.0/16"], in_use, {}, NOW, HOUR) == "127.77.0.3"


def test_a_gap_left_by_a_never_used_address_is_filled_first() -> None:
    in_use = {"127.77.0.1", "127.77.0.3"}
    assert choose_address(["127.77.0.0/16"], in_use, {}, NOW, HOUR) == "127.77.0.2"


def test_v4_skips_dot_zero_and_dot_255_addresses() -> None:
    in_use = {f"10.0.0.{i}" for i in range(1, 255)}
    assert choose_address(["10.0.0.0/23"], in_use, {}, NOW, HOUR) == "10.0.1.1"


def test_the_broadcast_address_of_a_small_pool_is_never_given() -> None:
    in_use = {"10.0.0.9", "10.0.0.10"}
    with pytest.raises(PoolExhausted):
        choose_address(["10.0.0.8/30"], in_use, {}, NOW, HOUR)


def test_tiny_pools_use_every_address() -> None:
    assert choose_address(["192.0.2.7/32"], set(), {}, NOW, HOUR) == "192.0.2.7"
    assert choose_address(["192.0.2.6/31"], {"192.0.2.6"}, {}, NOW, HOUR) == "192.0.2.7"


def test_excluded_addresses_such_as_the_shared_one_are_skipped() -> None:
    chosen = choose_address(["10.0.0.0/30"], set(), {}, NOW, HOUR, exclude={"10.0.0.1"})
    assert chosen == "10.0.0.2"


def test_released_addresses_wait_while_never_used_ones_remain() -> None:
    released = {"127.77.0.1": NOW - 10 * HOUR}
    assert choose_address(["127.77.0.0/16"], set(), released, NOW, HOUR) == "127.77.0.2"


def test_then_the_longest_released_address_is_reused() -> None:
    pool = ["10.0.0.0/29"]  # .1 - .6
    in_use = {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    released = {"10.0.0.4": NOW - 2 * HOUR, "10.0.0.5": NOW - 5 * HOUR, "10.0.0.6": NOW - 3 * HOUR}
    assert choose_address(pool, in_use, released, NOW, HOUR) == "10.0.0.5"


def test_an_address_released_less_than_reuse_after_ago_is_never_given() -> None:
    pool = ["10.0.0.0/30"]  # .1 and .2
    released = {"10.0.0.2": NOW - HOUR + 1}
    with pytest.raises(PoolExhausted) as info:
        choose_address(pool, {"10.0.0.1"}, released, NOW, HOUR, pool_name="ipam.pools.v4")
    message = info.value.message
    assert "ipam.pools.v4" in message
    assert "10.0.0.0/30" in message
    assert ipam.format_time(NOW + 1) in message  # when it becomes reusable
    assert info.value.http_status == 503


def test_reuse_after_is_inclusive() -> None:
    released = {"10.0.0.2": NOW - HOUR}
    assert choose_address(["10.0.0.0/30"], {"10.0.0.1"}, released, NOW, HOUR) == "10.0.0.2"


def test_an_address_in_use_again_is_not_reused_even_if_it_was_released() -> None:
    released = {"10.0.0.1": NOW - 9 * HOUR, "10.0.0.2": NOW - 2 * HOUR}
    assert choose_address(["10.0.0.0/30"], {"10.0.0.1"}, released, NOW, HOUR) == "10.0.0.2"


def test_the_next_pool_is_used_when_the_first_is_full() -> None:
    pools = ["10.0.0.0/30", "10.1.0.0/24"]
    assert choose_address(pools, {"10.0.0.1", "10.0.0.2"}, {}, NOW, HOUR) == "10.1.0.1"


def test_an_exhausted_pool_says_what_to_do() -> None:
    with pytest.raises(PoolExhausted) as info:
        choose_address(["10.0.0.0/30"], {"10.0.0.1", "10.0.0.2"}, {}, NOW, HOUR, pool_name="P")
    assert "add a network to P" in info.value.message


def test_v6_walks_a_huge_prefix_without_enumerating_it() -> None:
    in_use = {f"fd77:e0::{i:x}" for i in range(1, 20_001)}
    started = time.perf_counter()
    chosen = choose_address(["fd77:e0::/32"], in_use, {}, NOW, HOUR)
    assert chosen == "fd77:e0::4e21"  # 20001, after the subnet-router address ::0
    assert time.perf_counter() - started < 2.0


def test_v6_starts_after_the_subnet_router_address() -> None:
    assert choose_address(["fdaa:77::/64"], set(), {}, NOW, HOUR) == "fdaa:77::1"


def test_addresses_of_the_other_family_do_not_block() -> None:
    assert choose_address(["fd77::/64"], {"0.0.0.1"}, {}, NOW, HOUR) == "fd77::1"


def test_a_full_v4_slash_16_is_found_quickly() -> None:
    pool = ipaddress.ip_network("127.77.0.0/16")
    in_use = {str(a) for a in pool.hosts()} - {"127.77.200.7"}
    started = time.perf_counter()
    assert choose_address(["127.77.0.0/16"], in_use, {}, NOW, HOUR) == "127.77.200.7"
    assert time.perf_counter() - started < 2.0


# --- plan_allocation ---------------------------------------------------------------------


def test_an_allocation_defaults_to_v4_in_the_primary_region() -> None:
    got = plan()
    assert got == IpAssignment("127.77.0.1", "v4", "lhr", "web", "personal", int(NOW), False, True)


def test_the_first_assignment_is_primary_and_later_ones_are_not() -> None:
    first = plan()
    second = plan(state=with_assignment(IpamState(), first))
    assert first.primary
    assert not second.primary
    assert second.address == "127.77.0.2"


def test_a_requested_region_is_used() -> None:
    assert plan(region="syd").region == "syd"


def test_an_unknown_region_lists_the_valid_ones() -> None:
    with pytest.raises(BadRequest) as info:
        plan(region="xyz")
    assert "'xyz'" in info.value.message
    assert "fra, iad, lhr, syd" in info.value.message


def test_an_unknown_type_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="v4, shared_v4, v6, private_v6"):
        plan("v5")  # type: ignore[arg-type]


def test_each_dedicated_type_comes_from_its_pool() -> None:
    assert plan("v6").address == "fd77:e0::1"
    assert plan("private_v6").address == "fdaa:77::1"


def test_the_limit_allows_exactly_max_ips_per_org() -> None:
    state = IpamState()
    for _ in range(100):
        state = with_assignment(state, plan(state=state))
    assert state.org_count == 100
    assert len(set(state.in_use)) == 100
    with pytest.raises(LimitExceeded) as info:
        plan(state=state)
    assert "org 'personal' has 100 IP assignments" in info.value.message
    assert "ipam.max_ips_per_org" in info.value.message
    assert info.value.http_status == 422


def test_the_limit_is_checked_before_the_pool() -> None:
    full = IpamState(org_count=5, in_use=frozenset({"10.0.0.1", "10.0.0.2"}))
    policy = IpamPolicy(max_ips_per_org=5, v4_pools=("10.0.0.0/30",))
    with pytest.raises(LimitExceeded):
        plan(state=full, policy=policy)


def test_shared_v4_is_the_one_shared_address_free_of_the_limit() -> None:
    at_limit = IpamState(org_count=100)
    got = plan("shared_v4", region="syd", state=at_limit)
    assert got.address == "127.77.255.254"
    assert got.shared
    assert got.region == "global"
    assert with_assignment(at_limit, got).org_count == 100
    assert not ipam.counts_toward_limit("shared_v4")


def test_every_app_gets_the_same_shared_address_but_only_once() -> None:
    other = AppRef("api", "personal", "fra")
    first = plan("shared_v4")
    assert plan("shared_v4", app=other).address == first.address
    with pytest.raises(Conflict, match="already has the shared IPv4"):
        plan("shared_v4", state=with_assignment(IpamState(), first))


def test_the_shared_address_is_refused_to_an_app_with_raw_tcp_ports() -> None:
    tcp = AppRef("echo", "personal", "lhr", raw_tcp_ports=(7000, 7001))
    with pytest.raises(Conflict, match=r"IPv4: it has raw TCP ports 7000, 7001, which"):
        plan("shared_v4", app=tcp)
    assert plan("v4", app=tcp).type == "v4"  # a dedicated address serves raw TCP


@pytest.mark.parametrize(
    ("handlers", "raw"),
    [([], True), (["proxy_proto"], True), (["http"], False), (["tls"], False),
     (["tls", "http"], False)],
)  # fmt: skip
def test_raw_tcp_ports_are_those_without_http_or_tls(handlers: list[str], raw: bool) -> None:
    service = ServiceSpec(internal_port=80, ports=({"port": 8000, "handlers": handlers},))
    assert ipam.raw_tcp_ports([service]) == ((8000,) if raw else ())


def test_the_shared_address_is_never_given_as_a_dedicated_one() -> None:
    policy = IpamPolicy(v4_pools=("10.0.0.0/30",), shared_v4="10.0.0.1")
    assert plan(policy=policy).address == "10.0.0.2"


def test_a_new_app_gets_a_primary_v4_and_optionally_a_v6() -> None:
    types = ipam.initial_types(public_ips=True, ipv6=True)
    got = plan_app_ips(POLICY, APP, types, IpamState(), regions=REGIONS, now=NOW)
    assert [(a.type, a.address, a.primary) for a in got] == [
        ("v4", "127.77.0.1", True),
        ("v6", "fd77:e0::1", False),
    ]
    assert ipam.initial_types(public_ips=True, ipv6=False) == ("v4",)
    assert ipam.initial_types(public_ips=False, ipv6=False) == ()


def test_ipv6_without_public_ips_is_a_contradiction() -> None:
    with pytest.raises(BadRequest, match="public_ips"):
        ipam.initial_types(public_ips=False, ipv6=True)


def test_a_new_app_needing_two_slots_with_one_left_gets_nothing() -> None:
    with pytest.raises(LimitExceeded):
        plan_app_ips(POLICY, APP, ("v4", "v6"), IpamState(org_count=99), regions=REGIONS, now=NOW)


# --- release -----------------------------------------------------------------------------


def _held() -> tuple[IpAssignment, ...]:
    state = IpamState()
    for ip_type in ("v4", "v6"):
        state = with_assignment(state, plan(ip_type, state=state))
    return state.app_ips


def test_the_primary_cannot_be_released() -> None:
    with pytest.raises(Conflict) as info:
        check_release("web", _held(), "127.77.0.1")
    assert "only by destroying the app" in info.value.message
    assert info.value.http_status == 409


def test_another_address_can_be_released_in_any_spelling() -> None:
    assert check_release("web", _held(), "fd77:e0:0:0::1").address == "fd77:e0::1"


def test_an_address_the_app_does_not_hold_is_not_found() -> None:
    with pytest.raises(NotFound, match="not assigned to app 'web'"):
        check_release("web", _held(), "127.77.0.9")


def test_an_invalid_address_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="invalid IP address: 'nope'"):
        check_release("web", _held(), "nope")


# --- policy and helpers ------------------------------------------------------------------


def test_the_policy_comes_from_the_configuration() -> None:
    policy = IpamPolicy.from_spec(IpamSpec())
    assert policy == IpamPolicy()
    assert policy.pool("private_v6") == ("fdaa:77::/64",)


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"v4_pools": ("fd00::/64",)}, "ipam.pools.v4"),
        ({"v6_pools": ("10.0.0.0/8",)}, "ipam.pools.v6"),
        ({"private_v6_pools": ()}, "ipam.pools.private_v6"),
        ({"shared_v4": "fd00::1"}, "ipam.shared_v4"),
    ],
)
def test_a_wrong_family_is_a_config_error(kwargs: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        IpamPolicy(**kwargs)  # type: ignore[arg-type]


def test_times_are_rfc3339_utc_with_seconds() -> None:
    assert ipam.format_time(1795946700.9) == "2026-11-29T10:05:00Z"
    assert ipam.parse_time("2026-11-29T10:05:00Z") == 1795946700
    assert ipam.parse_time("2026-11-29T11:05:00+01:00") == 1795946700
    with pytest.raises(BadRequest):
        ipam.parse_time("2026-11-29 10:05")


def test_addresses_are_normalized() -> None:
    assert ipam.normalize_address(" FD77:E0:0::1 ") == "fd77:e0::1"
