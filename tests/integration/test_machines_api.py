"""Machines and app files through the real daemon: edgectl deploy and edgectl machines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess
from tests.integration.edgeconf import write_edge_config

EdgeFactory = Callable[..., EdgeProcess]

ISSUE_APP_FILE = """\
app: my-cool-app
primary_region: lhr
services:
  - internal_port: 8080
    protocol: tcp
    concurrency: {type: requests, soft_limit: 20, hard_limit: 25}
    ports:
      - {port: PORT1, handlers: [http]}
      - {port: PORT2, handlers: [tls, http]}
      - {port: PORT3, handlers: []}
machines:
  - {region: lhr, address: "127.0.0.1:9001"}
  - {region: syd, address: "127.0.0.1:9002", weight: 2}
  - {region: iad, demo: true}
"""


@pytest.fixture
def edge(edge_factory: EdgeFactory, tmp_path: Path) -> EdgeProcess:
    return edge_factory(config=write_edge_config(tmp_path, []))


def app_file(tmp_path: Path, text: str = ISSUE_APP_FILE, name: str = "app.yaml") -> Path:
    from tests.integration.daemon import free_port

    for marker in ("PORT1", "PORT2", "PORT3"):
        text = text.replace(marker, str(free_port()))
    path = tmp_path / name
    path.write_text(text)
    return path


def ok(result: object) -> str:
    assert getattr(result, "returncode") == 0, getattr(result, "stderr")  # noqa: B009
    return str(getattr(result, "stdout"))  # noqa: B009


def test_deploy_the_issue_app_file_as_written(edge: EdgeProcess, tmp_path: Path) -> None:
    path = app_file(tmp_path)
    out = ok(edgectl(edge, "deploy", "--config", str(path)))
    assert out.splitlines()[0] == "Created app my-cool-app (org personal): 3 machine(s) added"
    assert out.splitlines()[1].split() == ["TYPE", "ADDRESS", "REGION", "CREATED"]

    machines = json.loads(ok(edgectl(edge, "machines", "list", "-a", "my-cool-app", "--json")))
    assert sorted((m["region"], m["weight"], m["demo"]) for m in machines) == [
        ("iad", 1, True),
        ("lhr", 1, False),
        ("syd", 2, False),
    ]
    demo = next(m for m in machines if m["demo"])
    assert demo["listening"] and demo["listening"][0].startswith("127.0.0.1:")

    again = ok(edgectl(edge, "deploy", "--config", str(path)))
    assert again == "App my-cool-app is already up to date\n"
    after = json.loads(ok(edgectl(edge, "machines", "list", "-a", "my-cool-app", "--json")))
    assert {m["id"] for m in after} == {m["id"] for m in machines}


def test_redeploy_updates_adds_and_removes(edge: EdgeProcess, tmp_path: Path) -> None:
    path = app_file(tmp_path)
    ok(edgectl(edge, "deploy", "--config", str(path)))
    text = path.read_text().replace("weight: 2", "weight: 5")
    text = text.replace('  - {region: lhr, address: "127.0.0.1:9001"}\n', "")
    text += "  - {region: nrt, demo: true}\n"
    path.write_text(text)
    out = ok(edgectl(edge, "deploy", "--config", str(path)))
    assert out.strip() == (
        "Deployed app my-cool-app (org personal): 1 machine(s) added, "
        "1 machine(s) updated, 1 machine(s) removed"
    )
    machines = Api.admin(edge).get("/v1/apps/my-cool-app/machines")[1]["machines"]
    assert sorted((m["region"], m["weight"]) for m in machines) == [
        ("iad", 1),
        ("nrt", 1),
        ("syd", 5),
    ]


def test_bad_app_file_is_rejected_with_yaml_paths(edge: EdgeProcess, tmp_path: Path) -> None:
    text = ISSUE_APP_FILE.replace("PORT1", "99999").replace("region: syd", "region: xyz")
    path = app_file(tmp_path, text)
    result = edgectl(edge, "deploy", "--config", str(path))
    assert result.returncode == 1
    assert "services[0].ports[0].port: must be between 1 and 65535" in result.stderr
    assert "machines[1].region: unknown region 'xyz'" in result.stderr
    assert Api.admin(edge).get("/v1/apps/my-cool-app")[0] == 404


def test_deploy_api_rejects_bad_bodies(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    status, body = api.call("PUT", "/v1/apps/web", {"app": "other", "primary_region": "lhr"})
    assert status == 400 and "URL names 'web'" in body["error"]
    status, body = api.call("PUT", "/v1/apps/web", {"primary_region": "lhr", "machines": [{}]})
    assert status == 400 and "machines[0].region: is required" in body["error"]
    assert api.call("PUT", "/v1/apps/web", raw=b"{")[0] == 400


def test_machines_add_start_stop_remove(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    api.post("/v1/apps", {"app_name": "web", "primary_region": "lhr"})
    added = ok(edgectl(edge, "machines", "add", "-a", "web", "-r", "syd", "--demo", "--json"))
    machine = json.loads(added)
    assert (machine["region"], machine["state"], machine["demo"]) == ("syd", "started", True)
    mid = machine["id"]
    assert len(mid) == 14
    assert (
        ok(edgectl(edge, "machines", "stop", "-a", "web", mid)) == f"Machine {mid} is now stopped\n"
    )
    assert api.get(f"/v1/apps/web/machines/{mid}")[1]["state"] == "stopped"
    ok(edgectl(edge, "machines", "start", "-a", "web", mid))
    external = ok(
        edgectl(edge, "machines", "add", "-a", "web", "-r", "lhr", "--address", "127.0.0.1:9")
    )
    assert "127.0.0.1:9" in external
    assert ok(edgectl(edge, "machines", "remove", "-a", "web", mid)) == f"Machine {mid} removed\n"
    assert api.get(f"/v1/apps/web/machines/{mid}")[0] == 404


def test_machine_input_errors(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    api.post("/v1/apps", {"app_name": "web"})
    both = edgectl(edge, "machines", "add", "-a", "web", "-r", "lhr", "--demo", "--address", "x:1")
    assert both.returncode == 1 and "either --address" in both.stderr
    for body, fragment in [
        ({"region": "zzz", "demo": True}, "unknown region 'zzz'"),
        ({"region": "lhr"}, "give either address"),
        ({"region": "lhr", "demo": True, "weight": "heavy"}, "weight"),
    ]:
        status, answer = api.post("/v1/apps/web/machines", body)
        assert status == 400 and fragment in answer["error"], body
    assert api.post("/v1/apps/web/machines/nope/stop")[0] == 404
    missing = edgectl(edge, "machines", "list", "-a", "ghost")
    assert missing.returncode == 1 and "app 'ghost' not found" in missing.stderr


def test_machines_of_another_org_are_invisible(edge: EdgeProcess) -> None:
    admin = Api.admin(edge)
    token = admin.post("/v1/orgs", {"slug": "acme"})[1]["token"]
    other = Api(edge.url, admin.post("/v1/orgs", {"slug": "globex"})[1]["token"])
    acme = Api(edge.url, token)
    acme.post("/v1/apps", {"app_name": "secret"})
    mid = acme.post("/v1/apps/secret/machines", {"region": "lhr", "demo": True})[1]["id"]
    for method, path, body in [
        ("GET", "/v1/apps/secret/machines", None),
        ("POST", "/v1/apps/secret/machines", {"region": "lhr", "demo": True}),
        ("GET", f"/v1/apps/secret/machines/{mid}", None),
        ("POST", f"/v1/apps/secret/machines/{mid}/stop", {}),
        ("DELETE", f"/v1/apps/secret/machines/{mid}", None),
        ("PUT", "/v1/apps/secret", {"primary_region": "lhr"}),
    ]:
        assert other.call(method, path, body)[0] == 404, (method, path)


def test_operator_states_and_their_bad_input(edge: EdgeProcess) -> None:
    api = Api.admin(edge)
    api.post("/v1/apps", {"app_name": "web"})
    mid = api.post("/v1/apps/web/machines", {"region": "lhr", "demo": True})[1]["id"]
    status, body = api.post(f"/v1/apps/web/machines/{mid}/admin", {"state": "drain"})
    assert status == 409 and "no service" in body["error"]  # nothing routes to it
    from tests.integration.daemon import free_port

    service = {"internal_port": 8080, "ports": [{"port": free_port(), "handlers": ["http"]}]}
    app_file = {
        "primary_region": "lhr",
        "services": [service],
        "machines": [{"id": mid, "region": "lhr", "demo": True}],
    }
    assert api.call("PUT", "/v1/apps/web", app_file)[0] == 200
    status, body = api.post(f"/v1/apps/web/machines/{mid}/admin", {"state": "sleepy"})
    assert status == 400 and body["error"].startswith("state:")
    assert (
        api.post(f"/v1/apps/web/machines/{mid}/admin", {"state": "drain"})[1]["health"] == "drain"
    )
    assert (
        api.post(f"/v1/apps/web/machines/{mid}/admin", {"state": "ready"})[1]["health"] != "drain"
    )
    assert api.post("/v1/apps/web/machines/nope/admin", {"state": "maint"})[0] == 404
