"""Health and load shared between two nodes through PostgreSQL: real daemons, real
backends. One node checks each machine (the nearest), the other routes on its verdict
and takes the checks over when it goes; load is routed on the sum across nodes."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import Api
from tests.integration.cluster import start_node, wait_for
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import write_edge_config

pytestmark = pytest.mark.slow


class Backend:
    """A machine: answers its name; /healthz follows ``healthy``; /hold waits for release."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.healthy = True
        self.release = threading.Event()
        self.held: list[str] = []  # Fly-Region of each request being held
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    code = 200 if backend.healthy else 503
                    return self._answer(code, b"ok" if code == 200 else b"down")
                if self.path == "/hold":
                    with backend.lock:
                        backend.held.append(self.headers.get("Fly-Region", "?"))
                    backend.release.wait(30)
                return self._answer(200, backend.name.encode())

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    made = {name: Backend(name) for name in ("near", "far")}
    yield made
    for backend in made.values():
        backend.close()


def app_config(tmp_path: Path, port: int, backends: dict[str, Backend], **concurrency: Any) -> Path:
    check = {"interval": "0.3s", "timeout": "0.5s", "grace_period": "0s", "rise": 1, "fall": 1}
    app = {
        "app": "web",
        "primary_region": "lhr",
        "services": [
            {
                "internal_port": 8080,
                "ports": [{"port": port, "handlers": ["http"]}],
                "http_checks": [{**check, "path": "/healthz"}],
                **({"concurrency": {"type": "requests", **concurrency}} if concurrency else {}),
            }
        ],
        "machines": [
            {"id": "near", "region": "lhr", "address": f"127.0.0.1:{backends['near'].port}"},
            {"id": "far", "region": "syd", "address": f"127.0.0.1:{backends['far'].port}"},
        ],
    }
    return write_edge_config(tmp_path, [app])


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[Any]:
    started: list[EdgeProcess] = []

    def start(url: str, config: Path, pops_a: str, pops_b: str) -> tuple[EdgeProcess, ...]:
        for name, pops in (("a", pops_a), ("b", pops_b)):
            started.append(start_node(tmp_path, url, name, pops, config))
        return tuple(started)

    yield start
    for node in started:
        node.kill()


def machine(node: EdgeProcess, machine_id: str) -> dict[str, Any]:
    _, status = Api.admin(node).get("/v1/status")
    app = next(a for a in status["apps"] if a["name"] == "web")
    return dict(next(m for m in app["machines"] if m["id"] == machine_id))


def checks_run(node: EdgeProcess, region: str) -> float:
    """Checks this node ran of machines in ``region`` (any result)."""
    pattern = r"^edge_health_checks_total\{([^}]*)\} (\S+)$"
    found = re.findall(pattern, node.get_text("/metrics"), re.MULTILINE)
    return sum(float(value) for labels, value in found if f'region="{region}"' in labels)


def get(address: str, port: int, path: str = "/") -> str:
    import socket

    with socket.create_connection((address, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2].decode()


def primary(node: EdgeProcess) -> str:
    return str(Api.admin(node).get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"])


def test_the_nearest_node_checks_the_other_follows_and_takes_over(
    tmp_path: Path, pg_url: str, backends: dict[str, Backend], two_nodes: Any
) -> None:
    port = free_port()
    a, b = two_nodes(pg_url, app_config(tmp_path, port, backends), "lhr", "syd")
    for node in (a, b):
        wait_for(lambda n=node: machine(n, "near")["health"] == "passing", 10, "near passing")
    # Until the first exchange (0.5 s) a node checks everything; then only its own.
    wait_for(lambda: checks_run(b, "syd") >= 4, 10, "b checking the syd machine")
    before = checks_run(b, "lhr")
    wait_for(lambda: checks_run(a, "lhr") >= 8, 10, "a checking the lhr machine")
    assert checks_run(b, "lhr") == before  # b leaves lhr to a ...

    backends["near"].healthy = False  # ... and follows a's verdict
    wait_for(lambda: machine(b, "near")["health"] != "passing", 10, "b to see a's verdict")
    checked_by = machine(b, "near")["services"][0]["checked_by"]
    assert checked_by.startswith("checked by node a "), checked_by  # whose, how fresh
    assert machine(a, "near")["services"][0]["checked_by"] == "this node"
    address = primary(a)
    assert {get(address, port) for _ in range(20)} == {"far"}  # on a and on b
    assert checks_run(b, "lhr") == before

    a.kill()  # b's view of lhr goes stale; once a is not live (5 s), b checks it itself
    backends["near"].healthy = True
    wait_for(lambda: checks_run(b, "lhr") > before, 20, "b to take the checks over")
    wait_for(lambda: machine(b, "near")["health"] == "passing", 10, "b's own verdict")


def test_load_is_routed_on_the_sum_across_nodes(
    tmp_path: Path, pg_url: str, backends: dict[str, Backend], two_nodes: Any
) -> None:
    port = free_port()
    config = app_config(tmp_path, port, backends, soft_limit=2, hard_limit=4)
    a, b = two_nodes(pg_url, config, "lhr", "fra")
    for node in (a, b):
        wait_for(lambda n=node: machine(n, "near")["health"] == "passing", 10, "passing")
    address = primary(a)
    assert {get(address, port) for _ in range(10)} == {"near"}  # nearest for both PoPs
    near = backends["near"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        holds = [pool.submit(get, address, port, "/hold") for _ in range(4)]
        wait_for(lambda: len(near.held) == 4, 10, "four requests held on near")
        split = Counter(near.held)  # how the kernel spread them over the two nodes
        for node in (a, b):  # each node routes on the sum: at the hard limit
            wait_for(lambda n=node: machine(n, "near")["load"] == 4, 5, "the summed load")
        answered = [get(address, port) for _ in range(20)]
        assert set(answered) == {"far"}, (answered, split)
        near.release.set()
        assert {h.result(10) for h in holds} == {"near"}
    for node in (a, b):
        wait_for(lambda n=node: machine(n, "near")["load"] == 0, 5, "the load back to 0")
    assert {get(address, port) for _ in range(10)} == {"near"}
