"""Process machines: edge runs the app's own command (a real Python server per test)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess
from tests.integration.edgeconf import write_edge_config
from tests.integration.process_apps import (
    alive,
    get,
    machine,
    machine_network,
    primary_ip,
    process_app,
    process_machine,
    wait_for,
    wait_process_state,
    write_server,
)

Factory = Callable[..., EdgeProcess]


def start(
    edge_factory: Factory, tmp_path: Path, apps: list[dict[str, Any]], **edge: Any
) -> tuple[EdgeProcess, Api]:
    config = write_edge_config(tmp_path, apps, machine_network=machine_network(), **edge)
    daemon = edge_factory(config=config)
    return daemon, Api.admin(daemon)


def test_a_command_machine_starts_on_deploy_with_the_platform_environment(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    machines = [
        process_machine(server, "web-lhr-1", "lhr", env={"EXTRA": "yes"}, workdir=str(workdir)),
        process_machine(server, "web-lhr-2", "lhr"),
    ]
    app, port = process_app("web", machines)
    edge, api = start(edge_factory, tmp_path, [app])
    one = wait_process_state(api, "web", "web-lhr-1", "started")
    wait_process_state(api, "web", "web-lhr-2", "started")
    ip = primary_ip(api, "web")
    status, body = get(ip, port, "/?f=1")
    assert status == 200
    assert {k: body[k] for k in ("FLY_APP_NAME", "FLY_REGION", "PRIMARY_REGION", "PORT")} == {
        "FLY_APP_NAME": "web",
        "FLY_REGION": "lhr",
        "PRIMARY_REGION": "lhr",
        "PORT": "8080",
    }
    assert body["FLY_MACHINE_ID"] in ("web-lhr-1", "web-lhr-2")
    assert body["FLY_ALLOC_ID"] == body["FLY_MACHINE_ID"]
    assert body["FLY_PUBLIC_IP"] == ip
    assert body["FLY_PROCESS_GROUP"] == "app"
    # Each machine has its own loopback address, at the same internal port.
    two = machine(api, "web", "web-lhr-2")
    assert one["process"]["private_ip"] != two["process"]["private_ip"]
    assert one["listening"] == [f"{one['process']['private_ip']}:8080"]
    # The one with env and workdir got both.
    seen: dict[str, dict[str, Any]] = {}
    wait_for("both machines to answer", lambda: _collect(seen, ip, port) >= 2)
    first = seen["web-lhr-1"]
    assert first["EXTRA"] == "yes" and first["cwd"] == str(workdir)
    assert first["FLY_PRIVATE_IP"] == one["process"]["private_ip"]
    assert "EXTRA" not in seen["web-lhr-2"]
    # edgectl ips private: ID, REGION, IP, as flyctl ips private.
    listed = edgectl(edge, "ips", "private", "-a", "web", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"]: r["ip"] for r in json.loads(listed.stdout)} == {
        "web-lhr-1": one["process"]["private_ip"],
        "web-lhr-2": two["process"]["private_ip"],
    }
    table = edgectl(edge, "ips", "private", "-a", "web")
    assert table.stdout.split()[:3] == ["ID", "REGION", "IP"]


def _collect(seen: dict[str, dict[str, Any]], ip: str, port: int) -> int:
    status, body = get(ip, port)
    if status == 200:
        seen[body["FLY_MACHINE_ID"]] = body
    return len(seen)


def test_logs_are_kept_per_machine_for_the_cli_and_the_api(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    app, port = process_app("logs", [process_machine(server, "logs-1", "lhr")])
    edge, api = start(edge_factory, tmp_path, [app])
    wait_process_state(api, "logs", "logs-1", "started")
    assert get(primary_ip(api, "logs"), port, "/hello")[0] == 200
    status, body = api.get("/v1/apps/logs/machines/logs-1/logs")
    assert status == 200
    lines = [(x["stream"], x["line"]) for x in body["logs"]]
    assert ("stdout", "booting logs-1") in lines
    assert ("stderr", "a line on stderr") in lines
    wait_for(
        "the request's log line",
        lambda: "served /hello" in edgectl(edge, "logs", "-a", "logs").stdout,
    )
    # Following: only what comes after next_since.
    since = api.get("/v1/apps/logs/logs")[1]["next_since"]
    get(primary_ip(api, "logs"), port, "/again")
    later = wait_for(
        "a new line",
        lambda: api.get(f"/v1/apps/logs/logs?since={since}")[1]["logs"],
    )
    assert all(x["seq"] > since for x in later)
    as_json = edgectl(edge, "logs", "-a", "logs", "--machine", "logs-1", "--json")
    assert as_json.returncode == 0
    first = json.loads(as_json.stdout.splitlines()[0])
    assert first["machine_id"] == "logs-1" and "seq" in first
    # The file in STATE_DIR has them too.
    text = (edge.state_dir / "machines" / "logs" / "logs-1.log").read_text()
    assert "booting logs-1" in text and "[stderr] a line on stderr" in text
    missing = api.get("/v1/apps/logs/machines/nope/logs")
    assert missing[0] == 404
    assert api.get("/v1/apps/logs/logs?since=x")[0] == 400


def test_restart_policies(edge_factory: Factory, tmp_path: Path) -> None:
    server = write_server(tmp_path)
    retry = {"policy": "on-failure", "max_retries": 2}
    app, _ = process_app(
        "crashy",
        [
            process_machine(server, "fails", "lhr", "--exit", "3", restart=retry),
            process_machine(
                server, "clean", "lhr", "--exit-after", "0.5", restart={"policy": "no"}
            ),
            process_machine(
                server, "again", "lhr", "--exit-after", "0.7", restart={"policy": "always"}
            ),
        ],
    )
    edge, api = start(edge_factory, tmp_path, [app])
    failed = wait_process_state(api, "crashy", "fails", "failed", timeout=30)
    assert "exited with code 3 before it was ready" in failed["process"]["error"]
    assert "exiting with 3" in failed["process"]["error"]  # its last lines of output
    assert failed["process"]["restarts"] == 2
    wait_for("the failed machine to be stopped in the store",
             lambda: machine(api, "crashy", "fails")["state"] == "stopped")  # fmt: skip
    events = edgectl(edge, "machines", "status", "-a", "crashy", "fails")
    assert events.returncode == 0, events.stderr
    assert "exited code=3" in events.stdout and "restarting code=3" in events.stdout
    listed = json.loads(edgectl(edge, "machines", "status", "-a", "crashy", "fails", "-j").stdout)
    kinds = [(e["kind"], e["exit_code"]) for e in reversed(listed["events"])]
    assert kinds.count(("exited", 3)) == 3
    assert kinds.count(("restarting", 3)) == 2
    assert kinds[0] == ("created", None) and ("failed", 3) in kinds
    # restart: no -> a clean exit is a stopped machine, and stays stopped.
    wait_for("the clean one to stop",
             lambda: machine(api, "crashy", "clean")["state"] == "stopped")  # fmt: skip
    assert machine(api, "crashy", "clean")["process"]["restarts"] == 0
    # restart: always -> started again after a clean exit, with backoff.
    wait_for(
        "a restart of the always one",
        lambda: machine(api, "crashy", "again")["process"]["restarts"] >= 2,
        timeout=30,
    )
    assert machine(api, "crashy", "again")["state"] == "started"
    metrics = edge.get_text("/metrics")
    assert 'edge_machine_exits_total{app="crashy",outcome="failed",region="lhr"}' in metrics


def test_stop_uses_kill_signal_then_sigkill_after_kill_timeout(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    stubborn = process_machine(server, "stubborn", "lhr", "--ignore-sigint", kill_timeout="1s")
    polite = process_machine(server, "polite", "lhr")
    app, _ = process_app("kill", [stubborn, polite])
    edge, api = start(edge_factory, tmp_path, [app])
    pid = wait_process_state(api, "kill", "stubborn", "started")["process"]["pid"]
    polite_pid = wait_process_state(api, "kill", "polite", "started")["process"]["pid"]
    began = time.monotonic()
    stopped = edgectl(edge, "machines", "stop", "-a", "kill", "stubborn")
    assert stopped.returncode == 0, stopped.stderr
    wait_for("the stubborn process to be killed", lambda: not alive(pid))
    assert time.monotonic() - began >= 1.0  # SIGINT was ignored: SIGKILL after kill_timeout
    status = edgectl(edge, "machines", "status", "-a", "kill", "stubborn").stdout
    assert "stopped code=-9" in status
    logs = edgectl(edge, "logs", "-a", "kill", "--machine", "stubborn").stdout
    assert "after SIGINT: SIGKILL" in logs
    # The polite one stops on SIGINT at once; restart gives it a new process.
    restarted = edgectl(edge, "machines", "restart", "-a", "kill", "polite")
    assert restarted.returncode == 0, restarted.stderr
    assert not alive(polite_pid)  # restart waits for the old process to end
    again = wait_process_state(api, "kill", "polite", "started")
    assert again["process"]["pid"] != polite_pid
    # Start brings the stubborn one back.
    assert edgectl(edge, "machines", "start", "-a", "kill", "stubborn").returncode == 0
    wait_process_state(api, "kill", "stubborn", "started")


def test_edge_leaves_no_machine_running_after_sigterm_or_sigkill(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    app, _ = process_app("orphans", [process_machine(server, "o-1", "lhr", "--ignore-sigint",
                                                     kill_timeout="1s")])  # fmt: skip
    edge, api = start(edge_factory, tmp_path, [app])
    pid = wait_process_state(api, "orphans", "o-1", "started")["process"]["pid"]
    edge.proc.send_signal(signal.SIGKILL)
    edge.proc.wait(timeout=10)
    wait_for("the machine to die with edge", lambda: not alive(pid), timeout=10)
    # And a clean stop (SIGTERM) stops every machine within drain + kill_timeout.
    again = edge_factory(config=tmp_path / "edge.yaml", state_dir=edge.state_dir)
    api = Api.admin(again)
    pid = wait_process_state(api, "orphans", "o-1", "started")["process"]["pid"]
    began = time.monotonic()
    assert again.terminate(timeout=20) == 0
    assert time.monotonic() - began < 5 + 1 + 3
    assert not alive(pid)


def test_a_machine_that_cannot_start_is_an_error_never_a_hang(
    edge_factory: Factory, tmp_path: Path
) -> None:
    server = write_server(tmp_path)
    missing = {"id": "missing", "region": "lhr", "command": ["no-such-binary-edge-test", "x"]}
    silent = process_machine(server, "silent", "lhr", "--no-listen", start_timeout="1s",
                             restart={"policy": "no"})  # fmt: skip
    app, _ = process_app("broken", [missing, silent])
    _, api = start(edge_factory, tmp_path, [app])
    gone = wait_process_state(api, "broken", "missing", "failed")
    assert (
        "command not found or not executable: no-such-binary-edge-test" in gone["process"]["error"]
    )
    quiet = wait_process_state(api, "broken", "silent", "failed", timeout=15)
    error = quiet["process"]["error"]
    assert "waking the machine timed out: it did not accept connections on" in error
    assert "within start_timeout 1s" in error
    assert "booting silent" in error  # the last lines of its output
    assert quiet["health"] in ("stopped", "failed")


def test_bad_process_machines_are_rejected_with_the_yaml_path(
    edge_factory: Factory, tmp_path: Path
) -> None:
    edge, _ = start(edge_factory, tmp_path, [])
    cases = {
        "both": (
            {"address": "127.0.0.1:9", "command": "true"},
            "machines[0]",
            "address and command",
        ),
        "signal": (
            {"command": "true", "kill_signal": "SIGFOO"},
            "machines[0].kill_signal",
            "SIGINT",
        ),
        "timeout": ({"command": "true", "kill_timeout": "10m"}, "machines[0].kill_timeout", "300"),
        "env": ({"command": "true", "env": {"A=B": "x"}}, "machines[0]", "not a valid variable"),
    }
    for name, (fields, path, words) in cases.items():
        spec = {"app": f"bad-{name}", "primary_region": "lhr",
                "machines": [{"region": "lhr", **fields}]}  # fmt: skip
        file = tmp_path / f"{name}.yaml"
        file.write_text(json.dumps(spec))
        result = edgectl(edge, "deploy", "-c", str(file))
        assert result.returncode == 1, (name, result.stdout)
        assert path in result.stderr and words in result.stderr, (name, result.stderr)


def test_deploy_resolves_a_command_machine_relative_to_the_app_file(
    edge_factory: Factory, tmp_path: Path
) -> None:
    write_server(tmp_path)
    edge, api = start(edge_factory, tmp_path, [])
    app, port = process_app("rel", [{"id": "rel-1", "region": "lhr",
                                     "command": f"{os.sys.executable} server.py"}])  # fmt: skip
    file = tmp_path / "fly.yaml"
    file.write_text(json.dumps(app))
    deployed = edgectl(edge, "deploy", "-c", str(file))
    assert deployed.returncode == 0, deployed.stderr
    wait_process_state(api, "rel", "rel-1", "started")
    status, body = get(primary_ip(api, "rel"), port)
    assert status == 200 and body["cwd"] == str(tmp_path)


def test_only_the_admin_may_run_a_command(edge_factory: Factory, tmp_path: Path) -> None:
    edge, admin = start(edge_factory, tmp_path, [])
    status, body = admin.post("/v1/orgs", {"slug": "acme"})
    assert status == 201, body
    org = Api(edge.url, body["token"])
    spec = {"app": "mine", "org": "acme", "primary_region": "lhr",
            "machines": [{"region": "lhr", "command": "sleep 1000"}]}  # fmt: skip
    status, body = org.call("PUT", "/v1/apps/mine", spec)
    assert status == 403 and "admin token" in body["error"]
    assert org.get("/v1/apps/mine")[0] == 404  # nothing was created
    spec["machines"] = [{"region": "lhr", "demo": True}]
    assert org.call("PUT", "/v1/apps/mine", spec)[0] == 201
    # Adding one machine takes an address or demo only: commands come with app files.
    added = admin.post("/v1/apps/mine/machines", {"region": "lhr", "command": "sleep 1000"})
    assert added[0] == 400
