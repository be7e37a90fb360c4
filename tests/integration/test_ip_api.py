"""IP management on a real daemon, through the REST API and the real edgectl."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, start_edge

EdgeFactory = Callable[..., EdgeProcess]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def write_config(tmp_path: Path, **ipam: Any) -> Path:
    config = {
        "edge": {"pops": ["lhr", "iad", "syd"], "local_region": "lhr"},
        "ipam": {"max_ips_per_org": 100, **ipam},
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def edge(edge_factory: EdgeFactory, tmp_path: Path) -> EdgeProcess:
    return edge_factory(config=write_config(tmp_path))


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return str(result.stdout)


def test_walkthrough_of_the_description(edge: EdgeProcess) -> None:
    created = ok(edgectl(edge, "apps", "create", "my-cool-app", "--region", "lhr"))
    assert "New app created: my-cool-app" in created

    listing = ok(edgectl(edge, "ips", "list", "-a", "my-cool-app")).splitlines()
    assert listing[0].split() == ["TYPE", "ADDRESS", "REGION", "CREATED"]
    kind, primary, region, when, mark = listing[1].split()
    assert (kind, region, mark) == ("v4", "lhr", "(primary)")
    assert primary.startswith("127.77.") and RFC3339.match(when)

    second = ok(edgectl(edge, "ips", "allocate", "-a", "my-cool-app", "--region", "syd"))
    v4_row = second.splitlines()[1].split()
    assert (v4_row[0], v4_row[2]) == ("v4", "syd")

    v6 = ok(edgectl(edge, "ips", "allocate", "-a", "my-cool-app", "--region", "iad", "--ipv6"))
    v6_row = v6.splitlines()[1].split()
    assert (v6_row[0], v6_row[2]) == ("v6", "iad") and ":" in v6_row[1]

    released = ok(edgectl(edge, "ips", "release", "-a", "my-cool-app", v4_row[1]))
    assert released == f"Successfully released IP address {v4_row[1]}\n"

    table, note = ok(edgectl(edge, "ips", "list", "-a", "my-cool-app")).split("\n\n")
    assert [row.split()[1] for row in table.splitlines()[1:]] == [primary, v6_row[1]]
    assert note.startswith("REGION is where an address was allocated")


def test_primary_cannot_be_released(edge: EdgeProcess) -> None:
    ok(edgectl(edge, "apps", "create", "web"))
    primary = Api.admin(edge).get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"]
    result = edgectl(edge, "ips", "release", "-a", "web", primary)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {primary} is the primary IP of app 'web'")
    assert Api.admin(edge).delete(f"/v1/apps/web/ip_assignments/{primary}")[0] == 409


def test_apps_create_flags(edge: EdgeProcess) -> None:
    ok(edgectl(edge, "apps", "create", "both", "--ipv6"))
    ok(edgectl(edge, "apps", "create", "none", "--no-public-ips"))
    api = Api.admin(edge)
    assert [ip["type"] for ip in api.get("/v1/apps/both/ip_assignments")[1]["ips"]] == ["v4", "v6"]
    assert api.get("/v1/apps/none/ip_assignments")[1]["ips"] == []
    shown = ok(edgectl(edge, "apps", "show", "both"))
    assert "Primary region: lhr" in shown


def test_platform_spellings_and_shared_v4(edge: EdgeProcess) -> None:
    ok(edgectl(edge, "apps", "create", "a1"))
    ok(edgectl(edge, "apps", "create", "a2"))
    shared1 = ok(edgectl(edge, "ips", "allocate-v4", "-a", "a1", "--shared")).splitlines()[1]
    shared2 = ok(edgectl(edge, "ips", "allocate", "-a", "a2", "--shared")).splitlines()[1]
    assert shared1.split()[:3] == shared2.split()[:3] == ["shared_v4", "127.77.255.254", "global"]
    private = ok(edgectl(edge, "ips", "allocate-v6", "-a", "a1", "--private")).splitlines()[1]
    assert private.split()[0] == "private_v6" and private.split()[1].startswith("fdaa:")
    as_json = edgectl(edge, "ips", "list", "-a", "a1", "--json")
    import json

    types = [ip["type"] for ip in json.loads(ok(as_json))]
    assert types == ["v4", "shared_v4", "private_v6"]


def test_org_limit_is_reached_exactly_at_100(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    assert api.post("/v1/apps", {"app_name": "big"})[0] == 201
    for _ in range(99):
        assert api.post("/v1/apps/big/ip_assignments", {"type": "v4"})[0] == 201
    status, body = api.post("/v1/apps/big/ip_assignments", {"type": "v4"})
    assert status == 422
    assert "limit (ipam.max_ips_per_org = 100)" in body["error"]
    assert len(api.get("/v1/apps/big/ip_assignments")[1]["ips"]) == 100
    status, body = api.post("/v1/apps", {"app_name": "another"})
    assert status == 422  # its automatic IPv4 would be the 101st: nothing is created
    assert api.get("/v1/apps/another")[0] == 404


def test_restart_keeps_every_allocation_with_its_created_time(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    first = edge_factory(config=config)
    api = Api.admin(first)
    api.post("/v1/apps", {"app_name": "keep", "ipv6": True})
    api.post("/v1/apps/keep/ip_assignments", {"type": "v4", "region": "syd"})
    before = api.get("/v1/apps/keep/ip_assignments")[1]["ips"]
    assert first.terminate() == 0
    second = edge_factory(config=config, state_dir=first.state_dir)
    assert second.token() == first.token()
    after = Api.admin(second).get("/v1/apps/keep/ip_assignments")[1]["ips"]
    assert after == before and len(after) == 3


def test_released_address_is_not_handed_out_again(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    api.post("/v1/apps", {"app_name": "web"})
    address = api.post("/v1/apps/web/ip_assignments", {"type": "v4"})[1]["ip"]
    assert api.delete(f"/v1/apps/web/ip_assignments/{address}")[0] == 204
    fresh = [api.post("/v1/apps/web/ip_assignments", {"type": "v4"})[1]["ip"] for _ in range(5)]
    assert address not in fresh


def test_pool_running_dry_is_503(edge_factory: EdgeFactory, tmp_path: Path) -> None:
    config = write_config(tmp_path, pools={"v4": ["127.78.0.0/30"]})
    api = Api.admin(edge_factory(config=config))
    assert api.post("/v1/apps", {"app_name": "web"})[0] == 201
    assert api.post("/v1/apps/web/ip_assignments", {"type": "v4"})[0] == 201
    status, body = api.post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert status == 503 and "127.78.0.0/30" in body["error"]


def test_destroying_an_app_releases_its_ips(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    api.post("/v1/apps", {"app_name": "gone", "ipv6": True})
    refused = edgectl(edge, "apps", "destroy", "gone")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert ok(edgectl(edge, "apps", "destroy", "gone", "--yes")) == "Destroyed app gone\n"
    assert api.get("/v1/apps/gone")[0] == 404
    orgs = api.get("/v1/orgs")[1]["orgs"]
    assert orgs[0]["ips"] == 0


def test_requests_without_a_valid_token_get_401(edge: EdgeProcess) -> None:
    for token in (None, "edge_wrong"):
        api = Api(edge.url, token)
        for path in ("/v1/apps", "/v1/orgs", "/v1/platform/regions", "/v1/apps/x/ip_assignments"):
            status, body = api.get(path)
            assert status == 401 and body["error"], path
    result = edgectl(edge, "apps", "list", token="edge_wrong")
    assert result.returncode == 1 and result.stderr.startswith("Error: invalid token")


def test_cross_org_isolation_on_every_endpoint(edge: EdgeProcess) -> None:
    admin = Api.admin(edge)
    tokens = {}
    for slug in ("acme", "globex"):
        status, body = admin.post("/v1/orgs", {"slug": slug})
        assert status == 201 and body["slug"] == slug
        tokens[slug] = body["token"]
    acme, globex = Api(edge.url, tokens["acme"]), Api(edge.url, tokens["globex"])
    assert acme.post("/v1/apps", {"app_name": "secret"})[0] == 201
    address = acme.get("/v1/apps/secret/ip_assignments")[1]["ips"][0]["ip"]

    assert globex.get("/v1/apps")[1]["apps"] == []
    assert [o["slug"] for o in globex.get("/v1/orgs")[1]["orgs"]] == ["globex"]
    for method, path, body in [
        ("GET", "/v1/apps/secret", None),
        ("DELETE", "/v1/apps/secret", None),
        ("GET", "/v1/apps/secret/ip_assignments", None),
        ("POST", "/v1/apps/secret/ip_assignments", {"type": "v4"}),
        ("DELETE", f"/v1/apps/secret/ip_assignments/{address}", None),
    ]:
        status, answer = globex.call(method, path, body)
        assert (status, answer) == (404, {"error": "app 'secret' not found"}), (method, path)
    assert globex.post("/v1/apps", {"app_name": "x", "org_slug": "acme"})[0] == 404
    assert globex.post("/v1/orgs", {"slug": "mine"})[0] == 403
    assert admin.get("/v1/apps/secret")[0] == 200
    assert len(acme.get("/v1/apps/secret/ip_assignments")[1]["ips"]) == 1


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"type": 4}', "type:"),
        (b'{"type": "v5"}', "type:"),
        (b'{"type": "v4", "region": "atlantis"}', "unknown region 'atlantis'; valid regions: ams"),
        (b'{"type": "v4", "region": 7}', "region:"),
        (b'{"type": "v4", "colour": "red"}', "colour: unknown key"),
    ],
)
def test_bad_allocation_input_is_400_naming_the_field(
    edge: EdgeProcess, raw: bytes, fragment: str
) -> None:
    api = Api.admin(edge)
    api.post("/v1/apps", {"app_name": "web"})
    status, body = api.call("POST", "/v1/apps/web/ip_assignments", raw=raw)
    assert status == 400 and fragment in body["error"]


def test_bad_app_input_is_400(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    for body, fragment in [
        ({}, "app_name: is required"),
        ({"app_name": "Bad Name"}, "app_name: 'Bad Name' is not a valid name"),
        ({"app_name": "ok", "primary_region": "nowhere"}, "primary_region: unknown region"),
        ({"app_name": "ok", "ipv6": "yes"}, "ipv6:"),
    ]:
        status, answer = api.post("/v1/apps", body)
        assert status == 400 and fragment in answer["error"], body


def test_invalid_address_is_rejected_before_any_request(edge: EdgeProcess) -> None:
    result = edgectl(edge, "ips", "release", "-a", "web", "127.77.0.1", "not-an-ip")
    assert result.returncode == 1
    assert result.stderr == "Error: Invalid IP address: 'not-an-ip'; nothing was released\n"
    status, body = Api.admin(edge).delete("/v1/apps/web/ip_assignments/300.1.1.1")
    assert status == 400 and "300.1.1.1" in body["error"]


def test_usage_errors_exit_2(edge: EdgeProcess) -> None:
    assert edgectl(edge, "ips", "list").returncode == 2  # -a is required
    assert edgectl(edge, "frobnicate").returncode == 2


def test_daemon_not_running_names_the_url(tmp_path: Path) -> None:
    fake = EdgeProcess(proc=None, api="127.0.0.1:1", state_dir=tmp_path, log_path=tmp_path)  # type: ignore[arg-type]
    result = edgectl(fake, "apps", "list", token="x")
    assert result.returncode == 1
    assert "cannot reach the edge API at http://127.0.0.1:1" in result.stderr


def test_regions_list(edge: EdgeProcess) -> None:
    lines = ok(edgectl(edge, "regions", "list")).splitlines()
    assert lines[0].split() == ["CODE", "NAME", "STATUS"]
    assert len(lines) == 36


def test_hundreds_of_parallel_allocations_across_two_orgs(edge: EdgeProcess) -> None:
    admin = Api.admin(edge)
    apis = {}
    for slug in ("one", "two"):
        token = admin.post("/v1/orgs", {"slug": slug})[1]["token"]
        apis[slug] = Api(edge.url, token)
        assert apis[slug].post("/v1/apps", {"app_name": f"app-{slug}"})[0] == 201

    def allocate(slug: str) -> tuple[int, str | None]:
        status, body = apis[slug].post(f"/v1/apps/app-{slug}/ip_assignments", {"type": "v4"})
        return status, body.get("ip")

    jobs = ["one", "two"] * 120
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(allocate, jobs))
    statuses = {s for s, _ in results}
    assert statuses <= {201, 422}
    for slug in ("one", "two"):
        ips = apis[slug].get(f"/v1/apps/app-{slug}/ip_assignments")[1]["ips"]
        assert len(ips) == 100
    every = [
        ip["ip"]
        for slug in apis
        for ip in apis[slug].get(f"/v1/apps/app-{slug}/ip_assignments")[1]["ips"]
    ]
    assert len(every) == len(set(every)) == 200
    assert sum(1 for s, _ in results if s == 201) == 198


def test_sigkill_after_answered_allocations_loses_none(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    edge = start_edge(tmp_path, config=config)
    try:
        api = Api.admin(edge)
        api.post("/v1/apps", {"app_name": "durable"})
        answered = [
            api.post("/v1/apps/durable/ip_assignments", {"type": "v4"})[1]["ip"] for _ in range(20)
        ]
    finally:
        edge.kill()
    again = start_edge(tmp_path, config=config, state_dir=edge.state_dir)
    try:
        kept = {
            ip["ip"] for ip in Api.admin(again).get("/v1/apps/durable/ip_assignments")[1]["ips"]
        }
    finally:
        again.kill()
    assert set(answered) <= kept
