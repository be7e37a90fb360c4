"""Bad input to the control plane gets a 4xx that says what was wrong, never a 500.

Against the real daemon: undecodable bearer tokens, JSON nested 1,000+ deep, non-ASCII
digits in numeric fields, overflowing weights, an empty machine address; and the headers
RFC 9110 asks for: ``WWW-Authenticate`` on every 401, ``Allow`` on every 405.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import demo_machines, write_edge_config


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("control-inputs")
    app = {
        "app": "hello",
        "primary_region": "lhr",
        "services": [
            {"internal_port": 8080, "ports": [{"port": free_port(), "handlers": ["http"]}]}
        ],
        "machines": demo_machines("hello", ["lhr", "iad"]),
    }
    process = start_edge(tmp, config=write_edge_config(tmp, [app]))
    yield process
    process.kill()


def call(
    edge: EdgeProcess,
    method: str,
    path: str,
    body: bytes | str | None = None,
    token: str | bool | None = True,
) -> tuple[int, dict[str, str], Any]:
    host, port = edge.api.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is True:
        headers["Authorization"] = f"Bearer {edge.token()}"
    elif isinstance(token, str):
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        data = json.loads(payload) if payload.startswith(b"{") else payload
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def raw_request(edge: EdgeProcess, head: bytes) -> bytes:
    host, port = edge.api.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.parametrize("token", [b"\xff\xfe", b"edge_\xc3\x28", "edge_é".encode()])
def test_a_non_utf8_or_non_ascii_token_is_401(edge: EdgeProcess, token: bytes) -> None:
    answer = raw_request(
        edge,
        b"GET /v1/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b'WWW-Authenticate: Bearer realm="edge"' in answer
    assert b'"invalid token"' in answer


@pytest.mark.parametrize(
    ("method", "path", "token"),
    [
        ("GET", "/v1/apps", None),
        ("GET", "/v1/apps", "wrong"),
        ("POST", "/v1/apps/hello/machines", None),
        ("GET", "/v1/status", "edge_not-a-token"),
    ],
)
def test_every_401_carries_www_authenticate(
    edge: EdgeProcess, method: str, path: str, token: str | None
) -> None:
    status, headers, body = call(edge, method, path, token=token)
    assert status == 401 and "error" in body
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/apps", {"GET", "POST"}),
        ("PATCH", "/v1/apps/hello", {"GET", "DELETE"}),
        ("DELETE", "/healthz", {"GET"}),
        ("POST", "/metrics", {"GET"}),
    ],
)
def test_every_405_carries_allow(
    edge: EdgeProcess, method: str, path: str, allowed: set[str]
) -> None:
    status, headers, body = call(edge, method, path, body="{}")
    assert status == 405 and "error" in body
    assert allowed <= set(headers["Allow"].split(","))


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_400(edge: EdgeProcess, depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = '{"region": ' + opener * depth + "1" + closer * depth + "}"
    status, _, answer = call(edge, "POST", "/v1/apps/hello/machines", body=body)
    assert status == 400, answer
    assert "nested too deeply" in answer["error"]


@pytest.mark.parametrize("digits", ["²", "٣", "۳", "\uff13", "1²"])
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/apps/hello/route?port={}", "port"),
        ("/v1/apps/hello/catchment?port={}", "port"),
        ("/v1/apps/hello/catchment?clients={}", "clients"),
    ],
)
def test_non_ascii_digits_in_query_fields_are_400_naming_the_field(
    edge: EdgeProcess, digits: str, path: str, field: str
) -> None:
    status, _, answer = call(edge, "GET", path.format(quote(digits)))
    assert status == 400, answer
    assert answer["error"].startswith(f"{field}: ")


@pytest.mark.parametrize("digits", ["²", "٣"])
def test_non_ascii_digits_in_machine_ports_are_400(edge: EdgeProcess, digits: str) -> None:
    body = json.dumps({"region": "lhr", "address": "127.0.0.1:9", "ports": {digits: 80}})
    status, _, answer = call(edge, "POST", "/v1/apps/hello/machines", body=body)
    assert status == 400, answer
    assert "ports" in answer["error"]


@pytest.mark.parametrize(
    "weights", ["lhr:1e308,iad:1e308", "lhr:1e309", "lhr:inf", "lhr:nan", "lhr:-1"]
)
def test_weights_that_overflow_are_400(edge: EdgeProcess, weights: str) -> None:
    status, _, answer = call(edge, "GET", f"/v1/apps/hello/catchment?weights={weights}")
    assert status == 400, answer
    assert answer["error"].startswith("weights: ")


@pytest.mark.parametrize("address", ["", " ", "127.0.0.1 :80", "\t"])
def test_a_machine_with_an_empty_or_blank_address_is_400(edge: EdgeProcess, address: str) -> None:
    body = json.dumps({"region": "lhr", "address": address})
    status, _, answer = call(edge, "POST", "/v1/apps/hello/machines", body=body)
    assert status == 400, answer
    assert "address" in answer["error"]
    _, _, listing = call(edge, "GET", "/v1/apps/hello/machines")
    assert all(m["address"] != address for m in listing["machines"])


def test_none_of_that_logged_an_internal_error(edge: EdgeProcess) -> None:
    call(edge, "GET", "/v1/apps/hello/route?port=%C2%B2")
    assert "unexpected error" not in edge.log()
    assert "Traceback" not in edge.log()
