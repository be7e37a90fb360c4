"""edgectl route, status and catchment against a real daemon."""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.cli.ctl_observe import print_route, print_status
from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, start_edge
from tests.integration.edgeconf import demo_machines, http_app, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]
# The config's PoPs are lhr, iad, syd and nrt; web has machines in three of them.
WEB_REGIONS = ["lhr", "iad", "syd"]


def config(tmp_path: Path) -> Path:
    web, _, _ = http_app("web", WEB_REGIONS)
    other, _, _ = http_app("other", ["lhr"])
    other["machines"] = demo_machines("other", ["fra"])
    return write_edge_config(tmp_path, [web, other])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """One daemon for the tests that change nothing."""
    tmp_path = tmp_path_factory.mktemp("observe")
    daemon = start_edge(tmp_path, config=config(tmp_path))
    yield daemon
    daemon.kill()


@pytest.fixture
def own_edge(edge_factory: EdgeFactory, tmp_path: Path) -> EdgeProcess:
    """A daemon of the test's own, for tests that stop machines."""
    return edge_factory(config=config(tmp_path))


def ok(edge: EdgeProcess, *args: str) -> str:
    result = edgectl(edge, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ok_json(edge: EdgeProcess, *args: str) -> Any:
    return json.loads(ok(edge, *args, "--json"))


def failed(edge: EdgeProcess, *args: str) -> str:
    result = edgectl(edge, *args)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("Error: "), result.stderr
    return result.stderr


def table_row(text: str, first: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith(first + " "))


# --- edgectl route ---------------------------------------------------------------------------


def test_route_explains_the_pop_the_candidates_and_the_rule(edge: EdgeProcess) -> None:
    out = ok(edge, "route", "-a", "web", "--from", "nrt")
    # Figures of the calibrated latency model (issue 11; they were 4.5 and 101.6 ms).
    assert out.startswith("A client in nrt lands on PoP nrt (the nearest PoP, 6.0ms away).")
    assert table_row(out, "nrt") == ["nrt", "6.0ms", "up", "<-", "lands", "here"]
    assert table_row(out, "POP") == ["POP", "RTT", "STATUS"]
    assert "From PoP nrt, port" in out and "strategy nearest" in out
    assert table_row(out, "web-syd")[1:] == [
        "syd", "123.5ms", "0", "below", "soft", "no", "checks", "yes", "<-", "chosen",
    ]  # fmt: skip
    assert table_row(out, "web-lhr")[-1] == "yes"
    assert "Chosen: web-syd in syd (below soft limit)" in out
    assert "Rule:   nearest: " in out

    answer = ok_json(edge, "route", "-a", "web", "--from", "nrt")
    assert (answer["pop"], answer["chosen"]["region"], answer["reason"]) == (
        "nrt",
        "syd",
        "nearest",
    )
    # Tokyo-Ashburn is measured at 166 ms, Tokyo-London at 243: iad is now before lhr.
    assert [p["pop"] for p in answer["pops"]] == ["nrt", "syd", "iad", "lhr"]


def test_route_prefer(edge: EdgeProcess) -> None:
    preferred = ok(edge, "route", "-a", "web", "--from", "nrt", "--prefer", "iad")
    assert table_row(preferred, "web-iad")[-2:] == ["<-", "chosen"]
    assert "Rule:   prefer_region: " in preferred
    answer = ok_json(edge, "route", "-a", "web", "--from", "nrt", "--prefer", "fra,iad")
    assert (answer["chosen"]["region"], answer["reason"]) == ("iad", "prefer_region")


def test_route_errors(edge: EdgeProcess) -> None:
    assert "from: unknown region 'xyz'" in failed(edge, "route", "-a", "web", "--from", "xyz")
    assert "app 'nope' not found" in failed(edge, "route", "-a", "nope")
    assert "has no service on port 1" in failed(edge, "route", "-a", "web", "--port", "1")


# --- edgectl status --------------------------------------------------------------------------


def test_status_shows_pops_apps_listeners_and_machines(edge: EdgeProcess) -> None:
    out = ok(edge, "status")
    assert "PoPs up:        lhr iad syd nrt" in out
    assert "PoPs withdrawn: none" in out
    assert table_row(out, "APP")[:5] == ["APP", "ORG", "PRIMARY", "IPS", "MACHINES"]
    web = table_row(out, "web")
    assert web[:3] == ["web", "personal", "lhr"] and web[-1] == "3"
    listeners = [line.split() for line in out.splitlines() if line.startswith("127.")]
    assert len(listeners) == 4  # http and tls+http for each app
    assert all(line[-3:-1] == ["bound,", "0"] for line in listeners)
    machines = [line.split() for line in out.splitlines() if " web-" in line]
    assert [(m[1], m[2], m[5], m[6]) for m in machines] == [
        ("iad", "web-iad", "no", "checks"),
        ("lhr", "web-lhr", "no", "checks"),
        ("syd", "web-syd", "no", "checks"),
    ]


def test_status_for_one_app(edge: EdgeProcess) -> None:
    out = ok(edge, "status", "-a", "other")
    assert "web" not in out and "other-fra" in out
    status = ok_json(edge, "status", "-a", "web")
    assert [app["name"] for app in status["apps"]] == ["web"]
    ips = {ip["ip"] for ip in status["apps"][0]["ips"]}
    assert status["listeners"] and {row["address"] for row in status["listeners"]} == ips
    assert {m["region"] for m in status["apps"][0]["machines"]} == set(WEB_REGIONS)
    assert "app 'nope' not found" in failed(edge, "status", "-a", "nope")


# --- edgectl catchment -----------------------------------------------------------------------


def test_catchment_text(edge: EdgeProcess) -> None:
    out = ok(edge, "catchment", "-a", "web")
    lines = out.splitlines()
    assert lines[0].startswith("Catchment of web (port ")
    assert "1000 simulated clients in 18 regions (weights: population)" in lines[0]
    assert table_row(out, "REGION") == [
        "REGION", "CLIENTS", "SHARE", "POP", "TO_POP", "SERVED_FROM", "BACKHAUL", "RTT", "RULE",
    ]  # fmt: skip
    nrt = table_row(out, "nrt")
    assert (nrt[3], nrt[5], nrt[-1]) == ("nrt", "syd", "nearest")
    assert nrt[-2] == "129.5ms"  # 6.0 ms to the PoP, 123.5 ms on to syd
    assert table_row(out, "cdg")[3:6] == ["lhr", "12.1ms", "lhr"]
    assert "Modelled RTT over 1000 served clients: median " in out
    assert "Every client was served." in out


def test_catchment_json_and_weights(edge: EdgeProcess, tmp_path: Path) -> None:
    answer = ok_json(edge, "catchment", "-a", "web", "--weights", "uniform", "--clients", "180")
    assert answer["weights"] == "uniform"
    assert {row["clients"] for row in answer["regions"]} == {10}
    assert answer["summary"]["clients"] == answer["summary"]["served"] == 180
    assert answer["summary"]["median_ms"] <= answer["summary"]["p95_ms"]

    weights = tmp_path / "weights.yaml"
    weights.write_text("nrt: 1\nlhr: 3\n")
    custom = ok_json(edge, "catchment", "-a", "web", "--weights", str(weights), "--clients", "40")
    assert custom["weights"] == "custom"
    by_region = {row["region"]: row for row in custom["regions"]}
    assert {code: row["clients"] for code, row in by_region.items()} == {"lhr": 30, "nrt": 10}
    assert by_region["nrt"]["served"][0]["machine_region"] == "syd"


def test_catchment_errors(edge: EdgeProcess, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert "cannot read it" in failed(edge, "catchment", "-a", "web", "--weights", str(missing))
    bad = tmp_path / "bad.yaml"
    bad.write_text("xyz: 1\n")
    assert "unknown region(s) xyz" in failed(edge, "catchment", "-a", "web", "--weights", str(bad))
    assert "between 1 and 10000" in failed(edge, "catchment", "-a", "web", "--clients", "0")
    api = Api.admin(edge)
    assert api.get("/v1/apps/web/catchment?clients=many")[0] == 400
    assert api.get("/v1/apps/web/catchment?weights=lhr:1,nrt:x")[0] == 400
    assert api.get("/v1/apps/nope/catchment")[0] == 404


def test_catchment_plot_writes_a_png(edge: EdgeProcess, tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    path = tmp_path / "catchment.png"
    out = ok(edge, "catchment", "-a", "web", "--clients", "300", "--plot", str(path))
    assert out.rstrip().endswith(f"Plot written to {path}")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 800


# --- a stopped machine -----------------------------------------------------------------------


def test_a_stopped_machine_changes_route_status_and_catchment(own_edge: EdgeProcess) -> None:
    edge = own_edge
    ok(edge, "machines", "stop", "-a", "web", "web-syd")

    out = ok(edge, "route", "-a", "web", "--from", "nrt")
    assert table_row(out, "web-syd")[1:] == [
        "syd", "123.5ms", "0", "below", "soft", "-", "no:", "not", "started",
    ]  # fmt: skip
    assert table_row(out, "web-iad")[-2:] == ["<-", "chosen"]  # lhr before the calibration
    port = str(ok_json(edge, "route", "-a", "web")["port"])
    answer = ok_json(edge, "route", "-a", "web", "--from", "syd", "--port", port)
    assert answer["pop"] == "syd" and answer["chosen"]["region"] == "iad"  # nearer than lhr

    status = ok(edge, "status", "-a", "web")
    machine = next(line.split() for line in status.splitlines() if "web-syd" in line)
    assert machine[3:6] == ["stopped", "(demo)", "stopped"]
    assert machine[-1] == "-"  # no load band for a stopped machine

    catchment = ok_json(edge, "catchment", "-a", "web", "--weights", "uniform")
    served = {row["region"]: row["served"][0]["machine_region"] for row in catchment["regions"]}
    assert (served["nrt"], served["syd"]) == ("iad", "iad")  # nrt: lhr before the calibration
    assert "syd" not in served.values()
    machines = {m["id"]: m["started"] for m in catchment["machines"]}
    assert machines == {"web-lhr": True, "web-iad": True, "web-syd": False}


# --- what no daemon here can show: withdrawn PoPs, refused listeners --------------------------


def _answer(up: dict[str, bool]) -> dict[str, Any]:
    pops = [{"pop": "lhr", "rtt_ms": 4.5}, {"pop": "fra", "rtt_ms": 12.6}]
    landing = next((p["pop"] for p in pops if up[p["pop"]]), None)
    machine = {"machine_id": "m1", "region": "fra", "band": "below_soft"}
    return {
        "app": "web", "from": "lhr", "port": 80, "pop": landing,
        "pops": [{**p, "up": up[p["pop"]]} for p in pops],
        "strategy": "nearest", "panic": False, "reason": "nearest", "detail": "",
        "candidates": [
            {**machine, "rtt_ms": 4.5, "load": 3, "health": "passing", "ejected": False,
             "candidate": True, "why_not": ""},
        ],
        "chosen": machine,
    }  # fmt: skip


def test_route_text_marks_withdrawn_pops(capsys: pytest.CaptureFixture[str]) -> None:
    print_route(_answer({"lhr": False, "fra": True}), prefer="fra")
    out = capsys.readouterr().out
    assert out.startswith(
        "A client in lhr lands on PoP fra (the nearest PoP up, 12.6ms away; nearer lhr withdrawn)."
    )
    assert table_row(out, "lhr") == ["lhr", "4.5ms", "withdrawn"]
    assert table_row(out, "fra") == ["fra", "12.6ms", "up", "<-", "lands", "here"]
    assert "From PoP fra, port 80, strategy nearest, preferring fra:" in out

    print_route(_answer({"lhr": False, "fra": False}))
    out = capsys.readouterr().out
    assert out.startswith("A client in lhr reaches no PoP: every PoP is withdrawn.")
    assert out.rstrip().endswith("No machine is chosen: the client reaches no PoP.")


def test_status_text_shows_withdrawn_pops_and_listener_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = {
        "pops": [{"code": "lhr", "up": False}, {"code": "fra", "up": True}],
        "apps": [],
        "listeners": [
            {"address": "fd00::1", "port": 80, "app": None, "handlers": ["http"], "bound": True,
             "error": None, "connections": 2},
            {"address": "127.9.0.1", "port": 80, "bound": False, "error": "address in use"},
        ],
        "flows": [],
        "recent": [],
    }  # fmt: skip
    print_status(status)
    out = capsys.readouterr().out
    assert "PoPs up:        fra\nPoPs withdrawn: lhr\n" in out
    assert table_row(out, "[fd00::1]:80") == [
        "[fd00::1]:80", "(shared)", "http", "bound,", "2", "connection(s)",
    ]  # fmt: skip
    assert table_row(out, "127.9.0.1:80") == [
        "127.9.0.1:80", "-", "-", "error:", "address", "in", "use",
    ]  # fmt: skip
    assert "No apps." in out and "No machines." in out
