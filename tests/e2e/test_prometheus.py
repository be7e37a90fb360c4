"""A real Prometheus scrapes a running edge; PromQL sees what the test did."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import http_app, write_edge_config

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[EdgeProcess, int]]:
    web, port, _ = http_app("web", ["lhr", "iad"])
    other, _, _ = http_app("other", ["syd"])
    process = start_edge(tmp_path, config=write_edge_config(tmp_path, [web, other]))
    try:
        yield process, port
    finally:
        process.kill()


@pytest.fixture
def prometheus(tmp_path: Path, edge: tuple[EdgeProcess, int]) -> Iterator[str]:
    binary = require_tool("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "edge", "static_configs": [{"targets": [edge[0].api]}]}],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        url = f"http://{address}"
        wait_for(lambda: query(url, "up") is not None, 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def query(url: str, promql: str) -> list[dict[str, Any]] | None:
    full = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(full, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return None
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def value(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_sees_request_counts_and_machine_health(
    edge: tuple[EdgeProcess, int], prometheus: str
) -> None:
    process, port = edge
    api = Api.admin(process)
    address = api.get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"]
    sent = 120
    for _ in range(sent):
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
            assert response.status == 200

    total = 'sum by (app) (edge_http_requests_total{app="web"})'
    wait_for(lambda: value(prometheus, total) == sent, 30)
    assert value(prometheus, 'sum(edge_http_requests_total{app="other"})') is None
    served = 'sum(edge_route_decisions_total{app="web",region="lhr",reason="nearest"})'
    assert value(prometheus, served) == sent
    # Requests per machine, and latency by the region that served them.
    per_machine = 'sum by (machine) (edge_http_requests_total{app="web",machine="web-lhr"})'
    assert value(prometheus, per_machine) == sent
    by_region = 'sum(edge_http_request_duration_seconds_count{app="web",region="lhr"})'
    assert value(prometheus, by_region) == sent
    assert query(prometheus, '{__name__=~"edge_.*_created"}') == []
    rate = 'sum(rate(edge_http_requests_total{app="web"}[1m]))'
    wait_for(lambda: value(prometheus, rate) is not None, 30)

    passing = 'edge_machine_health{machine="web-iad",state="no_checks"}'  # web has no checks
    assert value(prometheus, passing) == 1
    assert api.post("/v1/apps/web/machines/web-iad/stop")[0] == 200
    stopped = 'edge_machine_health{machine="web-iad",state="stopped"}'
    wait_for(lambda: value(prometheus, stopped) == 1, 30)
    assert value(prometheus, passing) == 0


def test_dashboard_queries_are_valid_promql(prometheus: str) -> None:
    dashboard = json.loads((ROOT / "config" / "grafana" / "edge-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        assert query(prometheus, expr.replace("$app", ".*")) is not None, expr


def test_promtool_finds_no_problems_in_the_metrics(edge: tuple[EdgeProcess, int]) -> None:
    promtool = require_tool("promtool")
    process, port = edge
    address = Api.admin(process).get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"]
    urllib.request.urlopen(f"http://{address}:{port}/", timeout=5).read()
    text = process.get_text("/metrics")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_shipped_scrape_config_is_valid() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "config" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
