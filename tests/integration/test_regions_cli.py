"""`edge regions --rtt-from`: the modelled RTT from one region, as a table and as JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.daemon import ROOT, edge_command


def run_edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(edge_command(*args), capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_rtt_from_lists_every_region_nearest_first() -> None:
    result = run_edge("regions", "--rtt-from", "LHR")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("modelled round trips from lhr (calibrated model")
    assert lines[1].split() == ["CODE", "CITY", "RTT_MS", "STATUS"]
    rows = lines[2:]
    assert len(rows) == 35
    assert rows[0].split()[0] == "lhr"
    rtts = [float(row.split()[-2]) for row in rows]
    assert rtts == sorted(rtts)
    syd = next(row for row in rows if row.startswith("syd "))
    assert 250 <= float(syd.split()[-2]) <= 290  # measured 261-277 ms


def test_rtt_from_as_json() -> None:
    result = run_edge("regions", "--rtt-from", "syd", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["from"] == "syd" and data["model"] == "calibrated"
    assert len(data["regions"]) == 35
    first = data["regions"][0]
    assert first["code"] == "syd" and first["rtt_ms"] == 6.0
    assert {"code", "city", "latitude", "longitude", "gateway", "deprecated", "rtt_ms"} <= set(
        first
    )
    catalogue = json.loads(run_edge("regions", "--json").stdout)
    assert len(catalogue["regions"]) == 35 and "rtt_ms" not in catalogue["regions"][0]


def test_rtt_from_follows_the_config_latency_section(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(
        "edge: {pops: [lhr], local_region: lhr}\n"
        "latency:\n  model: great_circle\n  overrides: [{a: lhr, b: syd, rtt: 300ms}]\n"
    )
    data = json.loads(
        run_edge("regions", "--rtt-from", "lhr", "--json", "--config", str(config)).stdout
    )
    assert data["model"] == "great_circle"
    assert data["regions"][-1] == {**data["regions"][-1], "code": "syd", "rtt_ms": 300.0}


def test_an_unknown_region_is_refused_with_exit_2() -> None:
    result = run_edge("regions", "--rtt-from", "xyz")
    assert result.returncode == 2
    assert "--rtt-from 'xyz': not a region code" in result.stderr
    assert result.stdout == ""
