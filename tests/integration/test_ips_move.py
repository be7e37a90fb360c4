"""Moving an address between apps of one org (``edgectl ips move``, the API, ``ips:`` in
an app file) through the real daemon, with real traffic to the address."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


def web_app(name: str, port: int, region: str = "lhr", **service: Any) -> dict[str, Any]:
    return {
        "app": name,
        "primary_region": region,
        "services": [
            {"internal_port": 8080, "ports": [{"port": port, "handlers": ["http"]}], **service}
        ],
        "machines": demo_machines(name, [region]),
    }


def serving_app(address: str, port: int, path: str = "/") -> str:
    """The app whose demo machine answered a GET on ``address:port``."""
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body
        return str(json.loads(body)["app"])
    finally:
        conn.close()


class TwoApps:
    """``blue`` and ``green`` in the org ``personal``, each on the same http port, and
    ``blue`` holding a second address (``spare``) that can move."""

    def __init__(self, edge_factory: EdgeFactory, tmp_path: Path) -> None:
        self.port = free_port()
        apps = [web_app("blue", self.port), web_app("green", self.port)]
        self.config = write_edge_config(tmp_path, apps)
        self.edge = edge_factory(config=self.config)
        self.api = Api.admin(self.edge)
        status, spare = self.api.post("/v1/apps/blue/ip_assignments", {"type": "v4"})
        assert status == 201, spare
        self.spare = spare["ip"]
        self.blue_primary = self.ips("blue")[0]["ip"]

    def ips(self, app: str) -> list[dict[str, Any]]:
        status, body = self.api.get(f"/v1/apps/{app}/ip_assignments")
        assert status == 200, body
        return list(body["ips"])

    def move(self, address: str, source: str, target: str) -> tuple[int, Any]:
        return self.api.post(f"/v1/apps/{source}/ip_assignments/{address}/move", {"app": target})


def wait_for_load(api: Api, app: str, timeout: float = 5.0) -> None:
    """Until a machine of ``app`` has a request in flight (its load in the route view)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = api.get(f"/v1/apps/{app}/route")
        assert status == 200, body
        if any(c["load"] >= 1 for c in body["candidates"]):
            return
        time.sleep(0.02)
    raise AssertionError(f"no request reached a machine of {app} within {timeout} s")


@pytest.fixture
def two(edge_factory: EdgeFactory, tmp_path: Path) -> TwoApps:
    return TwoApps(edge_factory, tmp_path)


def audit_rows(edge: EdgeProcess, action: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(edge.state_dir / "edge.db") as db:
        sql = "SELECT app, target, detail FROM audit WHERE action = ? ORDER BY id"
        return [tuple(row) for row in db.execute(sql, (action,))]


def test_move_through_the_cli_moves_traffic_and_keeps_the_address(two: TwoApps) -> None:
    created = next(ip for ip in two.ips("blue") if ip["ip"] == two.spare)["created_at"]
    assert serving_app(two.spare, two.port) == "blue"

    result = edgectl(two.edge, "ips", "move", two.spare, "--from", "blue", "--to", "green")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Moved {two.spare} from app blue to app green"

    assert serving_app(two.spare, two.port) == "green"  # at once: the answer waited for it
    assert serving_app(two.blue_primary, two.port) == "blue"
    assert two.spare not in [ip["ip"] for ip in two.ips("blue")]
    moved = next(ip for ip in two.ips("green") if ip["ip"] == two.spare)
    assert moved["created_at"] == created and moved["primary"] is False
    assert [ip["primary"] for ip in two.ips("green")].count(True) == 1

    assert audit_rows(two.edge, "ip.move") == [
        ("blue", two.spare, f"moved v4 {two.spare} to app green"),
        ("green", two.spare, f"moved v4 {two.spare} here from app blue"),
    ]
    listing = edgectl(two.edge, "ips", "list", "-a", "green")
    assert two.spare in listing.stdout and "announced from every PoP" in listing.stdout


def test_move_through_the_api_answers_with_bound_listeners(two: TwoApps) -> None:
    status, body = two.move(two.spare, "blue", "green")
    assert status == 200, body
    assert body["ip"] == two.spare and body["app"] == "green" and body["primary"] is False
    assert body["listeners"] and all(x["bound"] for x in body["listeners"])
    status, back = two.move(two.spare, "green", "blue")  # and back again
    assert status == 200, back
    assert serving_app(two.spare, two.port) == "blue"


def test_a_request_in_flight_on_the_old_app_finishes(two: TwoApps) -> None:
    answers: list[str] = []
    slow = threading.Thread(
        target=lambda: answers.append(serving_app(two.spare, two.port, "/delay/1500"))
    )
    slow.start()
    try:
        wait_for_load(two.api, "blue")  # the slow request is at blue's machine
        status, body = two.move(two.spare, "blue", "green")
        assert status == 200, body
        assert serving_app(two.spare, two.port) == "green"
    finally:
        slow.join(timeout=15)
    assert answers == ["blue"]


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("primary", 409, "is the primary IP of app 'blue' and cannot be moved"),
        ("not-its", 404, "is not assigned to app 'green'"),
        ("other-org", 404, "app 'stranger' not found"),
        ("missing-app", 404, "app 'nobody' not found"),
        ("same-app", 400, "already belongs to app 'blue'"),
        ("not-an-address", 400, "not-an-ip"),
    ],
)
def test_refusals(two: TwoApps, case: str, status: int, message: str) -> None:
    assert two.api.post("/v1/orgs", {"slug": "others"})[0] == 201
    other = {"app": "stranger", "org": "others", **web_app("stranger", free_port())}
    assert two.api.call("PUT", "/v1/apps/stranger", other)[0] == 201
    before = {app: two.ips(app) for app in ("blue", "green")}
    source, target, address = {
        "primary": ("blue", "green", two.blue_primary),
        "not-its": ("green", "blue", two.spare),
        "other-org": ("blue", "stranger", two.spare),
        "missing-app": ("blue", "nobody", two.spare),
        "same-app": ("blue", "blue", two.spare),
        "not-an-address": ("blue", "green", "not-an-ip"),
    }[case]
    got, body = two.move(address, source, target)
    assert got == status and message in body["error"], body
    cli = edgectl(two.edge, "ips", "move", address, "--from", source, "--to", target)
    assert cli.returncode == 1 and message in cli.stderr, cli.stderr
    assert {app: two.ips(app) for app in ("blue", "green")} == before  # nothing moved
    assert serving_app(two.spare, two.port) == "blue"


