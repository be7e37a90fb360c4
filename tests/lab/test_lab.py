"""A three-PoP anycast lab: BGP decides where clients land, latency is real, withdraws move them.

Runs as root with ip, BIRD and ping (CI installs them); everything lives in namespaces
named ``elabt-*`` that the fixture creates and removes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edge.lab.control import latency_model
from tests.lab.conftest import Lab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ANYCAST = "http://203.0.113.1:8080/"
MOVE_WITHIN = 10.0  # seconds: a withdraw must have moved the clients by then


def fly_region(lab: Lab, region: str) -> str | None:
    answer = lab.exec(region, "curl", "-s", "-m", "5", ANYCAST)
    if answer.returncode != 0:
        return None
    region_seen: str | None = json.loads(answer.stdout)["headers"].get("Fly-Region")
    return region_seen


def wait_for_pop(lab: Lab, region: str, pop: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if fly_region(lab, region) == pop:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"clients in {region} did not reach {pop} within {timeout}s")


def probe(lab: Lab, region: str, seconds: float) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "edge.lab.probe", "--url", ANYCAST, "--duration", str(seconds),
            "--interval", "0.05", "--timeout", "2"]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "edge.lab.cli", "exec", region, "--", *argv],
        stdout=subprocess.PIPE, text=True, env=lab.env,
    )  # fmt: skip


def records(process: subprocess.Popen[str]) -> list[dict[str, object]]:
    out, _ = process.communicate(timeout=120)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_each_client_reaches_its_own_pop(lab: Lab) -> None:
    assert all(p["mgmt"].startswith("198.19.") for p in lab.pops)  # not the default lab's
    for region in ("lhr", "iad", "syd"):
        assert fly_region(lab, region) == region
    status = lab.status()
    by_region = {c["region"]: c for c in status["clients"]}
    assert {r: c["pop"] for r, c in by_region.items()} == {
        "lhr": "lhr", "iad": "iad", "syd": "syd", "nrt": "syd"
    }  # fmt: skip
    assert status["anycast"][0]["address"] == "203.0.113.1"
    assert all(p["announced"] and p["edge_healthy"] for p in status["pops"])


def test_ping_to_a_far_pop_shows_the_modelled_rtt(lab: Lab) -> None:
    model, _ = latency_model()
    syd = next(p for p in lab.status()["pops"] if p["pop"] == "syd")
    answer = lab.exec("lhr", "ping", "-c", "6", "-i", "0.3", "-q", syd["unicast"])
    assert answer.returncode == 0, answer.stdout + answer.stderr
    match = re.search(r"= [\d.]+/([\d.]+)/", answer.stdout)
    assert match, answer.stdout
    measured = float(match.group(1)) / 1000
    expected = model.rtt("lhr", "syd")
    assert abs(measured - expected) <= 0.10 * expected, (measured, expected)


def test_a_withdraw_moves_the_region_and_the_loss_is_counted(lab: Lab) -> None:
    loop = probe(lab, "syd", 6.0)
    try:
        time.sleep(1.5)
        lab.run("edgectl", "syd", "--", "faults", "add", "withdraw", "--pop", "syd")
        moved = wait_for_pop(lab, "syd", "iad", MOVE_WITHIN)
    finally:
        seen = records(loop)
    summary = seen[-1]
    served = [r for r in seen[:-1] if r.get("ok")]
    assert {r["pop"] for r in served} <= {"syd", "iad"}
    assert any(r["pop"] == "iad" for r in served) and any(r["pop"] == "syd" for r in served)
    assert summary["ok"] == len(served)
    assert summary.get("failed", 0) <= 20  # a few during convergence, counted
    assert moved < MOVE_WITHIN
    clients = lab.status()["clients"]
    assert {c["region"]: c["pop"] for c in clients}["syd"] == "iad"
    assert all(c["pop"] == c["expected"] == c["model"] for c in clients)  # nearest policy
    lab.run("edgectl", "syd", "--", "faults", "restore", "--pop", "syd")
    wait_for_pop(lab, "syd", "syd", MOVE_WITHIN)


def test_a_killed_edge_node_withdraws_its_pop(lab: Lab) -> None:
    lab.run("node", "kill", "syd")
    wait_for_pop(lab, "syd", "iad", MOVE_WITHIN)
    pops = {p["pop"]: p for p in lab.status()["pops"]}
    assert not pops["syd"]["edge_healthy"] and not pops["syd"]["announced"]
    lab.run("node", "start", "syd")
    wait_for_pop(lab, "syd", "syd", 60)


def test_a_link_fault_adds_delay(lab: Lab) -> None:
    lab.run("fault", "client:lhr", "delay=+50ms")
    try:
        answer = lab.exec("lhr", "ping", "-c", "3", "-i", "0.2", "-q", "198.18.1.2")
        average = float(re.search(r"= [\d.]+/([\d.]+)/", answer.stdout).group(1))  # type: ignore[union-attr]
        assert average >= 100  # +50 ms each way on the client's link
    finally:
        lab.run("fault", "client:lhr", "clear")
    bad = lab.run("fault", "client:lhr", "loss=200%", check=False)
    assert bad.returncode == 1 and "between 0% and 100%" in bad.stderr


def allocate_ip(lab: Lab, pop: str) -> str:
    """A new IPv4 for the app, allocated through ``pop``'s node (the host reaches its API)."""
    node = next(p for p in lab.pops if p["pop"] == pop)
    token = Path(node["token_file"]).read_text(encoding="utf-8").strip()
    request = urllib.request.Request(
        f"{node['api_url']}/v1/apps/hello/ip_assignments", data=b'{"type": "v4"}', method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        address: str = json.loads(answer.read())["ip"]
    return address


def reaches_control_plane(lab: Lab, pop: str) -> bool:
    node = next(p for p in lab.pops if p["pop"] == pop)
    cp = node["mgmt"].rsplit(".", 1)[0] + ".2"
    probe = f"import socket; socket.create_connection(('{cp}', 5432), 2).close()"
    answer = subprocess.run(
        ["ip", "netns", "exec", f"{lab.prefix}-p-{pop}", sys.executable, "-c", probe],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return answer.returncode == 0


def test_a_pop_cut_from_the_control_plane_keeps_serving_and_catches_up(lab: Lab) -> None:
    assert reaches_control_plane(lab, "syd")
    lab.run("fault", "mgmt:syd", "partition")
    try:
        assert not reaches_control_plane(lab, "syd")
        added = allocate_ip(lab, "lhr")  # a change the syd node cannot hear about yet
        # Cut off, not dead: the PoP stays announced and serves from its last state.
        for _ in range(3):
            assert fly_region(lab, "syd") == "syd"
            time.sleep(1.0)
        assert {c["region"]: c["pop"] for c in lab.status()["clients"]}["syd"] == "syd"
    finally:
        lab.run("fault", "mgmt:syd", "clear")
    # Back in touch, the node applies what it missed: the new address answers in syd.
    deadline = time.monotonic() + 90
    while True:
        answer = lab.exec("syd", "curl", "-s", "-m", "3", f"http://{added}:8080/")
        if answer.returncode == 0 and '"Fly-Region":"syd"' in answer.stdout:
            break
        assert time.monotonic() < deadline, "the syd node did not catch up on the new address"
        time.sleep(0.5)
