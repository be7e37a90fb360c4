"""At the hard limit: connections wait in the queue for a slot, then give up (real daemon)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import demo_machines, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


@pytest.fixture
def full(edge_factory: EdgeFactory, tmp_path: Path) -> tuple[str, int, EdgeProcess]:
    port = free_port()
    app = {
        "app": "one",
        "primary_region": "lhr",
        "services": [
            {
                "internal_port": 7000,
                "ports": [{"port": port}],
                "concurrency": {"type": "connections", "soft_limit": 1, "hard_limit": 1},
                "queue_timeout": "1s",
            }
        ],
        "machines": demo_machines("one", ["lhr"]),
    }
    edge = edge_factory(config=write_edge_config(tmp_path, [app]))
    address = Api.admin(edge).get("/v1/apps/one/ip_assignments")[1]["ips"][0]["ip"]
    return address, port, edge


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(100)
        if not chunk:
            break
        received += chunk
    return received


def test_a_queued_connection_gets_the_released_slot(
    full: tuple[str, int, EdgeProcess],
) -> None:
    address, port, edge = full
    first = socket.create_connection((address, port), timeout=5)
    assert echo(first, b"one\n") == b"one\n"
    second = socket.create_connection((address, port), timeout=5)
    second.sendall(b"two\n")
    time.sleep(0.3)
    assert 'edge_queue_length{app="one"} 1.0' in edge.get_text("/metrics")
    first.close()  # frees the only slot: the waiting connection takes it
    received = b""
    while len(received) < 4:
        chunk = second.recv(100)
        if not chunk:
            break
        received += chunk
    second.close()
    assert received == b"two\n"


def test_a_queued_connection_is_closed_after_queue_timeout(
    full: tuple[str, int, EdgeProcess],
) -> None:
    address, port, _ = full
    with socket.create_connection((address, port), timeout=5) as first:
        assert echo(first, b"one\n") == b"one\n"
        with socket.create_connection((address, port), timeout=5) as second:
            started = time.monotonic()
            second.sendall(b"two\n")
            assert second.recv(100) == b""  # closed, never served
            waited = time.monotonic() - started
    assert 0.8 <= waited < 3
