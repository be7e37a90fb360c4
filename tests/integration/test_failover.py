"""Failover with real backend processes: kill, hang and recover a machine under load."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import write_edge_config

EdgeFactory = Callable[..., EdgeProcess]
BACKEND = Path(__file__).with_name("backend_proc.py")


class Backend:
    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *flags: str) -> None:
        args = [sys.executable, str(BACKEND), str(self.port), self.name, *flags]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if not flags:
            assert self.proc.stdout is not None
            assert self.proc.stdout.readline().strip() == b"ready"
        else:  # --hang prints nothing: wait until it accepts (a fixed sleep flakes under load)
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    made = {name: Backend(name) for name in ("near", "far")}
    for backend in made.values():
        backend.start()
    yield made
    for backend in made.values():
        backend.kill()


def failover_app(backends: dict[str, Backend], **service: Any) -> tuple[dict[str, Any], int]:
    port = free_port()
    app = {
        "app": "svc",
        "primary_region": "lhr",
        "services": [
            {
                "internal_port": 8080,
                "ports": [{"port": port, "handlers": ["http"]}],
                "http_checks": [
                    {
                        "interval": "300ms",
                        "timeout": "200ms",
                        "grace_period": "0s",
                        "path": "/healthz",
                    }
                ],
                "timeout": "1s",
                **service,
            }
        ],
        "machines": [
            {"id": "near", "region": "lhr", "address": f"127.0.0.1:{backends['near'].port}"},
            {"id": "far", "region": "fra", "address": f"127.0.0.1:{backends['far'].port}"},
        ],
    }
    return app, port


def get(address: str, port: int, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def health(edge: EdgeProcess, machine: str) -> str:
    status, body = Api.admin(edge).get(f"/v1/apps/svc/machines/{machine}")
    assert status == 200
    return str(body["health"])


def wait_for(check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def start(
    edge_factory: EdgeFactory, tmp_path: Path, app: dict[str, Any]
) -> tuple[EdgeProcess, str]:
    edge = edge_factory(config=write_edge_config(tmp_path, [app]))
    address = Api.admin(edge).get("/v1/apps/svc/ip_assignments")[1]["ips"][0]["ip"]
    wait_for(lambda: health(edge, "near") == "passing" and health(edge, "far") == "passing", 10)
    return edge, address


def test_killed_machine_costs_no_failed_request(
    edge_factory: EdgeFactory, tmp_path: Path, backends: dict[str, Backend]
) -> None:
    app, port = failover_app(backends)
    edge, address = start(edge_factory, tmp_path, app)
    assert get(address, port) == (200, b"backend near")

    results: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def steady_load() -> None:
        while not stop.is_set():
            results.append(get(address, port))
            time.sleep(0.005)

    workers = [threading.Thread(target=steady_load) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    killed_at = time.monotonic()
    backends["near"].kill()
    detected = wait_for(lambda: health(edge, "near") == "critical", 5)
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)

    assert len(results) > 50
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:3]
    assert results[-1] == (200, b"backend far")
    # interval x fall + timeout, plus the jitter and this test's polling
    assert detected <= 0.3 * 3 * 1.1 + 0.2 + 0.5, detected
    assert time.monotonic() - killed_at > detected


def test_hung_machine_is_detected_and_avoided(
    edge_factory: EdgeFactory, tmp_path: Path, backends: dict[str, Backend]
) -> None:
    app, port = failover_app(backends)
    edge, address = start(edge_factory, tmp_path, app)
    backends["near"].kill()
    backends["near"].start("--hang")
    wait_for(lambda: health(edge, "near") == "critical", 5)
    for _ in range(5):
        assert get(address, port) == (200, b"backend far")


def test_hung_machine_answers_504_to_requests_in_flight(
    edge_factory: EdgeFactory, tmp_path: Path, backends: dict[str, Backend]
) -> None:
    app, port = failover_app(backends)
    app["services"][0]["http_checks"] = []  # only the service timeout acts here
    app["machines"] = app["machines"][:1]
    edge = edge_factory(config=write_edge_config(tmp_path, [app]))
    address = Api.admin(edge).get("/v1/apps/svc/ip_assignments")[1]["ips"][0]["ip"]
    backends["near"].kill()
    backends["near"].start("--hang")
    started = time.monotonic()
    status, _ = get(address, port)
    assert status == 504
    assert 0.9 <= time.monotonic() - started < 3


def test_recovered_machine_returns_after_rise_checks(
    edge_factory: EdgeFactory, tmp_path: Path, backends: dict[str, Backend]
) -> None:
    app, port = failover_app(backends)
    edge, address = start(edge_factory, tmp_path, app)
    backends["near"].kill()
    wait_for(lambda: health(edge, "near") == "critical", 5)
    assert get(address, port) == (200, b"backend far")
    backends["near"].start()
    back = wait_for(lambda: health(edge, "near") == "passing", 5)
    assert back >= 0.3  # rise (2) passing checks, not the first one
    wait_for(lambda: get(address, port) == (200, b"backend near"), 5)


def test_withdrawn_pop_moves_clients_to_the_next_pop(
    edge_factory: EdgeFactory, tmp_path: Path, backends: dict[str, Backend]
) -> None:
    app, _ = failover_app(backends)
    edge, _ = start(edge_factory, tmp_path, app)
    api = Api.admin(edge)
    assert api.get("/v1/apps/svc/route?from=lhr")[1]["pop"] == "lhr"
    assert api.post("/v1/faults", {"kind": "withdraw", "pop": "lhr"})[0] == 201
    route = api.get("/v1/apps/svc/route?from=lhr")[1]
    assert route["pop"] == "iad"  # the next nearest PoP of this config (lhr, iad, syd, nrt)
    assert api.post("/v1/faults/reset")[1] == {"removed": 1}
    assert api.get("/v1/apps/svc/route?from=lhr")[1]["pop"] == "lhr"
