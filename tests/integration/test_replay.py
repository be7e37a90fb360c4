"""fly-replay, region aliases and port response policies through the real daemon.

One daemon serves every test of the module. Its machines are real HTTP servers in this
process (``replay_backend``) that answer fly-replay when a request header asks them to.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import unique_pool
from tests.integration.replay_backend import replay_backends, unreachable_port

MACHINES = ["db-lhr", "db-iad", "db-syd", "other-nrt", "foreign-nrt", "styled-lhr"]


def _app(name: str, org: str, machines: list[tuple[str, str, int]], **port: Any) -> dict[str, Any]:
    return {
        "app": name,
        "org": org,
        "primary_region": machines[0][1],
        "services": [
            {
                "internal_port": 8080,
                "retries": 1,
                "timeout": "3s",  # for the answer; also how long a replay waits for a body
                "ports": [{"port": PORT, "handlers": ["http"], **port}],
            }
        ],
        "machines": [
            {"id": mid, "region": region, "address": f"127.0.0.1:{p}"}
            for mid, region, p in machines
        ],
    }


PORT = free_port()


class Setup:
    def __init__(self, edge: EdgeProcess, ips: dict[str, str]) -> None:
        self.edge = edge
        self.ips = ips


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp_path: Path = tmp_path_factory.mktemp("replay")
    with replay_backends(MACHINES) as ports, unreachable_port() as hanging:
        closed = free_port()  # nothing listens there: connects are refused
        db = [("db-lhr", "lhr", ports["db-lhr"]), ("db-iad", "iad", ports["db-iad"])]
        db += [("db-syd", "syd", ports["db-syd"]), ("db-hang", "ord", hanging)]
        db += [("db-dead", "ord", closed)]
        session = {"path_prefix": "/s/", "ttl_seconds": 30, "type": "cookie", "name": "session"}
        styled = {
            "response": {
                "headers": {"X-Frame-Options": "DENY", "X-Served-By": False, "X-Multi": ["a", "b"]},
                "pristine": True,
            },
            "idle_timeout": 1,
        }
        pool, shared = unique_pool()
        config = {
            "edge": {"pops": ["lhr", "iad", "syd", "nrt"], "local_region": "lhr"},
            "ipam": {"pools": {"v4": [pool]}, "shared_v4": shared},
            "http": {"replay_buffer": 65536},
            "drain_timeout": "2s",
            "orgs": [{"slug": "acme"}],
            "apps": [
                _app("db", "personal", db, http_options={"replay_cache": [session]}),
                _app("other", "personal", [("other-nrt", "nrt", ports["other-nrt"])]),
                _app("foreign", "acme", [("foreign-nrt", "nrt", ports["foreign-nrt"])]),
                _app(
                    "styled",
                    "personal",
                    [("styled-lhr", "lhr", ports["styled-lhr"])],
                    http_options=styled,
                ),
            ],
        }
        path = tmp_path / "edge.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        edge = start_edge(tmp_path, config=path)
        try:
            api = Api.admin(edge)
            ips = {
                app: api.get(f"/v1/apps/{app}/ip_assignments")[1]["ips"][0]["ip"]
                for app in ("db", "styled")
            }
            yield Setup(edge, ips)
        finally:
            edge.kill()


def request(
    setup: Setup,
    path: str = "/",
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
    app: str = "db",
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection(setup.ips[app], PORT, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        try:
            return response.status, found, json.loads(data)
        except ValueError:
            return response.status, found, data.decode(errors="replace")
    finally:
        conn.close()


# --- the header form ------------------------------------------------------------------------


def test_no_replay_reaches_the_nearest_machine(setup: Setup) -> None:
    status, _, body = request(setup)
    assert status == 200 and body["machine"] == "db-lhr"
    assert "fly-replay-src" not in body["headers"]


def test_replay_to_a_region_delivers_the_original_request_there(setup: Setup) -> None:
    status, headers, body = request(
        setup, "/orders?x=1", {"X-Replay-On-db-lhr": "region=iad;state=step1"}, "POST", b"{}"
    )
    assert status == 200
    assert body["machine"] == "db-iad"
    assert (body["method"], body["path"], body["body_bytes"]) == ("POST", "/orders?x=1", 2)
    src = dict(p.split("=", 1) for p in body["headers"]["fly-replay-src"].split(";"))
    assert (src["instance"], src["region"], src["state"]) == ("db-lhr", "lhr", "step1")
    assert abs(int(src["t"]) / 1e6 - time.time()) < 60
    assert body["headers"]["fly-replay-cache-status"] == "miss"
    assert "fly-replay" not in headers  # the replay answer never reaches the client


def test_replay_to_an_instance(setup: Setup) -> None:
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": "instance=db-syd"})
    assert body["machine"] == "db-syd"


def test_replay_elsewhere_excludes_the_replaying_machine(setup: Setup) -> None:
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": "elsewhere=true"})
    assert body["machine"] in ("db-iad", "db-syd")


def test_a_quoted_region_list_is_tried_in_order(setup: Setup) -> None:
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": 'region="fra,syd,iad"'})
    assert body["machine"] == "db-syd"  # fra has no machine; syd comes before iad


def test_a_forced_region_list_without_a_machine_fails(setup: Setup) -> None:
    status, _, body = request(setup, headers={"X-Replay-On-db-lhr": "region=fra"})
    assert status == 503
    assert "fra" in body


def test_a_region_list_ending_in_any_falls_back_to_normal_routing(setup: Setup) -> None:
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": 'region="fra,any";elsewhere=true'})
    assert body["machine"] in ("db-iad", "db-syd")


def test_replay_to_another_app_of_the_same_org(setup: Setup) -> None:
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": "app=other"})
    assert body["machine"] == "other-nrt"
    assert body["headers"]["fly-replay-src"].startswith("instance=db-lhr;region=lhr;")


def test_replay_to_another_orgs_app_is_refused(setup: Setup) -> None:
    status, headers, body = request(setup, headers={"X-Replay-On-db-lhr": "app=foreign"})
    assert status == 403
    assert headers["edge-error-code"] == "PA05" and "PA05" in body


def test_replay_to_an_unknown_app(setup: Setup) -> None:
    status, headers, _ = request(setup, headers={"X-Replay-On-db-lhr": "app=nosuchapp"})
    assert (status, headers["edge-error-code"]) == (502, "PA04")


def test_an_invalid_instruction_is_pa03(setup: Setup) -> None:
    status, headers, body = request(setup, headers={"X-Replay-On-db-lhr": "regoin=iad"})
    assert (status, headers["edge-error-code"]) == (502, "PA03")
    assert "unknown field 'regoin'" in body


def test_more_than_ten_replays_is_pa02(setup: Setup) -> None:
    status, headers, body = request(setup, headers={"X-Replay-Always": "elsewhere=true"})
    assert (status, headers["edge-error-code"]) == (502, "PA02")
    assert "10" in body


# --- the JSON form ----------------------------------------------------------------------


def test_json_form_with_transform(setup: Setup) -> None:
    instruction = {
        "region": "syd",
        "state": "j",
        "transform": {
            "path": "/rewritten",
            "delete_headers": ["X-Secret"],
            "set_headers": [{"name": "X-Added", "value": "yes"}],
        },
    }
    headers = {"X-Replay-Json-On-db-lhr": json.dumps(instruction), "X-Secret": "s"}
    status, _, body = request(setup, "/original", headers)
    assert status == 200 and body["machine"] == "db-syd"
    assert body["path"] == "/rewritten"
    assert "x-secret" not in body["headers"] and body["headers"]["x-added"] == "yes"
    assert body["headers"]["fly-replay-src"].endswith(";state=j")


def test_json_form_with_an_alias_region(setup: Setup) -> None:
    headers = {"X-Replay-Json-On-db-lhr": json.dumps({"region": "apac"})}
    _, _, body = request(setup, headers=headers)
    assert body["machine"] == "db-syd"


def test_json_form_in_chunks(setup: Setup) -> None:
    instruction = json.dumps({"instance": "db-iad", "state": "chunked"})
    headers = {"X-Replay-Json-On-db-lhr": instruction, "X-Replay-Chunked": "1"}
    _, _, body = request(setup, headers=headers)
    assert body["machine"] == "db-iad"
    assert body["headers"]["fly-replay-src"].endswith(";state=chunked")


def test_invalid_json_form(setup: Setup) -> None:
    status, headers, _ = request(setup, headers={"X-Replay-Json-On-db-lhr": "{not json"})
    assert (status, headers["edge-error-code"]) == (502, "PA03")


# --- bodies and the replay buffer --------------------------------------------------------


def test_a_body_under_the_buffer_is_replayed_whole(setup: Setup) -> None:
    payload = bytes(range(256)) * 200  # 51200 bytes < 65536
    _, _, body = request(setup, "/up", {"X-Replay-On-db-lhr": "region=iad"}, "PUT", payload)
    assert body["machine"] == "db-iad"
    assert body["body_bytes"] == len(payload)

    assert body["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_a_body_over_the_buffer_cannot_be_replayed(setup: Setup) -> None:
    payload = b"x" * 100_000
    status, headers, body = request(
        setup, "/up", {"X-Replay-On-db-lhr": "region=iad"}, "PUT", payload
    )
    assert (status, headers["edge-error-code"]) == (502, "PA01")
    assert "replay_buffer" in body
    assert "PA01" in setup.edge.log()


def test_a_body_over_the_buffer_is_still_served_without_a_replay(setup: Setup) -> None:
    payload = b"x" * 100_000
    _, _, body = request(setup, "/up", {}, "PUT", payload)
    assert (body["machine"], body["body_bytes"]) == ("db-lhr", len(payload))


def test_a_body_that_arrives_after_the_replay_answer_is_replayed_whole(setup: Setup) -> None:
    with socket.create_connection((setup.ips["db"], PORT), timeout=10) as sock:
        sock.sendall(
            b"POST /late HTTP/1.1\r\nHost: db\r\nContent-Length: 10\r\n"
            b"X-Replay-Early-On-db-lhr: region=iad\r\n\r\n12345"
        )
        time.sleep(0.5)  # db-lhr has answered by now; the edge waits for the rest
        sock.sendall(b"67890")
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    body = json.loads(data.partition(b"\r\n\r\n")[2])
    assert body["machine"] == "db-iad" and body["body_bytes"] == 10
    assert body["body_sha256"] == hashlib.sha256(b"1234567890").hexdigest()


def test_a_body_that_never_arrives_after_the_replay_answer_is_408(setup: Setup) -> None:
    with socket.create_connection((setup.ips["db"], PORT), timeout=10) as sock:
        sock.sendall(
            b"POST /late HTTP/1.1\r\nHost: db\r\nContent-Length: 10\r\n"
            b"X-Replay-Early-On-db-lhr: region=iad\r\n\r\n12345"
        )
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 408 ")
    assert 2.5 < time.monotonic() - started < 8


def test_keep_alive_after_a_replay(setup: Setup) -> None:
    conn = http.client.HTTPConnection(setup.ips["db"], PORT, timeout=10)
    try:
        conn.request("GET", "/one", headers={"X-Replay-On-db-lhr": "prefer_instance=db-syd"})
        first = json.loads(conn.getresponse().read())
        conn.request("GET", "/two")
        second = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert first["machine"] == "db-syd"
    assert second["machine"] == "db-lhr" and "fly-replay-src" not in second["headers"]


# --- fallbacks ---------------------------------------------------------------------------------


def _failed(body: dict[str, Any]) -> dict[str, str]:
    return dict(p.split("=", 1) for p in body["headers"]["fly-replay-failed"].split(";"))


def test_fallback_when_no_candidate(setup: Setup) -> None:
    value = "region=fra;fallback=force_self"
    status, _, body = request(setup, headers={"X-Replay-On-db-lhr": value})
    assert status == 200 and body["machine"] == "db-lhr"
    failed = _failed(body)
    assert (failed["reason"], failed["replay_source"], failed["region"]) == (
        "no_candidate", "db-lhr", "fra",
    )  # fmt: skip
    assert int(failed["elapsed_ms"]) >= 0


def test_fallback_when_connects_fail(setup: Setup) -> None:
    value = "instance=db-dead;fallback=prefer_self"
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": value})
    assert body["machine"] == "db-lhr"
    assert _failed(body)["reason"] == "retries_exhausted"


def test_fallback_on_timeout(setup: Setup) -> None:
    value = "instance=db-hang;timeout=500ms;fallback=force_self"
    started = time.monotonic()
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": value})
    assert body["machine"] == "db-lhr"
    failed = _failed(body)
    assert failed["reason"] == "timeout" and int(failed["elapsed_ms"]) >= 500
    assert time.monotonic() - started < 4  # well before the 5 s connect timeout


def test_without_a_fallback_the_client_gets_the_error(setup: Setup) -> None:
    status, _, _ = request(setup, headers={"X-Replay-On-db-lhr": "instance=db-dead"})
    assert status in (502, 503)


# --- the replay cache --------------------------------------------------------------------------


def test_path_cache_miss_hit_and_bypass(setup: Setup) -> None:
    asks = {"X-Replay-On-db-lhr": "region=iad", "X-Replay-Cache-On-db-lhr": "/cached/*"}
    _, _, first = request(setup, "/cached/a", asks)
    assert (first["machine"], first["headers"]["fly-replay-cache-status"]) == ("db-iad", "miss")
    _, _, hit = request(setup, "/cached/b")  # no replay asked: the cache routes it
    assert (hit["machine"], hit["headers"]["fly-replay-cache-status"]) == ("db-iad", "hit")
    assert "fly-replay-src" not in hit["headers"]
    _, _, elsewhere = request(setup, "/other")
    assert elsewhere["machine"] == "db-lhr"
    skip = {"fly-replay-cache-control": "skip"}
    _, _, skipped = request(setup, "/cached/c", skip)
    assert skipped["machine"] == "db-lhr"
    _, _, bypass = request(setup, "/cached/c", {**skip, "X-Replay-On-db-lhr": "region=syd"})
    assert (bypass["machine"], bypass["headers"]["fly-replay-cache-status"]) == ("db-syd", "bypass")


def test_the_target_invalidates_the_cache_entry(setup: Setup) -> None:
    asks = {"X-Replay-On-db-lhr": "region=iad", "X-Replay-Cache-On-db-lhr": "/inv/*"}
    request(setup, "/inv/a", asks)
    _, _, hit = request(setup, "/inv/b")
    assert hit["machine"] == "db-iad"
    # The target sends the request back to the origin and drops the entry.
    back = {"X-Replay-On-db-iad": "instance=db-lhr", "X-Replay-Cache-On-db-iad": "invalidate"}
    _, _, returned = request(setup, "/inv/c", back)
    assert returned["machine"] == "db-lhr"
    _, _, after = request(setup, "/inv/d")
    assert after["machine"] == "db-lhr" and "fly-replay-cache-status" not in after["headers"]


def test_session_cache_by_cookie(setup: Setup) -> None:
    cookie = {"Cookie": "theme=dark; session=abc"}
    _, _, first = request(setup, "/s/1", {**cookie, "X-Replay-On-db-lhr": "region=syd"})
    assert first["machine"] == "db-syd"
    _, _, hit = request(setup, "/s/2", cookie)
    assert (hit["machine"], hit["headers"]["fly-replay-cache-status"]) == ("db-syd", "hit")
    _, _, other_session = request(setup, "/s/2", {"Cookie": "session=xyz"})
    assert other_session["machine"] == "db-lhr"
    _, _, outside = request(setup, "/t/2", cookie)
    assert outside["machine"] == "db-lhr"


# --- region aliases in the client's headers ----------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value", "machine"),
    [
        ("fly-prefer-region", "apac", "db-syd"),
        ("fly-prefer-region", "us,apac", "db-iad"),
        ("fly-force-region", "usa", "db-iad"),
        ("fly-force-region", "na", "db-iad"),
        ("fly-prefer-region", "sa", "db-lhr"),  # none in South America: nearest
        ("fly-force-region", "eu", "db-lhr"),
    ],
)
def test_aliases_in_routing_headers(setup: Setup, header: str, value: str, machine: str) -> None:
    _, _, body = request(setup, headers={header: value})
    assert body["machine"] == machine


def test_force_region_alias_without_a_machine(setup: Setup) -> None:
    status, _, _ = request(setup, headers={"fly-force-region": "sa"})
    assert status == 503


def test_replay_with_an_alias(setup: Setup) -> None:
    _, _, body = request(setup, headers={"X-Replay-On-db-lhr": "region=us"})
    assert body["machine"] == "db-iad"


# --- observability ----------------------------------------------------------------------------


def test_metrics_count_replays_by_app_and_result(setup: Setup) -> None:
    request(setup, headers={"X-Replay-On-db-lhr": "region=iad"})
    request(setup, headers={"X-Replay-On-db-lhr": "app=foreign"})
    request(setup, headers={"X-Replay-On-db-lhr": "region=fra;fallback=force_self"})
    text = setup.edge.get_text("/metrics")
    for result in ("replayed", "refused_PA05", "fallback"):
        assert f'edge_replays_total{{app="db",result="{result}"}}' in text


def test_metrics_count_cache_hits(setup: Setup) -> None:
    asks = {"X-Replay-On-db-lhr": "region=syd", "X-Replay-Cache-On-db-lhr": "/counted/*"}
    request(setup, "/counted/1", asks)
    request(setup, "/counted/2")
    assert 'edge_replays_total{app="db",result="cache_hit"}' in setup.edge.get_text("/metrics")


def test_edgectl_route_explains_a_replay(setup: Setup) -> None:
    request(setup, headers={"X-Replay-On-db-lhr": "region=syd"})
    out = edgectl(setup.edge, "route", "-a", "db", "--replay", "region=iad")
    assert out.returncode == 0, out.stderr
    assert "db-lhr answers fly-replay: region=iad" in out.stdout
    assert "Replayed to: db-iad in iad" in out.stdout
    assert "Recent replays" in out.stdout and "db-lhr -> db-syd" in out.stdout
    answer = json.loads(
        edgectl(setup.edge, "route", "-a", "db", "--replay", "region=iad", "-j").stdout
    )
    assert answer["replay"]["chosen"]["machine_id"] == "db-iad"
    assert answer["replay"]["source"]["machine_id"] == "db-lhr"
    bad = edgectl(setup.edge, "route", "-a", "db", "--replay", "bogus")
    assert bad.returncode != 0 and "PA03" in bad.stderr


# --- response policy per port -----------------------------------------------------------------


def test_response_headers_and_pristine(setup: Setup) -> None:
    conn = http.client.HTTPConnection(setup.ips["styled"], PORT, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        headers = response.getheaders()
    finally:
        conn.close()
    names = [k.lower() for k, _ in headers]
    assert ("X-Frame-Options", "DENY") in headers
    assert [v for k, v in headers if k == "X-Multi"] == ["a", "b"]
    assert "x-served-by" not in names  # removed (false)
    assert "fly-request-id" not in names and "via" not in names  # pristine


def test_other_ports_keep_the_edges_headers(setup: Setup) -> None:
    _, headers, _ = request(setup)
    assert "fly-request-id" in headers and headers["via"] == "1.1 edge"
    assert headers["x-served-by"] == "db-lhr"


def test_idle_timeout_closes_idle_keep_alive_connections(setup: Setup) -> None:
    with socket.create_connection((setup.ips["styled"], PORT), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        started = time.monotonic()
        while sock.recv(65536):  # the rest of the answer, then the close
            pass
        waited = time.monotonic() - started
    assert 0.5 < waited < 5  # idle_timeout: 1 (s), checked every 0.1 s


# --- the demo app: writes go to the primary region ---------------------------------------------


def test_demo_app_forwards_writes_to_its_primary_region(edge_factory: Any, tmp_path: Path) -> None:
    from tests.integration.edgeconf import http_app, write_edge_config

    hello, http_port, _ = http_app("hello", ["lhr", "syd"])
    edge = edge_factory(config=write_edge_config(tmp_path, [hello]))
    ip = Api.admin(edge).get("/v1/apps/hello/ip_assignments")[1]["ips"][0]["ip"]
    conn = http.client.HTTPConnection(ip, http_port, timeout=10)
    try:
        sydney = {"Edge-Client-Region": "syd"}
        conn.request("GET", "/read", headers=sydney)
        assert json.loads(conn.getresponse().read())["machine_id"] == "hello-syd"
        conn.request("POST", "/write/order", body=b'{"n": 1}', headers=sydney)
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert (body["machine_id"], body["method"], body["body_bytes"]) == ("hello-lhr", "POST", 8)
    assert body["headers"]["fly-replay-src"].startswith("instance=hello-syd;region=syd;t=")
