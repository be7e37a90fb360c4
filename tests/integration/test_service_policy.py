"""A service's policy travels with the routing choice: the same on the app's own address
and on the shared IPv4 (where the app is only known once the Host header is read)."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


def app_with_a_dead_nearest_machine(name: str, port: int, retries: int) -> dict[str, Any]:
    """lhr (the local clients' PoP) has a machine nothing listens on; iad a demo one."""
    return {
        "app": name,
        "primary_region": "lhr",
        "services": [
            {
                "internal_port": 8080,
                "ports": [{"port": port, "handlers": ["http"]}],
                "retries": retries,
            }
        ],
        "machines": [
            {"id": f"{name}-lhr", "region": "lhr", "address": f"127.0.0.1:{free_port()}"},
            {"id": f"{name}-iad", "region": "iad", "demo": True},
        ],
    }


def status_of(address: str, port: int, host: str) -> int:
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize(("retries", "expected"), [(0, 502), (2, 200)])
def test_retries_of_the_service_apply_on_the_shared_ipv4_too(
    edge_factory: EdgeFactory, tmp_path: Path, retries: int, expected: int
) -> None:
    port = free_port()
    config = write_edge_config(tmp_path, [app_with_a_dead_nearest_machine("web", port, retries)])
    edge = edge_factory(config=config)
    api = Api.admin(edge)
    status, shared = api.post("/v1/apps/web/ip_assignments", {"type": "shared_v4"})
    assert status == 201, shared
    dedicated = api.get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"]
    # The first request meets the dead lhr machine first (nearest; no checks yet say
    # otherwise): with retries 0 it is a 502, with retries it is served from iad.
    assert status_of(shared["ip"], port, "web.edge.test") == expected
    assert status_of(dedicated, port, "web.edge.test") == expected
