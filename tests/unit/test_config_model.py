"""The configuration model: every field's validation, durations, unknown keys, paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.config.load import load_app_file, load_config, parse_config, yaml_path
from edge.config.regions import default_catalogue
from edge.config.types import parse_duration, split_host_port
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
REGIONS = default_catalogue()


def base(**extra: Any) -> dict[str, Any]:
    return {"edge": {"pops": ["lhr", "iad"], "local_region": "lhr"}, **extra}


def app(**fields: Any) -> dict[str, Any]:
    service = {"internal_port": 8080, "ports": [{"port": 8080, "handlers": ["http"]}]}
    return {"app": "web", "primary_region": "lhr", "services": [service], **fields}


def problems(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, REGIONS)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0), ("1.5s", 1.5), (250, 0.25)],
)
def test_durations_accept_units_and_bare_milliseconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "2 weeks", "-1s", True, None, "1d"])
def test_durations_reject_nonsense(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(text)


def test_yaml_path_formats_indices_and_keys() -> None:
    assert yaml_path(("apps", 0, "services", 1, "ports", 0, "port")) == (
        "apps[0].services[1].ports[0].port"
    )
    assert yaml_path(()) == "(top level)"


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:80") == ("127.0.0.1", 80)
    assert split_host_port("[::1]:4280") == ("::1", 4280)
    for bad in ("127.0.0.1", "host:", ":80", "h:99999", "[::1]"):
        with pytest.raises(ValueError):
            split_host_port(bad)


def test_minimal_config_gets_documented_defaults() -> None:
    config = parse_config(base(), REGIONS)
    assert config.ipam.max_ips_per_org == 100
    assert config.ipam.reuse_after == 3600.0
    assert config.ipam.pools.v4 == ("127.77.0.0/16",)
    assert config.http.headers_read_timeout == 10.0
    assert config.http.max_header_bytes == 32768
    assert config.api.listen == "127.0.0.1:4280"
    assert config.drain_timeout == 10.0


def test_config_objects_are_frozen() -> None:
    config = parse_config(base(), REGIONS)
    with pytest.raises(Exception, match="frozen"):
        config.drain_timeout = 1.0  # type: ignore[misc]


def test_unknown_keys_are_errors_with_their_path() -> None:
    data = base(apps=[app(servces=[])])
    data["edge"]["pop"] = ["lhr"]
    found = problems(data)
    assert "edge.pop: unknown key (check the spelling; unknown keys are not ignored)" in found
    assert any(p.startswith("apps[0].servces: unknown key") for p in found)


def test_port_out_of_range_names_its_path() -> None:
    data = app()
    data["services"][0]["ports"].append({"port": 70000, "handlers": ["http"]})
    found = problems(base(apps=[data]))
    assert found == ("apps[0].services[0].ports[1].port: must be between 1 and 65535, not 70000",)


def test_every_error_is_reported_at_once() -> None:
    data = app(primary_region="zzz", machines=[{"region": "lhr"}])
    data["services"][0]["concurrency"] = {"soft_limit": 30, "hard_limit": 10}
    found = problems(base(apps=[data], drain_timeout="later"))
    assert len(found) == 4
    paths = {p.split(":")[0] for p in found}
    assert paths == {
        "apps[0].primary_region",
        "apps[0].services[0].concurrency",
        "apps[0].machines[0]",
        "drain_timeout",
    }


def test_unknown_region_lists_valid_codes() -> None:
    (problem,) = problems({"edge": {"pops": ["lhr", "xyz"], "local_region": "lhr"}})
    assert problem.startswith("edge.pops[1]: unknown region 'xyz'; valid regions: ams, arn")


@pytest.mark.parametrize(
    ("handlers", "ok"),
    [
        ([], True),
        (["http"], True),
        (["tls", "http"], True),
        (["http", "tls"], True),
        (["tls"], True),
        (["proxy_proto"], True),
        (["http", "proxy_proto"], False),
        (["http", "http"], False),
        (["gopher"], False),
    ],
)
def test_handler_combinations(handlers: list[str], ok: bool) -> None:
    data = app()
    data["services"][0]["ports"] = [{"port": 80, "handlers": handlers}]
    if ok:
        parse_config(base(apps=[data]), REGIONS)
    else:
        assert problems(base(apps=[data]))[0].startswith("apps[0].services[0].ports[0]")


def test_force_https_needs_http() -> None:
    data = app()
    data["services"][0]["ports"] = [{"port": 80, "handlers": [], "force_https": True}]
    assert "force_https needs the http handler" in problems(base(apps=[data]))[0]


def test_checks_validate_their_fields() -> None:
    data = app()
    data["services"][0]["http_checks"] = [{"path": "healthz", "rise": 0, "protocol": "ftp"}]
    found = problems(base(apps=[data]))
    prefix = "apps[0].services[0].http_checks[0]"
    assert any(p.startswith(f"{prefix}.rise:") for p in found)
    assert any(p.startswith(f"{prefix}.protocol:") for p in found)
    data["services"][0]["http_checks"] = [{"path": "healthz"}]
    assert problems(base(apps=[data])) == (f"{prefix}: path must start with '/', not 'healthz'",)


def test_check_defaults_follow_the_platform() -> None:
    data = app()
    data["services"][0]["tcp_checks"] = [{}]
    data["services"][0]["http_checks"] = [{"method": "head"}]
    service = parse_config(base(apps=[data]), REGIONS).apps[0].services[0]
    tcp = service.tcp_checks[0]
    assert (tcp.interval, tcp.timeout, tcp.grace_period, tcp.rise, tcp.fall) == (
        15.0,
        2.0,
        1.0,
        2,
        3,
    )
    assert service.http_checks[0].method == "HEAD"


def test_machine_needs_address_or_demo() -> None:
    for machine, ok in [
        ({"region": "lhr", "demo": True}, True),
        ({"region": "lhr", "address": "127.0.0.1:9001"}, True),
        ({"region": "lhr", "address": "10.0.0.5"}, True),
        ({"region": "lhr"}, False),
        ({"region": "lhr", "demo": True, "address": "127.0.0.1:9"}, False),
        ({"region": "lhr", "address": "127.0.0.1:0"}, False),
        ({"region": "lhr", "demo": True, "weight": 0}, False),
    ]:
        data = base(apps=[app(machines=[machine])])
        if ok:
            parse_config(data, REGIONS)
        else:
            assert problems(data)[0].startswith("apps[0].machines[0]"), machine


def test_duplicate_public_ports_and_app_names() -> None:
    data = app()
    data["services"].append({"internal_port": 9000, "ports": [{"port": 8080}]})
    assert "public port 8080 is used by two services" in problems(base(apps=[data]))[0]
    assert "app names must be unique" in problems(base(apps=[app(), app()]))[0]


def test_app_org_must_be_declared() -> None:
    found = problems(base(apps=[app(org="acme")]))
    assert found == ("apps[0].org: org 'acme' is not declared under orgs",)
    parse_config(base(orgs=[{"slug": "acme"}], apps=[app(org="acme")]), REGIONS)


def test_pools_and_addresses_are_validated() -> None:
    found = problems(base(ipam={"pools": {"v4": ["127.77.0.1/16"]}, "shared_v4": "nope"}))
    assert any(
        p.startswith("ipam.pools.v4[0]: '127.77.0.1/16' is not a valid network") for p in found
    )
    assert any(p.startswith("ipam.shared_v4: 'nope' is not a valid IP address") for p in found)


def test_demo_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "edge.yaml", REGIONS)
    assert len(config.apps) >= 2
    regions = {m.region for a in config.apps for m in a.machines}
    assert len(regions) >= 3
    public_ports = [p.port for a in config.apps for s in a.services for p in s.ports]
    assert min(public_ports) >= 1024


def test_issue_app_file_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        """\
app: my-cool-app
primary_region: lhr
services:
  - internal_port: 8080
    protocol: tcp
    concurrency: {type: requests, soft_limit: 20, hard_limit: 25}
    ports:
      - {port: 18080, handlers: [http]}
      - {port: 18443, handlers: [tls, http]}
      - {port: 17000, handlers: []}
