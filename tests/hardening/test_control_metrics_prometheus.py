"""A real Prometheus scrapes a ``metrics.require_token`` edge with ``credentials_file``
pointing at STATE_DIR/metrics_token (as config/prometheus.yml shows); without it the
scrape fails with 401."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.e2e.test_prometheus import query, value, wait_for
from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import http_app, write_edge_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def locked_edge(tmp_path: Path) -> Iterator[EdgeProcess]:
    app, _, _ = http_app("web", ["lhr"])
    path = write_edge_config(tmp_path, [app])
    config = yaml.safe_load(path.read_text())
    config["metrics"] = {"require_token": True}
    path.write_text(yaml.safe_dump(config))
    process = start_edge(tmp_path, config=path)
    yield process
    process.kill()


def job(name: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"job_name": name, "static_configs": [{"targets": [target]}], **extra}


@pytest.fixture
def prometheus(tmp_path: Path, locked_edge: EdgeProcess) -> Iterator[str]:
    binary = require_tool("prometheus")
    token_file = locked_edge.state_dir / "metrics_token"
    authorization = {"type": "Bearer", "credentials_file": str(token_file)}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            job("with_token", locked_edge.api, authorization=authorization),
            job("without_token", locked_edge.api),
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    with (tmp_path / "prometheus.log").open("wb") as log:
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


def test_prometheus_scrapes_with_the_metrics_token_file(prometheus: str) -> None:
    wait_for(lambda: value(prometheus, 'up{job="with_token"}') == 1, 30)
    wait_for(lambda: value(prometheus, 'up{job="without_token"}') == 0, 30)
    assert value(prometheus, 'edge_build_info{job="with_token"}') == 1
    assert value(prometheus, 'edge_build_info{job="without_token"}') is None
