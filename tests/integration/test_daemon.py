"""``edge serve`` as a real process: health, metrics, signals, startup errors."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon import ROOT, EdgeProcess, edge_command, free_port

DEMO = ROOT / "config" / "edge.yaml"


def test_healthz_answers_with_json_status(edge_factory: Callable[..., EdgeProcess]) -> None:
    edge = edge_factory(config=DEMO)
    body = edge.get_json("/healthz")
    assert body["status"] == "ok"
    assert body["version"]
    assert "lhr" in body["pops"]


def test_metrics_parse_and_include_process_collectors(
    edge_factory: Callable[..., EdgeProcess],
) -> None:
    edge = edge_factory(config=DEMO)
    names = {family.name for family in text_string_to_metric_families(edge.get_text("/metrics"))}
    assert {"process_resident_memory_bytes", "python_info", "edge_build_info"} <= names


def test_state_dir_is_created_private(
    edge_factory: Callable[..., EdgeProcess], tmp_path: Path
) -> None:
    state = tmp_path / "deep" / "state"
    edge_factory(config=DEMO, state_dir=state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_exit_0(
    edge_factory: Callable[..., EdgeProcess], sig: signal.Signals
) -> None:
    edge = edge_factory(config=DEMO, extra=["--drain-timeout", "3"])
    started = time.monotonic()
    edge.proc.send_signal(sig)
    assert edge.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 3 + 2
    log = edge.log()
    assert "stopping" in log and "edge stopped" in log
    assert "Traceback" not in log


def run_edge(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        edge_command(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_taken_port_exits_2_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_edge(
            "serve",
            "--config",
            str(DEMO),
            "--state-dir",
            str(tmp_path),
            "--api",
            f"127.0.0.1:{port}",
        )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        f"edge: error: cannot listen on 127.0.0.1:{port} (api): address already in use "
        "(is another edge running? pick another port)"
    ]
    assert "Traceback" not in result.stderr


def test_unreadable_config_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run_edge("serve", "--config", str(missing), "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"edge: error: cannot read {missing}: No such file or directory"
    ]


def test_state_dir_below_a_file_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    api = f"127.0.0.1:{free_port()}"
    result = run_edge("serve", "--state-dir", str(blocker / "state"), "--api", api)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edge: error: cannot create state directory {blocker / 'state'}: Not a directory"
    )


def test_state_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    api = f"127.0.0.1:{free_port()}"
    result = run_edge("serve", "--state-dir", str(blocker), "--api", api)
    assert result.returncode == 2
    assert f"state directory {blocker} exists but is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_log_format(edge_factory: Callable[..., EdgeProcess]) -> None:
    import json

    edge = edge_factory(config=DEMO, extra=["--log-format", "json"])
    edge.terminate()
    lines = [json.loads(line) for line in edge.log().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "edge started" for entry in lines)


def test_check_config_demo_passes_and_broken_copy_fails(tmp_path: Path) -> None:
    ok = run_edge("check-config", str(DEMO))
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok")
    broken = tmp_path / "broken.yaml"
    text = DEMO.read_text().replace("{port: 8443, handlers: [tls, http]}", "{port: 84430}")
    text = text.replace("local_region: lhr", "local_region: lhr\n  colour: blue")
    broken.write_text(text)
    result = run_edge("check-config", str(broken))
    assert result.returncode == 1
    assert "apps[0].services[0].ports[1].port: must be between 1 and 65535" in result.stderr
    assert "edge.colour: unknown key" in result.stderr


def test_regions_prints_the_catalogue() -> None:
    result = run_edge("regions")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CODE", "CITY", "LATITUDE", "LONGITUDE", "GATEWAY", "STATUS"]
    assert len(lines) == 36
    assert any(line.startswith("syd ") and "current" in line for line in lines)


def test_malformed_api_address_exits_2(tmp_path: Path) -> None:
    result = run_edge("serve", "--state-dir", str(tmp_path), "--api", "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == "edge: error: --api must be HOST:PORT, not 'nowhere'"
