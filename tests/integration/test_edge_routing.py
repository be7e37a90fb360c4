"""The data plane through the real daemon: anycast, nearest machine, headers, failover,
listeners following allocations, raw TCP, TLS, the shared IPv4 and PROXY protocol."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import Api, edgectl
from tests.integration.backends import recording_backend
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, http_app, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


class Demo:
    """A daemon with app ``web`` (demo machines in lhr, iad, syd) and ``tcp`` (echo, fra)."""

    def __init__(self, edge_factory: EdgeFactory, tmp_path: Path, **edge: Any) -> None:
        # auto_start_machines off: these tests stop machines and expect them to stay stopped.
        web, self.http_port, self.tls_port = http_app(
            "web", ["lhr", "iad", "syd"], auto_start_machines=False
        )
        self.tcp_port = free_port()
        tcp = {
            "app": "tcp",
            "primary_region": "fra",
            "services": [{"internal_port": 7000, "ports": [{"port": self.tcp_port}]}],
            "machines": demo_machines("tcp", ["fra"]),
        }
        self.edge = edge_factory(config=write_edge_config(tmp_path, [web, tcp], **edge))
        self.api = Api.admin(self.edge)
        self.web_ip = self.ips("web")[0]
        self.tcp_ip = self.ips("tcp")[0]

    def ips(self, app: str) -> list[str]:
        return [ip["ip"] for ip in self.api.get(f"/v1/apps/{app}/ip_assignments")[1]["ips"]]


@pytest.fixture
def demo(edge_factory: EdgeFactory, tmp_path: Path) -> Demo:
    return Demo(edge_factory, tmp_path)


def get(
    address: str,
    port: int,
    path: str = "/",
    headers: dict[str, str] | None = None,
    source: str | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection(
        address, port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        try:
            return response.status, found, json.loads(body)
        except ValueError:
            return response.status, found, body.decode(errors="replace")
    finally:
        conn.close()


def test_request_reaches_the_nearest_machine_with_platform_headers(demo: Demo) -> None:
    status, headers, body = get(demo.web_ip, demo.http_port, "/hello")
    assert status == 200
    assert (body["app"], body["machine_id"], body["path"]) == ("web", "web-lhr", "/hello")
    sent = body["headers"]
    assert sent["Fly-Client-IP"] == "127.0.0.1"
    assert sent["X-Forwarded-For"] == "127.0.0.1"
    assert sent["X-Forwarded-Proto"] == "http"
    assert sent["X-Forwarded-Port"] == sent["Fly-Forwarded-Port"] == str(demo.http_port)
    assert sent["Fly-Region"] == "lhr"
    assert headers["via"] == "1.1 edge"
    request_id, _, pop = headers["fly-request-id"].partition("-")
    assert len(request_id) == 26 and pop == "lhr"


def test_client_supplied_fly_client_ip_is_replaced(demo: Demo) -> None:
    _, _, body = get(
        demo.web_ip,
        demo.http_port,
        headers={"Fly-Client-IP": "6.6.6.6", "X-Forwarded-For": "10.0.0.1"},
    )
    assert body["headers"]["Fly-Client-IP"] == "127.0.0.1"
    assert body["headers"]["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"


def test_client_region_from_header_lands_on_its_pop(demo: Demo) -> None:
    _, headers, body = get(demo.web_ip, demo.http_port, headers={"Edge-Client-Region": "syd"})
    assert body["machine_id"] == "web-syd"
    assert "Edge-Client-Region" not in body["headers"]
    assert body["headers"]["Fly-Region"] == "syd"
    assert headers["fly-request-id"].endswith("-syd")


def test_client_region_from_source_address(demo: Demo) -> None:
    _, _, body = get(demo.web_ip, demo.http_port, source="127.1.0.5")
    assert body["machine_id"] == "web-syd"
    _, _, body = get(demo.web_ip, demo.http_port, source="127.2.0.9")
    assert body["machine_id"] == "web-iad"


def test_routing_headers(demo: Demo) -> None:
    _, _, body = get(demo.web_ip, demo.http_port, headers={"fly-prefer-region": "syd,iad"})
    assert body["machine_id"] == "web-syd"
    _, _, body = get(demo.web_ip, demo.http_port, headers={"fly-force-instance-id": "web-iad"})
    assert body["machine_id"] == "web-iad"
    status, headers, text = get(demo.web_ip, demo.http_port, headers={"fly-force-region": "nrt"})
    assert status == 503 and "web" in text and headers["retry-after"]


def test_stopped_machine_fails_over_to_the_next_nearest(demo: Demo) -> None:
    result = edgectl(demo.edge, "machines", "stop", "-a", "web", "web-lhr")
    assert result.returncode == 0, result.stderr
    for _ in range(5):
        assert get(demo.web_ip, demo.http_port)[2]["machine_id"] == "web-iad"
    edgectl(demo.edge, "machines", "start", "-a", "web", "web-lhr")
    assert get(demo.web_ip, demo.http_port)[2]["machine_id"] == "web-lhr"


def test_no_machine_at_all_is_503_naming_the_app(demo: Demo) -> None:
    for machine in ("web-lhr", "web-iad", "web-syd"):
        edgectl(demo.edge, "machines", "stop", "-a", "web", machine)
    status, headers, text = get(demo.web_ip, demo.http_port)
    assert status == 503 and "web" in text
    assert int(headers["retry-after"]) >= 1


def test_allocated_ip_answers_at_once_and_released_ip_refuses(demo: Demo) -> None:
    status, body = demo.api.post("/v1/apps/web/ip_assignments", {"type": "v4"})
    assert status == 201
    assert {(b["port"], b["bound"]) for b in body["listeners"]} == {
        (demo.http_port, True),
        (demo.tls_port, True),
    }
    address = body["ip"]
    assert get(address, demo.http_port)[0] == 200  # the first request right after 201

    slow: dict[str, Any] = {}
    request = threading.Thread(
        target=lambda: slow.update(answer=get(address, demo.http_port, "/delay/1500"))
    )
    request.start()
    time.sleep(0.5)
    assert demo.api.delete(f"/v1/apps/web/ip_assignments/{address}")[0] == 204
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, demo.http_port), timeout=2).close()
    request.join(timeout=10)
    assert slow["answer"][0] == 200  # the request in flight finished


def test_raw_tcp_echo_through_a_passthrough_port(demo: Demo) -> None:
    with socket.create_connection((demo.tcp_ip, demo.tcp_port), timeout=5) as sock:
        sock.sendall(b"hello through the edge\n")
        received = b""
        while len(received) < 23:
            received += sock.recv(100)
    assert received == b"hello through the edge\n"


def tls_get(address: str, port: int, server_name: str, path: str = "/") -> tuple[str, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    request = f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        return tls.selected_alpn_protocol() or "", data


def test_tls_port_terminates_with_sni(demo: Demo) -> None:
    alpn, data = tls_get(demo.web_ip, demo.tls_port, "web.edge.test")
    assert alpn == "http/1.1"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"


def test_shared_ipv4_routes_by_host_and_sni(demo: Demo) -> None:
    status, body = demo.api.post("/v1/apps/web/ip_assignments", {"type": "shared_v4"})
    assert status == 201
    shared = body["ip"]
    status, _, answer = get(shared, demo.http_port, headers={"Host": "web.edge.test"})
    assert status == 200 and answer["app"] == "web"
    status, _, text = get(shared, demo.http_port, headers={"Host": "nobody.edge.test"})
    assert status == 404 and "edge.test" in text
    _, data = tls_get(shared, demo.tls_port, "web.edge.test")
    assert data.startswith(b"HTTP/1.1 200")
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        tls_get(shared, demo.tls_port, "nobody.edge.test")


def test_proxy_protocol_v1_and_v2_reach_the_machine(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    v1_port, v2_port = free_port(), free_port()
    with recording_backend("pp") as (backend_port, recorder):
        app = {
            "app": "pp",
            "primary_region": "lhr",
            "services": [
                {
                    "internal_port": 8080,
                    "ports": [
                        {"port": v1_port, "handlers": ["proxy_proto"]},
                        {
                            "port": v2_port,
                            "handlers": ["proxy_proto"],
                            "proxy_proto_options": {"version": "v2"},
                        },
                    ],
                }
            ],
            "machines": [{"region": "lhr", "address": f"127.0.0.1:{backend_port}"}],
        }
        edge = edge_factory(config=write_edge_config(tmp_path, [app]))
        address = Api.admin(edge).get("/v1/apps/pp/ip_assignments")[1]["ips"][0]["ip"]
        assert get(address, v1_port)[2] == "backend pp"
        assert get(address, v2_port)[2] == "backend pp"
    v1, v2 = recorder.first_bytes
    line = v1.split(b"\r\n")[0].decode().split()
    assert line[:4] == ["PROXY", "TCP4", "127.0.0.1", address]
    assert line[5] == str(v1_port)
    assert v2.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11")
    assert socket.inet_aton(address) == v2[20:24]


def test_websocket_upgrade_passes_through(demo: Demo) -> None:
    with socket.create_connection((demo.web_ip, demo.http_port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        sock.sendall(b"raw bytes after the upgrade")
        echoed = b""
        while len(echoed) < 27:
            echoed += sock.recv(4096)
        assert echoed == b"raw bytes after the upgrade"


def test_simulated_latency_adds_the_modelled_delay(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    from edge.config.model import LatencySpec
    from edge.config.regions import default_catalogue
    from edge.core.latency import LatencyModel

    app, http_port, _ = http_app("far", ["lhr"])
    edge = edge_factory(config=write_edge_config(tmp_path, [app], simulate_latency=True))
    address = Api.admin(edge).get("/v1/apps/far/ip_assignments")[1]["ips"][0]["ip"]
    model = LatencyModel.build(LatencySpec(), default_catalogue())

    def timed(region: str) -> float:
        started = time.monotonic()
        status, _, body = get(address, http_port, headers={"Edge-Client-Region": region})
        assert status == 200 and body["machine_id"] == "far-lhr"
        return time.monotonic() - started

    timed("lhr")  # warm the upstream pool
    expected = model.rtt("syd", "syd") + model.rtt("syd", "lhr")
    took = timed("syd")
    assert expected * 0.9 <= took <= expected + 0.5
    assert timed("lhr") < expected / 2
