"""Every error code the edge emits, provoked through the real daemon.

One daemon serves one app per situation: machines whose port refuses, a machine that
never answers, one that hangs up before answering, a stopped machine, a saturated one,
and a raw TCP port whose machine refuses. Each answer must name its code in the body
and the ``Edge-Error-Code`` header, in a JSON log line with its request id, and in
``edge_proxy_errors_total``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import demo_machines, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


class SilentBackend:
    """Accepts connections; ``hang``: never answers, else reads the head and hangs up."""

    def __init__(self, hang: bool) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.hang = hang
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if self.hang:
                self.held.append(conn)
                continue
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


class FullBacklog:
    """A listener that never accepts, its backlog filled: connecting to it times out."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port = self.server.getsockname()[1]
        self.filling = []
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", self.port))
            self.filling.append(sock)

    def close(self) -> None:
        for sock in [*self.filling, self.server]:
            sock.close()


def app(
    name: str, addresses: list[str], handlers: tuple[str, ...] = ("http",), **service: Any
) -> Any:
    return {
        "app": name,
        "primary_region": "lhr",
        "services": [
            {
                "internal_port": 8080,
                "ports": [{"port": free_port(), "handlers": list(handlers)}],
                **service,
            }
        ],
        "machines": [
            {"id": f"{name}-{i}", "region": "lhr", "address": address}
            for i, address in enumerate(addresses)
        ],
    }


