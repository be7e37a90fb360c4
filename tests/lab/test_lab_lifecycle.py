"""``scripts/lab down`` leaves nothing behind, and ``up`` recovers from a half-finished ``up``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from edge.lab.netns import alive, host_links, namespaces, ns_pids
from tests.lab.conftest import Lab, require_lab

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PREFIX = "elabl"


def lab_processes(state: Path) -> list[int]:
    """Processes whose command line names the lab's state directory (nodes, BIRD, agents)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(state).encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_up_after_a_half_finished_up_then_down_leaves_nothing(lab_dir: Path) -> None:
    require_lab()
    lab = Lab(PREFIX, lab_dir)
    state = lab_dir / PREFIX
    try:
        # What a crashed up leaves: a few namespaces, the bridge, a state directory.
        subprocess.run(["ip", "netns", "add", f"{PREFIX}-r-lhr"], check=True)
        subprocess.run(["ip", "netns", "add", f"{PREFIX}-p-lhr"], check=True)
        subprocess.run(
            ["ip", "link", "add", "name", f"{PREFIX}-mgmt", "type", "bridge"], check=True
        )
        state.mkdir()
        (state / "lab.json").write_text("{broken", encoding="utf-8")
        lab.run("up", "--pops", "lhr,syd", "--clients", "lhr,syd")
        answer = lab.exec("syd", "curl", "-s", "-m", "5", "http://203.0.113.1:8080/")
        assert '"Fly-Region":"syd"' in answer.stdout
        assert lab_processes(state)
        started = [pid for ns in namespaces(PREFIX) for pid in ns_pids(ns)]
        assert len(started) >= 8  # wire, machine, BIRD x4, PostgreSQL or not, nodes, agents
    finally:
        down = lab.run("down", check=False)
    assert down.returncode == 0, down.stderr
    assert namespaces(PREFIX) == []
    assert host_links(PREFIX) == []
    assert lab_processes(state) == []
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in started if alive(pid)] == []
    assert not state.exists()
    again = lab.run("down")  # idempotent
    assert "nothing to remove" in again.stdout


def test_status_without_a_lab_says_so(tmp_path: Path) -> None:
    require_lab()
    answer = Lab("elabn", tmp_path).run("status", check=False)
    assert answer.returncode == 1
    assert "no lab is up" in answer.stderr and "scripts/lab up" in answer.stderr


def test_lab_refuses_without_root_with_the_reason() -> None:
    require_lab()
    script = Path(__file__).resolve().parents[2] / "scripts" / "lab"
    answer = subprocess.run(
        ["runuser", "-u", "nobody", "--", str(script), "up"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert answer.returncode == 2
    assert "needs root" in answer.stderr and "sudo" in answer.stderr


def test_up_refuses_a_management_network_in_use(lab_dir: Path) -> None:
    require_lab()
    from edge.lab.topology import mgmt_base

    taken = f"{mgmt_base('elabk')}.1/24"
    subprocess.run(["ip", "link", "add", "name", "elabq-clash", "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", taken, "dev", "elabq-clash"], check=True)
        answer = Lab("elabk", lab_dir).run("up", "--pops", "lhr", "--clients", "lhr", check=False)
    finally:
        subprocess.run(["ip", "link", "del", "elabq-clash"], check=False)
    assert answer.returncode == 1
    assert "already used by elabq-clash" in answer.stderr and "--prefix" in answer.stderr
    assert namespaces("elabk") == [] and host_links("elabk") == []


def test_netem_links_or_a_clear_refusal(lab_dir: Path) -> None:
    """``--links netem`` where the kernel has sch_netem; else a refusal that builds nothing."""
    require_lab()
    lab = Lab("elabn", lab_dir)
    try:
        answer = lab.run("up", "--pops", "lhr,syd", "--clients", "lhr,syd", "--links", "netem",
                         check=False)  # fmt: skip
        if "no sch_netem" in answer.stderr:
            assert answer.returncode == 1 and "--links wire" in answer.stderr
            assert namespaces("elabn") == [] and host_links("elabn") == []
            return
        assert answer.returncode == 0, answer.stderr
        syd = next(p for p in lab.status()["pops"] if p["pop"] == "syd")
        ping = lab.exec("lhr", "ping", "-c", "4", "-i", "0.3", "-q", syd["unicast"])
        assert " 0% packet loss" in ping.stdout, ping.stdout
        lab.run("fault", "lhr-syd", "delay=+50ms")
        slower = lab.exec("lhr", "ping", "-c", "3", "-i", "0.3", "-q", syd["unicast"])
        assert " 0% packet loss" in slower.stdout
    finally:
        lab.run("down", check=False)
