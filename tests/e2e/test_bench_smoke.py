"""`scripts/bench --quick` runs end to end: every process starts, the table is printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])

pytestmark = pytest.mark.e2e


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool, path=SBIN_PATH) is None]
    if not missing:
        return
    message = f"missing system tools: {', '.join(missing)} (apt-get install haproxy wrk)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)  # CI installs them: missing there is a broken setup
    pytest.skip(message)


def test_bench_quick_prints_the_table(tmp_path: Path) -> None:
    require_tools("wrk", "haproxy")
    results = tmp_path / "bench.json"
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for expected in (
        "ratio edge/HAProxy",
        "raw TCP keep-alive req/s",
        "http p99, same offered load",
        "memory per idle proxied connection",
    ):
        assert expected in done.stdout
    data = json.loads(results.read_text())
    targets = {(run["target"], run["load"]) for run in data["runs"] if run["rps"] > 0}
    for target in ("direct", "haproxy-tcp", "edge-tcp", "haproxy-http", "edge-http"):
        assert {(target, "keep-alive"), (target, "close")} <= targets
    # The edge compiled and as pure Python (EDGE_NO_EXTENSIONS=1), side by side.
    for target in ("edge-tcp-pure", "edge-http-pure"):
        assert {(target, "keep-alive"), (target, "close")} <= targets
    assert "edge compiled vs pure Python" in done.stdout
    assert "edge hot path: " in done.stdout
    versus = {row["what"]: row for row in data["compiled_vs_pure"]}
    assert set(versus) == {
        "raw TCP keep-alive",
        "raw TCP new connections",
        "http keep-alive",
        "http new connection per request",
    }
    assert all(row["pure_cpu_us_per_req"] for row in versus.values())
    memory = data["memory"]
    assert memory["proxied"] == memory["connections"] == 200
    assert memory["fds_back_to_baseline"]


def test_bench_routing_runs_itself_inside_the_venv(tmp_path: Path) -> None:
    # Started by a Python that is not the project's .venv (as right after git clone),
    # the script prepares .venv with scripts/_venv.sh and runs again inside it.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    plain = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"
    done = subprocess.run(
        [plain, str(ROOT / "scripts" / "bench-routing"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "maglev table" in done.stdout


def test_bench_router_times_the_runtimes_share_of_a_request() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench-router"), "--quick", "--scrape"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "router per request (choose, responded, transferred, release):" in done.stdout
    assert "one /metrics exposition:" in done.stdout
