"""``edge serve --workers 2``: two processes accept on the same listeners and the same
API, share the store and one health picture (checks run once), split the load, and
``/metrics`` adds them up. Real processes, real sockets."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import Api
from tests.integration.cluster import http_get, wait_for
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, write_edge_config

pytestmark = pytest.mark.slow
REQUESTS = 'edge_http_requests_total{app="web",'


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def total(text: str, prefix: str) -> float:
    pattern = "^" + re.escape(prefix) + r"[^}\n]*\} (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


def workers(edge: EdgeProcess) -> list[dict[str, Any]]:
    _, status = Api.admin(edge).get("/v1/status")
    return sorted(status["cluster"]["nodes"], key=lambda n: n["name"])


def test_two_workers_share_listeners_store_health_and_metrics(
    tmp_path: Path, edge_factory: Any
) -> None:
    port = free_port()
    check = {"interval": "0.2s", "timeout": "0.5s", "path": "/healthz", "grace_period": "0s"}
    app = {
        "app": "web",
        "primary_region": "lhr",
        "services": [
            {
                "internal_port": 8080,
                "ports": [{"port": port, "handlers": ["http"]}],
                "http_checks": [check],
            }
        ],
        "machines": demo_machines("web", ["lhr"]),
    }
    edge = edge_factory(
        config=write_edge_config(tmp_path, [app]), extra=["--workers", "2", "--node", "n"]
    )
    wait_for(lambda: [w["name"] for w in workers(edge)] == ["n#0", "n#1"], 10, "two workers")
    private = [f"http://{w['api']}/metrics?worker=self" for w in workers(edge)]

    address = Api.admin(edge).get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"]
    for _ in range(200):
        assert http_get(address, port)[0] == 200
    own = [total(scrape(url), REQUESTS) for url in private]
    assert sum(own) == 200 and min(own) > 20, own  # the kernel spread them over both
    assert total(edge.get_text("/metrics"), REQUESTS) == 200  # one scrape: the sum
    assert "edge_metrics_workers 2.0" in edge.get_text("/metrics")

    checks = "edge_health_checks_total"
    wait_for(lambda: total(scrape(private[0]), checks) >= 3, 10, "checks by n#0")
    first = total(scrape(private[0]), checks)
    wait_for(lambda: total(scrape(private[0]), checks) >= first + 10, 10, "checks by n#0")
    assert total(scrape(private[1]), checks) == 0  # n#1 follows n#0's verdict

    # A change through the shared API reaches both workers' listeners.
    code, made = Api.admin(edge).post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert code == 201
    for url in private:
        status_url = url.replace("/metrics?worker=self", "/v1/status")
        request = urllib.request.Request(status_url)
        request.add_header("Authorization", f"Bearer {edge.token()}")

        def bound(request: urllib.request.Request = request) -> bool:
            import json

            with urllib.request.urlopen(request, timeout=5) as answer:
                rows = json.loads(answer.read())["listeners"]
            return any(r["address"] == made["ip"] and r.get("bound") for r in rows)

        wait_for(bound, 5, "every worker to bind the new address")

    edge.proc.send_signal(signal.SIGTERM)
    assert edge.proc.wait(20) == 0
