"""The dashboard's way in: its URL in the log, the real token path, ``edgectl ui``."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, start_edge


def redeem(edge: EdgeProcess, code: str) -> tuple[int, object]:
    return Api(edge.url, None).post("/v1/ui/session", {"code": code})


def test_the_log_says_where_the_dashboard_is(tmp_path: Path) -> None:
    edge = start_edge(tmp_path)
    try:
        log = edge.log()
        assert f"dashboard at {edge.url}/ui (sign in with `edgectl ui`" in log
        assert str(edge.state_dir / "token") in log
        page = edge.get_text("/ui")
        assert f'<code id="token-path">{edge.state_dir / "token"}</code>' in page
    finally:
        edge.kill()


def test_edgectl_ui_prints_a_one_time_link(tmp_path: Path) -> None:
    edge = start_edge(tmp_path)
    try:
        result = edgectl(edge, "ui")
        assert result.returncode == 0, result.stderr
        url = result.stdout.strip()
        assert url.startswith(f"{edge.url}/ui#code=")
        assert "one-time link" in result.stderr
        code = urllib.parse.urlsplit(url).fragment.removeprefix("code=")
        status, body = redeem(edge, code)
        assert status == 201, body
        assert isinstance(body, dict)
        session = Api(edge.url, body["token"])
        assert session.get("/v1/status")[0] == 200  # acts as the admin who asked
        status, again = redeem(edge, code)  # used up
        assert status == 401 and "used up or expired" in again["error"]  # type: ignore[index]
        assert redeem(edge, "made-up")[0] == 401
        assert Api(edge.url, "edge_ui_made-up").get("/v1/status")[0] == 401
        assert Api(edge.url, None).post("/v1/ui/login-codes")[0] == 401  # needs a token
    finally:
        edge.kill()


def test_edgectl_ui_open_without_a_browser_still_prints_the_link(tmp_path: Path) -> None:
    edge = start_edge(tmp_path)
    try:
        env_path = os.environ.get("PATH", "")
        os.environ["PATH"] = str(tmp_path)  # no xdg-open here
        try:
            result = edgectl(edge, "ui", "--open")
        finally:
            os.environ["PATH"] = env_path
        assert result.returncode == 0, result.stderr
        assert "/ui#code=" in result.stdout
        assert "no xdg-open" in result.stderr
    finally:
        edge.kill()
