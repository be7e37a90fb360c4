"""What edgectl tells its user is true: no silent success, all-or-none, no checks shown as such.

Each test runs the real daemon and the real CLI. They are the oracle for "what edge tells
its user must be true" (issue 9): an allocation or deploy that leaves a listener unbound
says so and exits 3; the shared IPv4 is refused up front for raw TCP; a command with
several arguments checks them all before acting; a machine nothing checks says "no checks".
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, http_app, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


def tcp_app(name: str, regions: list[str]) -> tuple[dict[str, Any], int]:
    port = free_port()
    app = {
        "app": name,
        "primary_region": regions[0],
        "services": [{"internal_port": 7, "ports": [{"port": port, "handlers": []}]}],
        "machines": demo_machines(name, regions),
    }
    return app, port


def run(edge: EdgeProcess, *args: str) -> tuple[int, str, str]:
    result = edgectl(edge, *args)
    return result.returncode, result.stdout, result.stderr


def ips_of(edge: EdgeProcess, app: str) -> list[dict[str, Any]]:
    status, body = Api.admin(edge).get(f"/v1/apps/{app}/ip_assignments")
    assert status == 200, body
    return list(body["ips"])


def machines_of(edge: EdgeProcess, app: str) -> dict[str, dict[str, Any]]:
    status, body = Api.admin(edge).get(f"/v1/apps/{app}/machines")
    assert status == 200, body
    return {m["id"]: m for m in body["machines"]}


@contextmanager
def occupied(address: str, port: int) -> Iterator[None]:
    """Someone else listens on (address, port): the edge cannot bind it."""
    with socket.socket() as sock:
        sock.bind((address, port))
        sock.listen()
        yield


def next_address(address: str) -> str:
    head, _, last = address.rpartition(".")
    return f"{head}.{int(last) + 1}"


# --- the shared IPv4 and raw TCP: refused up front ----------------------------------------


def test_the_shared_ipv4_is_refused_for_an_app_with_raw_tcp_ports(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    echo, port = tcp_app("echo", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [echo]))
    rc, out, err = run(edge, "ips", "allocate-v4", "--shared", "-a", "echo")
    assert rc == 1, out
    assert err.startswith("Error: app 'echo' cannot use the shared IPv4")
    assert f"raw TCP port {port}," in err
    assert [ip["type"] for ip in ips_of(edge, "echo")] == ["v4"]  # nothing allocated
    status, body = Api.admin(edge).post("/v1/apps/echo/ip_assignments", {"type": "shared_v4"})
    assert status == 409, body


def test_a_deploy_adding_raw_tcp_to_an_app_on_the_shared_ipv4_is_refused(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, _, _ = http_app("web", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    rc, _, err = run(edge, "ips", "allocate-v4", "--shared", "-a", "web")
    assert rc == 0, err
    web["services"][0]["ports"].append({"port": free_port(), "handlers": []})
    app_file = tmp_path / "web.yaml"
    app_file.write_text(yaml.safe_dump(web))
    rc, _, err = run(edge, "deploy", "--config", str(app_file))
    assert rc == 1 and "cannot use the shared IPv4" in err, err
    _, app = Api.admin(edge).get("/v1/apps/web")
    assert [p["port"] for p in app["services"][0]["ports"]] == [
        p["port"] for p in web["services"][0]["ports"][:2]
    ]


# --- a listener left unbound: said, and exit 3 -------------------------------------------


def test_an_allocation_whose_listener_cannot_bind_says_so_and_exits_3(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, http_port, _ = http_app("web", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    first = ips_of(edge, "web")[0]["ip"]
    second = next_address(first)
    with occupied(second, http_port):
        rc, out, err = run(edge, "ips", "allocate-v4", "-a", "web")
    assert rc == 3, (out, err)
    assert second in out  # the allocation itself is shown: it was made
    assert "Not listening:" in out
    assert f"{second}:{http_port}: cannot listen on {second}:{http_port}" in out
    assert "address already in use" in out
    assert err.startswith("Warning: the change was made, but 1 listener(s) are not bound: ")


def test_a_deploy_whose_new_port_cannot_bind_says_so_and_exits_3(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, _, _ = http_app("web", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    address = ips_of(edge, "web")[0]["ip"]
    new_port = free_port()
    web["services"][0]["ports"].append({"port": new_port, "handlers": ["http"]})
    app_file = tmp_path / "web.yaml"
    app_file.write_text(yaml.safe_dump(web))
    with occupied(address, new_port):
        rc, out, err = run(edge, "deploy", "--config", str(app_file))
    assert rc == 3, (out, err)
    assert "services updated" in out
    assert f"{address}:{new_port}: cannot listen" in out and "not bound" in err
    rc, out, err = run(edge, "deploy", "--config", str(app_file), "--json")
    assert rc == 0, err  # bound now: the retry on the next change found the port free
    assert all(row["bound"] for row in json.loads(out)["listeners"])


# --- several arguments: all or none ------------------------------------------------------


def test_machines_stop_with_one_unknown_id_stops_none(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, _, _ = http_app("web", ["lhr", "iad"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    rc, out, err = run(edge, "machines", "stop", "-a", "web", "web-lhr", "bad", "worse")
    assert rc == 1, out
    assert err.strip() == (
        "Error: machine 'bad' not found in app 'web'; machine 'worse' not found in app 'web'; "
        "nothing was changed"
    )
    assert out == ""
    assert {m["state"] for m in machines_of(edge, "web").values()} == {"started"}
    rc, out, err = run(edge, "machines", "remove", "-a", "web", "web-iad", "nope")
    assert rc == 1 and "nothing was changed" in err
    assert set(machines_of(edge, "web")) == {"web-lhr", "web-iad"}
    rc, out, err = run(edge, "machines", "stop", "-a", "web", "web-lhr", "web-iad")
    assert rc == 0, err
    assert out.splitlines() == ["Machine web-lhr is now stopped", "Machine web-iad is now stopped"]
    rc, out, err = run(edge, "machines", "drain", "-a", "web", "web-lhr")
    assert rc == 1 and "'web-lhr' is stopped" in err


def test_ips_release_with_the_primary_among_them_releases_none(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, _, _ = http_app("web", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    primary = ips_of(edge, "web")[0]["ip"]
    rc, _, err = run(edge, "ips", "allocate-v4", "-a", "web")
    assert rc == 0, err
    second = ips_of(edge, "web")[1]["ip"]
    rc, out, err = run(edge, "ips", "release", "-a", "web", second, primary)
    assert rc == 1, out
    assert f"{primary} is the primary IP of app 'web'" in err
    assert err.rstrip().endswith("nothing was released")
    assert len(ips_of(edge, "web")) == 2
    rc, out, err = run(edge, "ips", "release", "-a", "web", second, "127.9.9.9")
    assert rc == 1 and "127.9.9.9 is not assigned to app 'web'" in err
    assert len(ips_of(edge, "web")) == 2
    rc, out, err = run(edge, "ips", "release", "-a", "web", second)
    assert rc == 0 and out.strip() == f"Successfully released IP address {second}"


# --- no checks is not "passing" ----------------------------------------------------------


def test_a_machine_without_checks_shows_no_checks_everywhere(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, _, _ = http_app("web", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    nothing_there = f"127.0.0.1:{free_port()}"
    rc, out, err = run(
        edge, "machines", "add", "-a", "web", "-r", "lhr", "--address", nothing_there, "--id", "x"
    )
    assert rc == 0, err
    machines = machines_of(edge, "web")
    assert {m["health"] for m in machines.values()} == {"no checks"}
    rc, out, _ = run(edge, "machines", "list", "-a", "web")
    row = next(line for line in out.splitlines() if line.startswith("x "))
    assert "no checks" in row and "passing" not in out
    rc, out, _ = run(edge, "checks", "list", "-a", "web")
    assert "x (lhr): no checks: it gets traffic, but nothing confirms that it listens" in out
    rc, out, _ = run(edge, "status", "-a", "web")
    assert "passing" not in out and out.count("no checks") == 2
    rc, out, _ = run(edge, "route", "-a", "web")
    assert "no checks" in out and "passing" not in out
    metrics = edge.get_text("/metrics")
    assert 'edge_machine_health{app="web",machine="x",region="lhr",state="no_checks"} 1.0' in (
        metrics
    )


# --- restart: the config's apps apply only when their entry changed ----------------------


def test_a_restart_on_the_same_config_keeps_the_api_changes(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, _, _ = http_app("web", ["lhr", "iad"])
    config = write_edge_config(tmp_path, [web])
    state_dir = tmp_path / "state"
    edge = edge_factory(config=config, state_dir=state_dir)
    assert run(edge, "machines", "stop", "-a", "web", "web-lhr")[0] == 0
    assert run(edge, "machines", "remove", "-a", "web", "web-iad")[0] == 0
    rc, _, err = run(edge, "machines", "add", "-a", "web", "-r", "syd", "--demo", "--id", "extra")
    assert rc == 0, err
    assert edge.terminate() == 0

    edge = edge_factory(config=config, state_dir=state_dir)
    machines = machines_of(edge, "web")
    assert set(machines) == {"web-lhr", "extra"}
    assert machines["web-lhr"]["state"] == "stopped"  # stopped by hand stays stopped
    assert "its config entry is unchanged since it was applied" in edge.log()

    # A deploy of an app the config declares says how long it lasts.
    web["machines"] = demo_machines("web", ["lhr"])
    app_file = tmp_path / "web.yaml"
    app_file.write_text(yaml.safe_dump(web))
    rc, out, err = run(edge, "deploy", "--config", str(app_file))
    assert rc == 0, err
    assert "Warning: app 'web' is also declared in the daemon's config file" in err
    rc, out, _ = run(edge, "apps", "show", "web")
    assert "declared in the daemon's config" in out
    assert edge.terminate() == 0

    # An edited entry wins for that app at the next start, and the log says so.
    web["machines"] = [{**m, "weight": 3} for m in demo_machines("web", ["lhr", "iad"])]
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(config.read_text()), "apps": [web]}, sort_keys=False)
    )
    edge = edge_factory(config=config, state_dir=state_dir)
    machines = machines_of(edge, "web")
    assert set(machines) == {"web-lhr", "web-iad"}
    assert {m["weight"] for m in machines.values()} == {3}
    assert machines["web-lhr"]["state"] == "started"  # its own entry changed (weight)
    assert "app web changed in the config: the config's entry replaced its state" in edge.log()

    # A machine stopped by hand whose own entry is unchanged stays stopped when another
    # part of the app's entry changes.
    assert run(edge, "machines", "stop", "-a", "web", "web-iad")[0] == 0
    assert edge.terminate() == 0
    web["machines"] = [*web["machines"], *demo_machines("web", ["syd"])]
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(config.read_text()), "apps": [web]}, sort_keys=False)
    )
    edge = edge_factory(config=config, state_dir=state_dir)
    machines = machines_of(edge, "web")
    assert set(machines) == {"web-lhr", "web-iad", "web-syd"}
    assert machines["web-iad"]["state"] == "stopped"
    assert machines["web-lhr"]["state"] == machines["web-syd"]["state"] == "started"


def test_passive_health_shows_next_to_no_checks(edge_factory: EdgeFactory, tmp_path: Path) -> None:
    web, http_port, _ = http_app("web", ["lhr"])
    web["machines"] = [{"id": "dead", "region": "lhr", "address": f"127.0.0.1:{free_port()}"}]
    edge = edge_factory(config=write_edge_config(tmp_path, [web]))
    address = ips_of(edge, "web")[0]["ip"]
    for _ in range(8):  # connects refused: passive health ejects the machine after 5
        try:
            urllib.request.urlopen(f"http://{address}:{http_port}/", timeout=5).close()
        except urllib.error.HTTPError as exc:
            assert exc.code in (502, 503)
    machine = machines_of(edge, "web")["dead"]
    assert machine["health"] == "no checks" and machine["ejected"]
    _, out, _ = run(edge, "machines", "list", "-a", "web")
    assert "no checks (ejected" in out
    _, out, _ = run(edge, "status", "-a", "web")
    assert "no checks, ejected" in out
    _, out, _ = run(edge, "checks", "list", "-a", "web")
    assert "dead (lhr): ejected by passive health for " in out


def test_metrics_of_a_removed_machine_and_a_destroyed_app_are_dropped(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, http_port, _ = http_app("web", ["lhr", "iad"])
    other, _, _ = http_app("other", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [web, other]))
    address = ips_of(edge, "web")[0]["ip"]
    for region in ("lhr", "iad"):
        request = urllib.request.Request(
            f"http://{address}:{http_port}/", headers={"Edge-Client-Region": region}
        )
        urllib.request.urlopen(request, timeout=5).close()
    metrics = edge.get_text("/metrics")
    assert 'edge_http_requests_total{app="web",code_class="2xx",machine="web-iad"' in metrics
    assert 'machine="web-iad",region="iad",state="no_checks"} 1.0' in metrics
    assert 'app="other"' in metrics
    assert run(edge, "machines", "remove", "-a", "web", "web-iad")[0] == 0
    assert run(edge, "apps", "destroy", "other", "--yes")[0] == 0
    metrics = edge.get_text("/metrics")
    assert 'machine="web-iad"' not in metrics  # neither its requests nor its health
    assert 'machine="web-lhr"' in metrics
    assert 'app="other"' not in metrics
    assert "_created" not in metrics