class Daemon:
    def __init__(self, edge: EdgeProcess, apps: list[Any]) -> None:
        self.edge = edge
        api = Api.admin(edge)
        self.where = {
            a["app"]: (
                api.get(f"/v1/apps/{a['app']}/ip_assignments")[1]["ips"][0]["ip"],
                a["services"][0]["ports"][0]["port"],
            )
            for a in apps
        }

    def request(
        self, app: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        address, port = self.where[app]
        conn = http.client.HTTPConnection(address, port, timeout=15)
        try:
            conn.request(
                method, "/", body=b"x" if method == "POST" else None, headers=headers or {}
            )
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.edge.log().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def metric(self, app: str, status: str, code: str) -> float:
        want = f'edge_proxy_errors_total{{app="{app}",code="{code}",status="{status}"}}'
        for line in self.edge.get_text("/metrics").splitlines():
            if line.startswith(want):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp_path = tmp_path_factory.mktemp("codes")
    hang, cut = SilentBackend(hang=True), SilentBackend(hang=False)
    backlog = FullBacklog()
    closed = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    apps = [
        app("refuse0", closed[:1], retries=0),
        app("refuse1", closed[:1]),
        app("refuse3", closed, retries=2),
        app("hang", [f"127.0.0.1:{hang.port}"], timeout="1s"),
        app("cut", [f"127.0.0.1:{cut.port}"], retries=0),
        app("slowconn", [f"127.0.0.1:{backlog.port}"], retries=0, connect_timeout="300ms"),
        app(
            "full",
            [f"127.0.0.1:{hang.port}"],
            concurrency={"type": "requests", "soft_limit": 1, "hard_limit": 1},
            queue_timeout="500ms",
            timeout="5s",
        ),
        app("rawref", closed[:1], handlers=(), retries=0, no_candidate_wait="0s"),
        app(
            "rawfull",
            [f"127.0.0.1:{hang.port}"],
            handlers=(),
            concurrency={"type": "connections", "soft_limit": 1, "hard_limit": 1},
            queue_timeout="300ms",
        ),
        {
            "app": "web",
            "primary_region": "lhr",
            "services": [
                {"internal_port": 8080, "ports": [{"port": free_port(), "handlers": ["http"]}]}
            ],
            "machines": demo_machines("web", ["lhr"]),
        },
    ]
    for name, handlers in (("stopped", ("http",)), ("rawstopped", ())):
        # auto_start_machines off: a stopped machine that stays stopped is "no machine".
        apps.append(
            app(
                name, closed[:1], handlers=handlers, no_candidate_wait="0s",
                auto_start_machines=False,
            )
        )  # fmt: skip
        apps[-1]["machines"][0]["state"] = "stopped"
    edge = start_edge(
        tmp_path, config=write_edge_config(tmp_path, apps), extra=["--log-format", "json"]
    )
    try:
        yield Daemon(edge, apps)
    finally:
        edge.kill()
        hang.close()
        cut.close()
        backlog.close()


def assert_coded(daemon: Daemon, app: str, status: int, code: str, answer: Any) -> str:
    got_status, headers, body = answer
    assert got_status == status, body
    assert headers.get("Edge-Error-Code") == code
    assert f"error code: {code} (" in body
    request_id = headers["Fly-Request-Id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [x for x in daemon.log_lines() if x.get("request_id") == request_id]
        if lines:
            break
        time.sleep(0.05)
    assert lines, f"no log line for {request_id}"
    assert lines[0]["code"] == code and lines[0]["status"] == status and lines[0]["app"] == app
    assert daemon.metric(app, str(status), code) >= 1
    return body


def test_refused_without_retries_is_pc01(daemon: Daemon) -> None:
    assert_coded(daemon, "refuse0", 502, "PC01", daemon.request("refuse0"))


def test_refused_with_nothing_left_to_retry_is_pr03_naming_the_last_cause(daemon: Daemon) -> None:
    body = assert_coded(daemon, "refuse1", 503, "PR03", daemon.request("refuse1"))
    assert "the last connect failed: refused (PC01)" in body


def test_every_retry_refused_is_pc07(daemon: Daemon) -> None:
    body = assert_coded(daemon, "refuse3", 502, "PC07", daemon.request("refuse3"))
    assert "(refused)" in body


def test_a_connect_that_times_out_is_pc05(daemon: Daemon) -> None:
    body = assert_coded(daemon, "slowconn", 502, "PC05", daemon.request("slowconn"))
    assert "(timeout)" in body


def test_a_stopped_machine_only_is_pr01(daemon: Daemon) -> None:
    assert_coded(daemon, "stopped", 503, "PR01", daemon.request("stopped"))


def test_a_forced_instance_that_does_not_exist_is_pr02(daemon: Daemon) -> None:
    answer = daemon.request("web", headers={"fly-force-instance-id": "no-such-machine"})
    assert_coded(daemon, "web", 503, "PR02", answer)


def test_a_machine_hanging_up_before_answering_is_pu02(daemon: Daemon) -> None:
    assert_coded(daemon, "cut", 502, "PU02", daemon.request("cut", "POST"))


def test_a_saturated_service_is_pl02_after_the_queue_timeout(daemon: Daemon) -> None:
    def hold() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            daemon.request("full")

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()  # the hanging machine keeps the only slot for 5 s
    busy = 'edge_machine_load{app="full",machine="full-0"} 1.0'
    deadline = time.monotonic() + 5
    while busy not in daemon.edge.get_text("/metrics") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_coded(daemon, "full", 503, "PL02", daemon.request("full"))


def test_answers_without_a_platform_code_send_no_header(daemon: Daemon) -> None:
    status, headers, body = daemon.request("hang")  # the machine never answers: 504
    assert status == 504
    assert "Edge-Error-Code" not in headers and "error code" not in body
    assert daemon.metric("hang", "504", "none") == 1
    address, port = daemon.where["web"]
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Edge-Error-Code" not in answer
    assert daemon.metric("web", "400", "none") == 1


def test_a_raw_tcp_connection_refused_logs_and_counts_pc01(daemon: Daemon) -> None:
    address, port = daemon.where["rawref"]
    with socket.create_connection((address, port), timeout=5) as sock:
        assert sock.recv(100) == b""  # closed: nothing to answer with on raw TCP
    deadline = time.monotonic() + 5
    while daemon.metric("rawref", "tcp", "PC01") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.metric("rawref", "tcp", "PC01") == 1
    lines = [x for x in daemon.log_lines() if x.get("app") == "rawref" and "code" in x]
    assert lines and lines[0]["code"] == "PC01" and "closed the connection" in lines[0]["msg"]


def wait_metric(daemon: Daemon, app: str, status: str, code: str) -> float:
    deadline = time.monotonic() + 5
    while daemon.metric(app, status, code) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return daemon.metric(app, status, code)


def test_a_raw_tcp_connection_without_a_machine_is_pr01(daemon: Daemon) -> None:
    address, port = daemon.where["rawstopped"]
    with socket.create_connection((address, port), timeout=5) as sock:
        assert sock.recv(100) == b""
    assert wait_metric(daemon, "rawstopped", "tcp", "PR01") == 1


def test_a_raw_tcp_connection_that_waited_too_long_for_a_slot_is_pl01(daemon: Daemon) -> None:
    address, port = daemon.where["rawfull"]
    with socket.create_connection((address, port), timeout=5) as holder:
        holder.sendall(b"x")  # connected to the silent machine: the only slot is taken
        busy = 'edge_machine_load{app="rawfull",machine="rawfull-0"} 1.0'
        deadline = time.monotonic() + 5
        while busy not in daemon.edge.get_text("/metrics") and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection((address, port), timeout=5) as waiter:
            assert waiter.recv(100) == b""  # closed after queue_timeout, never served
    assert wait_metric(daemon, "rawfull", "tcp", "PL01") == 1
