"""Several real ``edge serve`` nodes on one PostgreSQL control plane, for the tests.

The nodes share one state directory (the admin token, certificates) and are started
one after the other, each waited for, so the first one writes the token the others
read. Data-plane listeners are shared (SO_REUSEPORT), each node has its own API.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, start_edge


def start_node(
    tmp_path: Path, url: str, name: str, pops: str, config: Path, *extra: str
) -> EdgeProcess:
    flags = ["--store", url, "--node", name, "--pops", pops, *extra]
    return start_edge(tmp_path, config=config, extra=flags, state_dir=tmp_path / "state")


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}")


def healthz(node: EdgeProcess) -> dict[str, object]:
    with urllib.request.urlopen(node.url + "/healthz", timeout=5) as answer:
        body: dict[str, object] = json.loads(answer.read())
    return body


def bound_on(node: EdgeProcess, address: str, port: int) -> bool:
    """Whether ``node`` reports a bound listener on ``address:port``."""
    _, status = Api.admin(node).get("/v1/status")
    return any(
        row["address"] == address and row["port"] == port and row.get("bound")
        for row in status["listeners"]
    )


def http_get(address: str, port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, dict]:
    """One request on a new connection: (status, the demo machine's JSON answer)."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}
