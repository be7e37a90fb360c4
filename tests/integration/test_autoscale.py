"""Scale to zero with process machines: autostop when idle, autostart on traffic."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.api import Api, edgectl
from tests.integration.daemon import ROOT, EdgeProcess
from tests.integration.edgeconf import write_edge_config
from tests.integration.process_apps import (
    alive,
    get,
    machine,
    machine_network,
    metric,
    primary_ip,
    proc_state,
    process_app,
    process_machine,
    wait_for,
    wait_process_state,
    write_server,
)

Factory = Callable[..., EdgeProcess]


def start(
    edge_factory: Factory, tmp_path: Path, apps: list[dict[str, Any]], interval: str = "1s"
) -> tuple[EdgeProcess, Api]:
    config = write_edge_config(
        tmp_path, apps, machine_network=machine_network(), autostop_interval=interval
    )
    daemon = edge_factory(config=config)
    return daemon, Api.admin(daemon)


def stored_state(api: Api, app: str, machine_id: str) -> str:
    return str(machine(api, app, machine_id)["state"])


def test_an_idle_machine_is_stopped_and_the_first_request_starts_it_and_waits(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    app, port = process_app(
        "zero",
        [process_machine(server, "zero-lhr-1", "lhr", "--slow-start", "0.3")],
        auto_stop_machines="stop",
    )
    edge, api = start(edge_factory, tmp_path, [app])
    pid = wait_process_state(api, "zero", "zero-lhr-1", "started")["process"]["pid"]
    wait_for("autostop", lambda: stored_state(api, "zero", "zero-lhr-1") == "stopped", edge=edge)
    wait_for("the process to end", lambda: not alive(pid))
    stopped = machine(api, "zero", "zero-lhr-1")
    assert stopped["state_reason"].startswith("stopped by autostop: no load")
    status = edgectl(edge, "status")
    assert "stopped by autostop" in status.stdout
    # The first request finds no started machine: it starts one and waits for it.
    code, body = get(primary_ip(api, "zero"), port)
    assert code == 200 and body["FLY_MACHINE_ID"] == "zero-lhr-1"
    assert stored_state(api, "zero", "zero-lhr-1") == "started"
    route = json.loads(edgectl(edge, "route", "-a", "zero", "--json").stdout)
    cold = route["last_cold_start"]
    assert cold["machine_id"] == "zero-lhr-1" and cold["waiters"] == 1
    assert cold["waited_ms"] >= 300  # the server sleeps 0.3 s before it listens
    # The text rounds to whole milliseconds, waited_ms to tenths: they agree within one.
    words = cold["text"].split()
    assert words[0] == "waited" and " ".join(words[2:]) == "ms for zero-lhr-1 to start"
    assert abs(int(words[1]) - cold["waited_ms"]) <= 1
    shown = edgectl(edge, "route", "-a", "zero").stdout
    assert "Cold start: waited" in shown
    assert metric(edge, 'edge_machine_cold_start_seconds_count{app="zero",region="lhr"}') == 1
    assert "cold start: waited" in edge.log()
    events = json.loads(
        edgectl(edge, "machines", "status", "-a", "zero", "zero-lhr-1", "-j").stdout
    )
    details = [e["detail"] for e in events["events"] if e["kind"] == "start"]
    assert any(d.startswith("by autostart") for d in details)


def test_a_burst_of_requests_starts_one_machine(edge_factory: Factory, tmp_path: Path) -> None:
    server = write_server(tmp_path)
    machines = [
        process_machine(server, f"burst-{n}", "lhr", "--slow-start", "0.5", state="stopped")
        for n in (1, 2)
    ]
    app, port = process_app("burst", machines)
    edge, api = start(edge_factory, tmp_path, [app], interval="10m")
    ip = primary_ip(api, "burst")
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: get(ip, port), range(12)))
    assert [code for code, _ in answers] == [200] * 12
    assert {body["FLY_MACHINE_ID"] for _, body in answers} == {"burst-1"}
    states = {m: stored_state(api, "burst", m) for m in ("burst-1", "burst-2")}
    assert states == {"burst-1": "started", "burst-2": "stopped"}
    events = json.loads(edgectl(edge, "machines", "status", "-a", "burst", "burst-1", "-j").stdout)
    assert [e["kind"] for e in events["events"]].count("launched") == 1
    assert metric(edge, 'edge_autostart_requests_total{app="burst",outcome="started"}') == 12


def test_autostop_never_goes_below_min_machines_running(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    machines = [process_machine(server, f"min-{n}", "lhr") for n in (1, 2, 3)]
    machines.append(process_machine(server, "min-syd", "syd"))
    app, _ = process_app("min", machines, auto_stop_machines="stop", min_machines_running=1)
    edge, api = start(edge_factory, tmp_path, [app])
    for machine_id in ("min-1", "min-2", "min-3", "min-syd"):
        wait_process_state(api, "min", machine_id, "started")

    def states() -> dict[str, str]:
        return {m["id"]: m["state"] for m in api.get("/v1/apps/min/machines")[1]["machines"]}

    # One per region per pass: lhr goes 3 -> 2 -> 1 and stays; syd (not primary) goes to 0.
    wait_for("autostop to reach the floor",
             lambda: sorted(states().values()).count("stopped") == 3, edge=edge)  # fmt: skip
    lhr = [s for m, s in states().items() if m != "min-syd"]
    assert lhr.count("started") == 1 and states()["min-syd"] == "stopped"
    wait_for("the metric", lambda: metric(edge, "edge_autostop_machines_total") == 3)
    time.sleep(2.5)  # two more passes of the 1 s loop: the last lhr machine stays
    assert sorted(states().values()).count("started") == 1
    assert metric(edge, "edge_autostop_machines_total") == 3


def test_suspend_freezes_the_process_and_a_request_resumes_it(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    app, port = process_app(
        "frozen", [process_machine(server, "ice-1", "lhr")], auto_stop_machines="suspend"
    )
    edge, api = start(edge_factory, tmp_path, [app])
    pid = wait_process_state(api, "frozen", "ice-1", "started")["process"]["pid"]
    wait_for("suspend", lambda: stored_state(api, "frozen", "ice-1") == "suspended", edge=edge)
    frozen = wait_process_state(api, "frozen", "ice-1", "suspended")
    assert frozen["health"] == "suspended"
    assert proc_state(pid) == "T"  # stopped by SIGSTOP, memory kept
    code, body = get(primary_ip(api, "frozen"), port)
    assert code == 200 and body["pid"] == pid  # the same process, resumed
    assert proc_state(pid) in ("S", "R")
    assert stored_state(api, "frozen", "ice-1") == "started"


def test_without_auto_start_a_stopped_machine_stays_stopped(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    app, port = process_app(
        "nostart",
        [process_machine(server, "ns-1", "lhr", state="stopped")],
        auto_start_machines=False,
    )
    _, api = start(edge_factory, tmp_path, [app], interval="10m")
    code, text = get(primary_ip(api, "nostart"), port)
    assert code == 503 and "auto_start_machines is off" in text
    assert stored_state(api, "nostart", "ns-1") == "stopped"


def test_a_machine_that_fails_to_start_answers_waiting_requests_with_the_reason(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    app, port = process_app(
        "nostart2",
        [
            process_machine(
                server, "bad-1", "lhr", "--exit", "4", state="stopped", restart={"policy": "no"}
            )
        ],
    )
    _, api = start(edge_factory, tmp_path, [app], interval="10m")
    code, text = get(primary_ip(api, "nostart2"), port)
    assert code == 503
    assert "PM08" in text and "failed to start" in text


def test_a_tcp_connection_waits_for_the_start_too(edge_factory: Factory, tmp_path: Path) -> None:
    server = write_server(tmp_path)
    app, port = process_app(
        "rawtcp", [process_machine(server, "tcp-1", "lhr", "--slow-start", "0.3", state="stopped")]
    )
    app["services"][0]["ports"] = [{"port": port}]  # raw TCP: no http handler
    _, api = start(edge_factory, tmp_path, [app], interval="10m")
    with socket.create_connection((primary_ip(api, "rawtcp"), port), timeout=20) as sock:
        sock.sendall(b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"FLY_MACHINE_ID": "tcp-1"' in answer
    assert stored_state(api, "rawtcp", "tcp-1") == "started"


def test_a_start_that_times_out_answers_with_pm03(edge_factory: Factory, tmp_path: Path) -> None:
    server = write_server(tmp_path)
    machines = [
        process_machine(server, "slow-1", "lhr", "--no-listen", state="stopped",
                        start_timeout="1s", restart={"policy": "no"})
    ]  # fmt: skip
    app, port = process_app("slowstart", machines)
    _, api = start(edge_factory, tmp_path, [app], interval="10m")
    began = time.monotonic()
    code, text = get(primary_ip(api, "slowstart"), port)
    assert code == 503 and "PM03" in text and "within start_timeout 1s" in text, text
    assert 1.0 <= time.monotonic() - began < 10  # it waited for the start, then gave up
    assert machine(api, "slowstart", "slow-1")["process"]["state"] == "failed"


def test_logs_follow_prints_new_lines(edge_factory: Factory, tmp_path: Path) -> None:
    server = write_server(tmp_path)
    app, port = process_app("follow", [process_machine(server, "f-1", "lhr")])
    edge, api = start(edge_factory, tmp_path, [app], interval="10m")
    wait_process_state(api, "follow", "f-1", "started")
    env = {**os.environ, "EDGE_API_URL": edge.url, "EDGE_STATE_DIR": str(edge.state_dir)}
    command = [sys.executable, "-m", "edge.cli.edgectl", "logs", "-a", "follow", "-f"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT) as tail:
        try:
            assert tail.stdout is not None
            assert "[edge] launched" in tail.stdout.readline()
            get(primary_ip(api, "follow"), port, "/followed")
            for _ in range(20):
                if "served /followed" in tail.stdout.readline():
                    break
            else:
                raise AssertionError("the new line did not come")
        finally:
            tail.kill()
