"""Small things a new user hit (issue 9): versions, errors said once, JSON errors, region
case, the unknown-region message, a malformed EDGE_API_URL, ``apps show``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.api import Api, edgectl
from tests.integration.daemon import ROOT, EdgeProcess, start_edge
from tests.integration.edgeconf import http_app, write_edge_config


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp_path = tmp_path_factory.mktemp("small")
    web, _, _ = http_app("web", ["lhr", "iad"])
    web["primary_region"] = "LHR"  # the config takes region codes in any case
    web["machines"][1]["region"] = "IAD"
    daemon = start_edge(tmp_path, config=write_edge_config(tmp_path, [web]))
    yield daemon
    daemon.kill()


def command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_both_commands_print_their_version() -> None:
    from edge import __version__

    version, hot_path = command("edge", "--version").stdout.strip().splitlines()
    assert version == f"edge {__version__}"
    assert hot_path.startswith(("hot path: compiled: ", "hot path: pure Python ("))
    assert command("edge.cli.edgectl", "--version").stdout.strip() == f"edgectl {__version__}"


def test_an_error_is_printed_once(edge: EdgeProcess, tmp_path: Path) -> None:
    result = edgectl(edge, "deploy", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: cannot read {tmp_path / 'missing.yaml'}: No such file or directory"
    ]


def test_with_json_an_error_is_json_on_stderr(edge: EdgeProcess) -> None:
    result = edgectl(edge, "apps", "show", "nope", "--json")
    assert result.returncode == 1 and result.stdout == ""
    assert json.loads(result.stderr) == {"error": "app 'nope' not found", "status": 404}
    result = edgectl(edge, "machines", "stop", "-a", "web", "ghost", "--json")
    assert result.returncode == 1
    assert "nothing was changed" in json.loads(result.stderr)["error"]
    result = edgectl(edge, "machines", "stop", "--json")  # a usage error, still JSON
    assert result.returncode == 2
    assert "required: -a/--app" in json.loads(result.stderr)["error"]


def test_region_codes_are_case_insensitive(edge: EdgeProcess) -> None:
    machines = {m["id"]: m["region"] for m in Api.admin(edge).get("/v1/apps/web/machines")[1][
        "machines"
    ]}  # fmt: skip
    assert machines == {"web-lhr": "lhr", "web-iad": "iad"}  # from the config, in capitals
    result = edgectl(edge, "machines", "add", "-a", "web", "-r", "SYD", "--demo", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["region"] == "syd"
    result = edgectl(edge, "ips", "allocate-v4", "-a", "web", "-r", "IAD", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["region"] == "iad"
    result = edgectl(edge, "apps", "create", "caps", "-r", "NRT", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["primary_region"] == "nrt"
    result = edgectl(edge, "route", "-a", "web", "--from", "NRT", "--prefer", "IAD", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["from"] == "nrt"
    assert json.loads(result.stdout)["chosen"]["region"] == "iad"
    result = edgectl(edge, "faults", "add", "latency", "--region", "SYD", "--latency", "5ms")
    assert result.returncode == 0, result.stderr
    assert edgectl(edge, "faults", "clear").returncode == 0


def test_an_unknown_region_is_named_once_with_the_list_once(edge: EdgeProcess) -> None:
    result = edgectl(edge, "machines", "add", "-a", "web", "-r", "xyz", "--demo")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: region: unknown region 'xyz'; valid regions: ams, ")
    assert "primary_region" not in result.stderr
    assert result.stderr.count("xyz") == 1 and result.stderr.count("lhr") == 1


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("127.0.0.1:4280", "it must start with http:// or https://"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://", "it names no host"),
    ],
)
def test_a_malformed_api_url_is_called_malformed(url: str, why: str, tmp_path: Path) -> None:
    result = command(
        "edge.cli.edgectl", "apps", "list", env={"EDGE_API_URL": url, "EDGE_API_TOKEN": "x"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: EDGE_API_URL {url!r} is malformed (")
    assert why in result.stderr and "expected http://HOST:PORT" in result.stderr
    assert "cannot reach" not in result.stderr


def test_apps_show_lists_services_and_machines(edge: EdgeProcess) -> None:
    result = edgectl(edge, "apps", "show", "web")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    service = next(line for line in lines if line.startswith("8080 "))
    assert "[http]" in service and "[tls,http]" in service and service.split()[-1] == "none"
    assert any(line.startswith("web-lhr ") and "no checks" in line for line in lines)
    assert any(line.startswith("web-iad ") for line in lines)
    shown = json.loads(edgectl(edge, "apps", "show", "web", "--json").stdout)
    assert {m["id"] for m in shown["machines"]} >= {"web-lhr", "web-iad"}


def test_the_readme_curl_example_that_shows_headers_asks_for_them() -> None:
    readme = (ROOT / "README.md").read_text()
    for block in readme.split("```")[1::2]:
        lines = block.splitlines()
        for i, line in enumerate(lines):
            shown = lines[i + 1] if i + 1 < len(lines) else ""
            if line.startswith("$ curl") and shown.startswith("HTTP/1.1"):
                assert re.search(r" (-[a-zA-Z]*i|--include)\b", line), line


def test_the_config_is_written_with_capitals(tmp_path: Path) -> None:
    web, _, _ = http_app("web", ["lhr"])
    web["primary_region"] = "Lhr"
    path = write_edge_config(tmp_path, [web])
    data = yaml.safe_load(path.read_text())
    data["edge"]["local_region"] = "LHR"
    path.write_text(yaml.safe_dump(data))
    result = command("edge", "check-config", str(path))
    assert result.returncode == 0, result.stderr
