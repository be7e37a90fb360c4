"""What the control plane shows without a token: ``/healthz`` is minimal, and ``/metrics``
(which names every org's apps and machines) can require the metrics or admin token."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, start_edge
from tests.integration.edgeconf import http_app, write_edge_config

HEALTHZ_KEYS = {"status", "version", "uptime_seconds", "pops", "reason"}


def config_with(tmp: Path, **sections: object) -> Path:
    app, _, _ = http_app("secretapp", ["lhr"])
    path = write_edge_config(tmp, [app])
    config = yaml.safe_load(path.read_text())
    config.update(sections)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def open_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("exposure-open")
    process = start_edge(tmp, config=config_with(tmp))
    yield process
    process.kill()


@pytest.fixture(scope="module")
def locked_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("exposure-locked")
    process = start_edge(tmp, config=config_with(tmp, metrics={"require_token": True}))
    yield process
    process.kill()


def get(edge: EdgeProcess, path: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(edge.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_healthz_shows_no_internals(open_edge: EdgeProcess) -> None:
    body = open_edge.get_json("/healthz")
    assert set(body) <= HEALTHZ_KEYS
    assert body["status"] == "ok"
    text = get(open_edge, "/healthz")[2]
    assert str(open_edge.state_dir) not in text and "state" not in text.replace('"status"', "")
    assert "secretapp" not in text and "127." not in text


def test_metrics_are_public_by_default(open_edge: EdgeProcess) -> None:
    status, _, text = get(open_edge, "/metrics")
    assert status == 200 and "edge_build_info" in text


def test_metrics_require_a_token_when_configured(locked_edge: EdgeProcess) -> None:
    status, headers, text = get(locked_edge, "/metrics")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "secretapp" not in text and "metrics_token" in text
    assert get(locked_edge, "/metrics", "edge_wrong")[0] == 401


def test_the_metrics_token_file_and_the_admin_token_both_work(locked_edge: EdgeProcess) -> None:
    token_file = locked_edge.state_dir / "metrics_token"
    assert token_file.stat().st_mode & 0o077 == 0  # private, like the admin token
    metrics_token = token_file.read_text().strip()
    for token in (metrics_token, locked_edge.token()):
        status, _, text = get(locked_edge, "/metrics", token)
        assert status == 200 and "edge_build_info" in text


def test_the_metrics_token_opens_nothing_else(locked_edge: EdgeProcess) -> None:
    metrics_token = (locked_edge.state_dir / "metrics_token").read_text().strip()
    assert get(locked_edge, "/v1/apps", metrics_token)[0] == 401


def test_an_org_token_cannot_read_protected_metrics(locked_edge: EdgeProcess) -> None:
    status, body = Api.admin(locked_edge).post("/v1/orgs", {"slug": "acme"})
    assert status == 201, body
    org_token = body["token"]
    assert get(locked_edge, "/v1/apps", org_token)[0] == 200  # a working token
    assert get(locked_edge, "/metrics", org_token)[0] == 401


def test_healthz_stays_public_with_protected_metrics(locked_edge: EdgeProcess) -> None:
    assert get(locked_edge, "/healthz")[0] == 200