def test_the_shared_ipv4_does_not_move_to_an_app_that_cannot_use_it(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    http_port, tcp_port = free_port(), free_port()
    raw = {
        "app": "raw",
        "primary_region": "fra",
        "services": [{"internal_port": 7000, "ports": [{"port": tcp_port}]}],
        "machines": demo_machines("raw", ["fra"]),
    }
    edge = edge_factory(config=write_edge_config(tmp_path, [web_app("web", http_port), raw]))
    api = Api.admin(edge)
    status, shared = api.post("/v1/apps/web/ip_assignments", {"type": "shared_v4"})
    assert status == 201, shared
    got, body = api.post(f"/v1/apps/web/ip_assignments/{shared['ip']}/move", {"app": "raw"})
    assert got == 409 and f"raw TCP port {tcp_port}" in body["error"], body
    assert shared["ip"] in [ip["ip"] for ip in api.get("/v1/apps/web/ip_assignments")[1]["ips"]]


def test_a_restart_keeps_the_move(two: TwoApps, edge_factory: EdgeFactory) -> None:
    assert two.move(two.spare, "blue", "green")[0] == 200
    assert two.edge.terminate() == 0
    again = edge_factory(config=two.config, state_dir=two.edge.state_dir)
    assert serving_app(two.spare, two.port) == "green"
    assert two.spare in [
        ip["ip"] for ip in Api.admin(again).get("/v1/apps/green/ip_assignments")[1]["ips"]
    ]


def test_an_app_file_declares_the_address_and_deploy_moves_it(two: TwoApps, tmp_path: Path) -> None:
    green_port = free_port()
    spec = web_app("green", green_port, ips=[two.spare])
    path = tmp_path / "green.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = edgectl(two.edge, "deploy", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"IP(s) moved here: {two.spare}" in result.stdout
    assert serving_app(two.spare, green_port) == "green"
    green_primary = two.ips("green")[0]["ip"]
    # The service is reached on the addresses it lists only, not on the app's others.
    with pytest.raises(OSError):
        serving_app(green_primary, green_port)
    again = edgectl(two.edge, "deploy", "--config", str(path))
    assert "already up to date" in again.stdout  # a second deploy moves nothing


@pytest.mark.parametrize(
    ("which", "status", "message"),
    [
        ("primary", 409, "services[0].ips[0]: {ip} is the primary IP of app 'blue'"),
        ("unknown", 400, "services[0].ips[0]: {ip} is not an address of org 'personal'"),
    ],
)
def test_deploy_refuses_addresses_it_may_not_take(
    two: TwoApps, which: str, status: int, message: str
) -> None:
    address = two.blue_primary if which == "primary" else "127.250.9.9"
    spec = {"org": "personal", **web_app("green", free_port(), ips=[address])}
    got, body = two.api.call("PUT", "/v1/apps/green", spec)
    assert got == status and message.format(ip=address) in body["error"], body
    assert serving_app(address if which == "primary" else two.spare, two.port) == "blue"


def test_parallel_moves_and_allocations_keep_the_org_limit_exact(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    apps = [web_app("a", free_port()), web_app("b", free_port())]
    config = write_edge_config(tmp_path, apps)
    data = yaml.safe_load(config.read_text())
    data["ipam"]["max_ips_per_org"] = 100
    config.write_text(yaml.safe_dump(data))
    edge = edge_factory(config=config)
    api = Api.admin(edge)
    spares = [api.post("/v1/apps/a/ip_assignments", {"type": "v4"})[1]["ip"] for _ in range(20)]

    def allocate(i: int) -> int:
        return Api.admin(edge).post(f"/v1/apps/{'ab'[i % 2]}/ip_assignments", {"type": "v4"})[0]

    def move(i: int) -> int:
        address = spares[i % len(spares)]
        source, target = ("a", "b") if i % 2 == 0 else ("b", "a")
        return Api.admin(edge).post(
            f"/v1/apps/{source}/ip_assignments/{address}/move", {"app": target}
        )[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(allocate, i) for i in range(150)]
        futures += [pool.submit(move, i) for i in range(150)]
        statuses = [f.result() for f in futures]
    allocations, moves = statuses[:150], statuses[150:]
    assert set(allocations) <= {201, 422} and set(moves) <= {200, 404}
    # 2 primaries + 20 spares were held: exactly 78 more allocations fit under 100.
    assert allocations.count(201) == 78
    held = [ip["ip"] for app in "ab" for ip in api.get(f"/v1/apps/{app}/ip_assignments")[1]["ips"]]
    assert len(held) == 100 and len(set(held)) == 100
