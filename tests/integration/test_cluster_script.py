"""`scripts/cluster up|status|down`: a private PostgreSQL and two nodes from one command,
an IP allocated through either node served by both, and everything stopped after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api import Api
from tests.integration.cluster import bound_on, http_get, wait_for
from tests.integration.daemon import ROOT, EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, write_edge_config
from tests.pg import require_postgres

pytestmark = pytest.mark.slow


def cluster(*args: str) -> subprocess.CompletedProcess[str]:
    # The script's own body (scripts/cluster only makes sure .venv exists first).
    command = [sys.executable, "-m", "edge.cluster.local", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture
def top() -> Iterator[Path]:
    require_postgres()
    path = Path(tempfile.mkdtemp(prefix="edge-cluster-test-"))
    yield path
    cluster("down", "--state-dir", str(path))
    shutil.rmtree(path, ignore_errors=True)


def test_cluster_up_serves_from_both_nodes_and_down_stops_everything(
    tmp_path: Path, top: Path
) -> None:
    assert os.access(ROOT / "scripts" / "cluster", os.X_OK)
    port = free_port()
    app = {
        "app": "web",
        "primary_region": "lhr",
        "services": [{"internal_port": 8080, "ports": [{"port": port, "handlers": ["http"]}]}],
        "machines": demo_machines("web", ["lhr"]),
    }
    config = write_edge_config(tmp_path, [app])
    apis = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    nodes = ["--node", f"a:lhr:{apis[0]}", "--node", f"b:syd:{apis[1]}"]
    up = cluster("up", "--state-dir", str(top), "--config", str(config), *nodes)
    assert up.returncode == 0, up.stderr
    assert f"node a: API http://{apis[0]}" in up.stdout
    assert "postgresql://" in up.stdout and (top / "cluster.env").exists()
    status = cluster("status", "--state-dir", str(top), *nodes).stdout
    assert "postgresql: running" in status and "node b: running" in status

    def node(api: str) -> EdgeProcess:
        return EdgeProcess(None, api, top / "edge", top / "a.log")  # type: ignore[arg-type]

    a, b = node(apis[0]), node(apis[1])
    code, made = Api.admin(b).post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert code == 201
    wait_for(lambda: bound_on(a, made["ip"], port), 5, "node a to bind b's address")
    regions = {http_get(made["ip"], port)[1]["headers"]["Fly-Region"] for _ in range(40)}
    assert regions == {"lhr", "syd"}

    down = cluster("down", "--state-dir", str(top))
    assert "stopped: a, b, postgresql" in down.stdout
    assert "postgresql: stopped" in cluster("status", "--state-dir", str(top), *nodes).stdout