machines:
  - {region: lhr, address: "127.0.0.1:9001"}
  - {region: syd, address: "127.0.0.1:9002", weight: 2}
  - {region: iad, demo: true}
"""
    )
    spec = load_app_file(path, REGIONS)
    assert spec.app == "my-cool-app"
    assert spec.machines[1].weight == 2
    assert spec.services[0].concurrency.hard_limit == 25


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", REGIONS)
    broken = tmp_path / "broken.yaml"
    broken.write_text("edge: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:\d+: not valid YAML"):
        load_config(broken, REGIONS)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar, REGIONS)


def test_region_catalogue_has_every_platform_region() -> None:
    codes = REGIONS.codes()
    current = {r.code for r in REGIONS.current()}
    assert len(codes) == 35
    assert current == set(
        "ams arn bom cdg dfw ewr fra gru iad jnb lax lhr nrt ord sin sjc syd yyz".split()
    )
    assert REGIONS["syd"].latitude < 0 < REGIONS["syd"].longitude


def test_service_ips_must_be_addresses_and_are_canonical() -> None:
    data = app()
    data["services"][0]["ips"] = ["127.77.0.9", "nope"]
    assert problems(base(apps=[data])) == (
        "apps[0].services[0].ips[1]: 'nope' is not a valid IP address",
    )
    data["services"][0]["ips"] = ["2001:DB8::1"]
    parsed = parse_config(base(apps=[data]), REGIONS)
    assert parsed.apps[0].services[0].ips == ("2001:db8::1",)
