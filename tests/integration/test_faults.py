"""Each fault has an observable effect through the real daemon, and clearing undoes it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.api import Api, edgectl
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, write_edge_config

TIMER_SLACK = 0.002  # libuv timers: 1 ms resolution
EdgeFactory = Callable[..., EdgeProcess]


class Echo:
    def __init__(self, edge_factory: EdgeFactory, tmp_path: Path) -> None:
        self.port = free_port()
        app = {
            "app": "echo",
            "primary_region": "lhr",
            "services": [{"internal_port": 7000, "ports": [{"port": self.port}]}],
            "machines": demo_machines("echo", ["lhr", "iad"]),
        }
        self.edge = edge_factory(config=write_edge_config(tmp_path, [app]))
        self.api = Api.admin(self.edge)
        self.ip = self.api.get("/v1/apps/echo/ip_assignments")[1]["ips"][0]["ip"]

    def fault(self, **body: object) -> str:
        status, answer = self.api.post("/v1/faults", body)
        assert status == 201, answer
        return str(answer["id"])

    def roundtrip(self, payload: bytes = b"ping\n", timeout: float = 5) -> tuple[bytes, float]:
        started = time.monotonic()
        with socket.create_connection((self.ip, self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            received = b""
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        return received, time.monotonic() - started


@pytest.fixture
def echo(edge_factory: EdgeFactory, tmp_path: Path) -> Echo:
    return Echo(edge_factory, tmp_path)


def test_latency_fault_adds_its_delay_and_clear_removes_it(echo: Echo) -> None:
    _, before = echo.roundtrip()
    echo.fault(kind="latency", region="lhr", latency="300ms")
    received, took = echo.roundtrip()
    # The loop's timers have millisecond resolution and may fire a fraction early.
    assert received == b"ping\n" and took >= 0.3 - TIMER_SLACK
    result = edgectl(echo.edge, "faults", "clear")
    assert result.returncode == 0 and "Removed 1 fault(s)" in result.stdout
    _, after = echo.roundtrip()
    assert after < 0.2 and before < 0.2


def test_upstream_latency_delays_the_way_to_the_machine(echo: Echo) -> None:
    echo.fault(kind="latency", machine="echo-lhr", app="echo", latency="250ms", stream="upstream")
    _, took = echo.roundtrip()
    assert took >= 0.25 - TIMER_SLACK


def test_reset_peer_resets_the_connection(echo: Echo) -> None:
    echo.fault(kind="reset_peer", pop="lhr", timeout="100ms")
    with socket.create_connection((echo.ip, echo.port), timeout=5) as sock:
        time.sleep(0.4)
        with pytest.raises((ConnectionResetError, BrokenPipeError, AssertionError)):
            sock.sendall(b"x" * 10)
            data = sock.recv(10)
            assert data, "closed"  # an orderly close instead of a reset also fails here


def test_limit_data_closes_after_the_limit(echo: Echo) -> None:
    echo.fault(kind="limit_data", region="lhr", bytes=10)
    received, _ = echo.roundtrip(b"0123456789abcdefghij")
    assert received == b"0123456789"


def test_timeout_fault_is_a_black_hole_then_closes(echo: Echo) -> None:
    echo.fault(kind="timeout", region="lhr", timeout="500ms")
    received, took = echo.roundtrip()
    assert received == b"" and 0.45 <= took < 3


def test_bandwidth_fault_paces_the_transfer(echo: Echo) -> None:
    echo.fault(kind="bandwidth", region="lhr", rate=100)
    payload = b"x" * 50 * 1024
    received, took = echo.roundtrip(payload, timeout=10)
    assert received == payload and took >= 0.4


def test_slow_close_holds_the_close(echo: Echo) -> None:
    echo.fault(kind="slow_close", region="lhr", delay="400ms")
    with socket.create_connection((echo.ip, echo.port), timeout=5) as sock:
        sock.sendall(b"bye\n")
        assert sock.recv(10) == b"bye\n"
        sock.shutdown(socket.SHUT_WR)
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - started >= 0.35


def test_down_machine_refuses_and_traffic_moves_on(echo: Echo) -> None:
    echo.fault(kind="down", machine="echo-lhr", app="echo")
    received, _ = echo.roundtrip()
    assert received == b"ping\n"  # served by echo-iad after the refused connect
    errors = echo.edge.get_text("/metrics")
    assert (
        'edge_upstream_connection_errors_total{app="echo",reason="refused",region="lhr"}' in errors
    )


def test_bad_faults_are_400(echo: Echo) -> None:
    for body, fragment in [
        ({"kind": "withdraw", "region": "lhr"}, "withdraw fault applies to: pop"),
        ({"kind": "latency", "pop": "lhr"}, "needs latency"),
        ({"kind": "latency", "latency": "1s"}, "exactly one scope"),
        ({"kind": "latency", "pop": "xyz", "latency": "1s"}, "unknown pop"),
        ({"kind": "gremlins", "pop": "lhr"}, "kind"),
    ]:
        status, answer = echo.api.post("/v1/faults", body)
        assert status == 400 and fragment in answer["error"], body
    # A well-formed fault naming a machine that does not exist: 404, like a missing app.
    status, answer = echo.api.post("/v1/faults", {"kind": "down", "machine": "nope", "app": "echo"})
    assert status == 404 and "no machine 'nope'" in answer["error"]
