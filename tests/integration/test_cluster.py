"""Several edge nodes on one PostgreSQL control plane: real daemons, real sockets.

An IP allocated through one node is served by every node; allocations through several
nodes at once stay exact; a node cut off from the control plane keeps serving, says so,
refuses changes and catches up; PostgreSQL killed under traffic loses no request; a
node killed leaves the others serving.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge.cluster.pg import PrivateServer
from tests.integration.api import Api, edgectl
from tests.integration.cluster import bound_on, healthz, http_get, start_node, wait_for
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, write_edge_config
from tests.integration.tcp_gate import TcpGate

pytestmark = pytest.mark.slow


def web_config(tmp_path: Path, port: int) -> Path:
    app = {
        "app": "web",
        "primary_region": "lhr",
        "services": [{"internal_port": 8080, "ports": [{"port": port, "handlers": ["http"]}]}],
        "machines": demo_machines("web", ["lhr", "syd"]),
    }
    return write_edge_config(tmp_path, [app])


@pytest.fixture
def nodes(tmp_path: Path) -> Any:
    started: list[EdgeProcess] = []

    def start(url: str, name: str, pops: str, config: Path) -> EdgeProcess:
        node = start_node(tmp_path, url, name, pops, config)
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()


def _primary(node: EdgeProcess) -> str:
    _, ips = Api.admin(node).get("/v1/apps/web/ip_assignments")
    return str(ips["ips"][0]["ip"])


def test_an_ip_allocated_on_either_node_is_served_by_both(
    tmp_path: Path, pg_url: str, nodes: Any
) -> None:
    port = free_port()
    config = web_config(tmp_path, port)
    a = nodes(pg_url, "a", "lhr,fra", config)
    b = nodes(pg_url, "b", "syd,nrt", config)
    status, made = Api.admin(a).post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert status == 201, made
    address = made["ip"]
    assert made["listeners"][0]["bound"]  # answered once A listens
    wait_for(lambda: bound_on(b, address, port), 5, "node b to bind the address")
    regions = Counter(http_get(address, port)[1]["headers"]["Fly-Region"] for _ in range(60))
    # Both nodes answer, each as its PoP nearest the (lhr) client: lhr on a, nrt on b.
    assert set(regions) == {"lhr", "nrt"}, regions
    status, other = Api.admin(b).post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert status == 201
    wait_for(lambda: bound_on(a, other["ip"], port), 5, "node a to bind b's address")

    def listed() -> dict[str, Any]:
        _, status = Api.admin(a).get("/v1/status")
        return {n["name"]: n for n in status["cluster"]["nodes"]}

    wait_for(lambda: {"a", "b"} <= set(listed()), 5, "both nodes' heartbeats")
    nodes_now = listed()
    assert nodes_now["a"]["pops"] == ["lhr", "fra"] and nodes_now["b"]["pops"] == ["syd", "nrt"]
    assert not nodes_now["b"]["stale"] and nodes_now["a"]["self"]
    shown = edgectl(b, "status").stdout  # the real CLI: every node, its PoPs, last contact
    assert "control plane postgresql://" in shown and "connected" in shown
    assert re.search(r"^a\s+lhr,fra\s+127\.0\.0\.1:\d+\s+[\d.]+s ago", shown, re.M), shown
    assert re.search(r"^b \(this\)\s+syd,nrt", shown, re.M), shown


def test_150_parallel_allocations_over_three_nodes_give_exactly_100(
    tmp_path: Path, pg_url: str, nodes: Any
) -> None:
    config = write_edge_config(tmp_path, [])
    cluster = [nodes(pg_url, n, p, config) for n, p in (("a", "lhr"), ("b", "fra"), ("c", "syd"))]
    apis = [Api.admin(node) for node in cluster]
    status, _ = apis[0].post("/v1/apps", {"app_name": "many", "public_ips": False})
    assert status == 201
    for api in apis:  # every node knows the app before the race starts
        wait_for(lambda api=api: api.get("/v1/apps/many")[0] == 200, 5, "the app everywhere")
    start = threading.Barrier(150)

    def allocate(i: int) -> tuple[int, Any]:
        start.wait()
        return apis[i % 3].post("/v1/apps/many/ip_assignments", {"type": "v4"})

    with ThreadPoolExecutor(max_workers=150) as pool:
        answers = list(pool.map(allocate, range(150)))
    codes = Counter(code for code, _ in answers)
    assert codes == {201: 100, 422: 50}, codes  # no 5xx, no 409: exact
    granted = [body["ip"] for code, body in answers if code == 201]
    assert len(set(granted)) == 100
    for api in apis:
        _, listed = api.get("/v1/apps/many/ip_assignments")
        assert sorted(ip["ip"] for ip in listed["ips"]) == sorted(granted)
    refused = next(body for code, body in answers if code == 422)
    assert "100 IP assignments" in refused["error"]


def test_a_node_cut_off_from_the_control_plane_serves_refuses_and_catches_up(
    tmp_path: Path, pg_server: PrivateServer, pg_url: str, nodes: Any
) -> None:
    port = free_port()
    config = web_config(tmp_path, port)
    gate = TcpGate(pg_server.port)
    try:
        a = nodes(pg_url, "a", "lhr", config)
        b = nodes(gate.url(pg_url.rsplit("/", 1)[1]), "b", "syd", config)
        primary = _primary(a)
        gate.cut()
        wait_for(lambda: healthz(b)["status"] == "degraded", 10, "b to report degraded")
        detail = healthz(b)["control_plane"]
        assert detail["connected"] is False  # type: ignore[index]
        code, refused = Api.admin(b).post("/v1/apps/web/ip_assignments", {"type": "v4"})
        assert code == 503
        assert "keeps serving from its last state" in refused["error"]
        metrics = b.get_text("/metrics")
        assert "edge_control_plane_connected 0.0" in metrics
        # B still serves what it had; A changes things meanwhile.
        assert all(http_get(primary, port)[0] == 200 for _ in range(20))
        code, made = Api.admin(a).post("/v1/apps/web/ip_assignments", {"type": "v4"})
        assert code == 201
        assert not bound_on(b, made["ip"], port)
        _, status = Api.admin(b).get("/v1/status")  # status works, from the last state
        assert status["cluster"]["control_plane"]["connected"] is False
        gate.mend()
        wait_for(lambda: bound_on(b, made["ip"], port), 10, "b to catch up")
        assert healthz(b)["status"] == "ok"
        assert healthz(b)["control_plane"]["changes_caught_up"] >= 1  # type: ignore[index]
    finally:
        gate.close()


class Traffic:
    """Requests on new connections in a loop; every failure is kept."""

    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = http_get(self.address, self.port)
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"HTTP {status}")
            except OSError as exc:
                self.failures.append(repr(exc))
            time.sleep(0.005)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_postgresql_killed_and_restarted_under_traffic_loses_no_request(
    tmp_path: Path, pg_server: PrivateServer, pg_url: str, nodes: Any
) -> None:
    port = free_port()
    config = web_config(tmp_path, port)
    a = nodes(pg_url, "a", "lhr", config)
    b = nodes(pg_url, "b", "syd", config)
    primary = _primary(a)
    with Traffic(primary, port) as traffic:
        wait_for(lambda: traffic.ok > 20, 10, "steady traffic")
        pg_server.crash()
        try:
            for node in (a, b):
                wait_for(lambda n=node: healthz(n)["status"] == "degraded", 10, "degraded")
            code, body = Api.admin(a).post("/v1/apps/web/ip_assignments", {"type": "v4"})
            assert code == 503, body
            during = traffic.ok
            wait_for(lambda: traffic.ok > during + 20, 10, "traffic during the outage")
        finally:
            pg_server.start()
        for node in (a, b):
            wait_for(lambda n=node: healthz(n)["status"] == "ok", 15, "reconnected")
        code, made = Api.admin(b).post("/v1/apps/web/ip_assignments", {"type": "v4"})
        assert code == 201, made
        wait_for(lambda: bound_on(a, made["ip"], port), 5, "changes flow again")
        after = traffic.ok
        wait_for(lambda: traffic.ok > after + 20, 10, "traffic after the outage")
    assert traffic.failures == []


def test_a_node_killed_leaves_the_other_serving(tmp_path: Path, pg_url: str, nodes: Any) -> None:
    port = free_port()
    config = web_config(tmp_path, port)
    a = nodes(pg_url, "a", "lhr", config)
    b = nodes(pg_url, "b", "syd", config)
    primary = _primary(a)

    def listed() -> dict[str, Any]:
        _, status = Api.admin(b).get("/v1/status")
        return {n["name"]: n for n in status["cluster"]["nodes"]}

    wait_for(lambda: {"a", "b"} <= set(listed()), 5, "both nodes' heartbeats")
    a.kill()  # SIGKILL
    answers = [http_get(primary, port) for _ in range(30)]
    assert all(code == 200 for code, _ in answers)
    assert {body["headers"]["Fly-Region"] for _, body in answers} == {"syd"}
    code, made = Api.admin(b).post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert code == 201
    assert http_get(made["ip"], port)[0] == 200
    wait_for(lambda: listed()["a"]["stale"], 15, "a to be shown stale")
