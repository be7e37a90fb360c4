"""The hardening suite's daemon: two apps whose machines record every byte they get."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hardening.recorder import Received, recording_backend
from tests.integration.api import Api
from tests.integration.conftest import edge_factory
from tests.integration.daemon import EdgeProcess, free_port
from tests.integration.edgeconf import unique_pool

__all__ = ["edge_factory"]

EdgeFactory = Callable[..., EdgeProcess]
HEAD_TIMEOUT = 1.0  # http.headers_read_timeout of the suite's daemon, seconds
CHECK = {"interval": "500ms", "timeout": "1s", "grace_period": "0s", "path": "/health"}


@dataclass
class Site:
    """A daemon with apps ``alpha`` and ``beta`` (one recording machine each, beta with
    an HTTP health check) on dedicated IPs and on the shared IPv4."""

    edge: EdgeProcess
    api: Api
    http_port: int
    tls_port: int
    shared: str
    ips: dict[str, str]
    received: dict[str, Received]

    def host(self, app: str) -> str:
        return f"{app}.edge.test"

    def forwarded(self) -> bytes:
        """Every byte any machine received so far from clients (not from health checks)."""
        return b"".join(self.from_clients(name) for name in self.received)

    def from_clients(self, app: str) -> bytes:
        received = self.received[app]
        with received.lock:
            kept = [bytes(c) for c in received.connections]
        return b"".join(c for c in kept if not c.startswith(b"GET /health HTTP/1.1"))

    def health(self) -> dict[str, str]:
        """Each machine's health as ``edgectl status`` shows it."""
        _, status = self.api.get("/v1/status")
        return {m["id"]: m["health"] for app in status["apps"] for m in app["machines"]}

    def status(self) -> dict[str, Any]:
        return self.api.get("/v1/status")[1]  # type: ignore[no-any-return]


def site_config(
    tmp_path: Path, backends: dict[str, int], head_timeout: float = HEAD_TIMEOUT, **edge: Any
) -> tuple[Path, int, int]:
    pool, shared = unique_pool()
    http_port, tls_port = free_port(), free_port()
    apps = []
    for name, port in backends.items():
        service: dict[str, Any] = {
            "internal_port": 8080,
            "ports": [
                {"port": http_port, "handlers": ["http"]},
                {"port": tls_port, "handlers": ["tls", "http"]},
            ],
        }
        if name == "beta":
            service["http_checks"] = [CHECK]
        apps.append(
            {
                "app": name,
                "primary_region": "lhr",
                "services": [service],
                "machines": [{"id": f"{name}-1", "region": "lhr", "address": f"127.0.0.1:{port}"}],
            }
        )
    config = {
        "edge": {"pops": ["lhr"], "local_region": "lhr", **edge},
        "ipam": {"pools": {"v4": [pool]}, "shared_v4": shared},
        "http": {"headers_read_timeout": f"{head_timeout}s"},
        "drain_timeout": "2s",
        "apps": apps,
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, http_port, tls_port


def start_site(
    edge_factory: EdgeFactory,
    tmp_path: Path,
    stack: ExitStack,
    backends: dict[str, int] | None = None,
    **kw: Any,
) -> Site:
    """The site, its machines recording backends unless ``backends`` names their ports."""
    received: dict[str, Received] = {}
    ports = dict(backends or {})
    for name in ("alpha", "beta"):
        if name not in ports:
            ports[name], received[name] = stack.enter_context(recording_backend(name))
    head_timeout = kw.pop("head_timeout", HEAD_TIMEOUT)
    config, http_port, tls_port = site_config(tmp_path, ports, head_timeout, **kw.pop("edge", {}))
    edge = edge_factory(config=config, **kw)
    api = Api.admin(edge)
    ips = {}
    for name in ports:
        ips[name] = api.get(f"/v1/apps/{name}/ip_assignments")[1]["ips"][0]["ip"]
        status, body = api.post(f"/v1/apps/{name}/ip_assignments", {"type": "shared_v4"})
        assert status == 201, body
        shared = body["ip"]
    site = Site(edge, api, http_port, tls_port, shared, ips, received)
    wait_for(lambda: site.health().get("beta-1") == "passing", what="beta's check to pass")
    wait_for(lambda: listening(shared, http_port) and listening(ips["alpha"], tls_port))
    return site


@pytest.fixture
def site(edge_factory: EdgeFactory, tmp_path: Path) -> Iterator[Site]:
    with ExitStack() as stack:
        yield start_site(edge_factory, tmp_path, stack)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def listening(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


def exchange(address: str, port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, half-close, read until the edge closes (or ``timeout``)."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def tls_exchange(address: str, port: int, sni: str, data: bytes) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        tls.sendall(data)
        return read_all(tls)


def status_of(answer: bytes) -> int:
    """The status code of the first response in ``answer`` (0 if there is none)."""
    if not answer.startswith(b"HTTP/1."):
        return 0
    return int(answer[9:12])
