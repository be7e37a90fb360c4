"""Active health checks against real sockets on 127.0.0.1.

The routing state is the daemon's own (``RoutingState`` rebuilt from a ``StoreSnapshot``
of core records) and the monitor is synced after each rebuild, as the data plane does.
Intervals are 100 ms or so to keep the tests fast.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

import pytest
import uvloop

from edge.config.model import EdgeConfig, ServiceSpec
from edge.config.regions import default_catalogue
from edge.core.apps import AppRecord, Machine
from edge.core.health import HealthState
from edge.core.latency import LatencyModel
from edge.core.routing import EndpointStats
from edge.dataplane.contract import ClientInfo, RouteHints, Upstream
from edge.dataplane.tls import generate_self_signed
from edge.runtime.health_checks import HealthMonitor, ServiceHealth
from edge.runtime.metrics import Metrics
from edge.runtime.recorder import Recorder
from edge.runtime.router import AppRouter
from edge.runtime.routing_state import RoutingState
from edge.store import StoreSnapshot

APP = "hello"
INTERNAL_PORT = 8080
FAST = {"interval": "100ms", "timeout": "300ms", "grace_period": "0s", "jitter": 0.1}

Mode = Literal["ok", "fail", "redirect", "hang"]
_STATUS = {"ok": b"200 OK", "fail": b"500 Internal Server Error", "redirect": b"302 Found"}


# --- a backend machine -------------------------------------------------------------------


class Backend:
    """An HTTP/1.1 machine on 127.0.0.1 whose answer the test switches (or kills)."""

    def __init__(self) -> None:
        self.mode: Mode = "ok"
        self.heads: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            if self.mode == "hang":
                await reader.read()  # never answer; wait for the checker to give up
                return
            status = _STATUS[self.mode]
            location = b"Location: /elsewhere\r\n" if self.mode == "redirect" else b""
            writer.write(b"HTTP/1.1 %s\r\n%sContent-Length: 0\r\n\r\n" % (status, location))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # a TCP check connects and leaves
        finally:
            writer.close()

    def kill(self) -> None:
        """Stop listening: new connections are refused, like a process gone."""
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    machine = Backend()
    await machine.start()
    yield machine
    machine.kill()


# --- the routing state and the monitor ---------------------------------------------------


def service(**fields: Any) -> ServiceSpec:
    ports = [{"port": 80, "handlers": ["http"]}]
    return ServiceSpec.model_validate({"internal_port": INTERNAL_PORT, "ports": ports, **fields})


def machine_record(machine_id: str, port: int, state: str = "started") -> Machine:
    return Machine(
        id=machine_id,
        app=APP,
        region="lhr",
        state=state,  # type: ignore[arg-type]
        address=f"127.0.0.1:{port}",
        ports=(),
        weight=1,
        demo=False,
        created_at=0,
        updated_at=0.0,
    )


class Harness:
    """A ``RoutingState`` and a ``HealthMonitor``, applied together like ``DataPlane``."""

    def __init__(self) -> None:
        config = EdgeConfig.model_validate({"edge": {"pops": ["lhr"], "local_region": "lhr"}})
        model = LatencyModel.build(config.latency, default_catalogue())
        self.state = RoutingState(config, model, random.Random(1))
        self.monitor = HealthMonitor(random.Random(2))
        self.version = 0

    def apply(self, spec: ServiceSpec, *machines: Machine) -> None:
        self.version += 1
        app = AppRecord(APP, "personal", "lhr", 0, (spec,))
        self.state.rebuild(StoreSnapshot(self.version, (app,), machines, ()), {})
        self.monitor.sync(self.state.snapshot)

    def stats(self, machine_id: str) -> EndpointStats:
        return self.state.endpoint_stats()[(APP, machine_id, INTERNAL_PORT)]

    def health(self, machine_id: str) -> ServiceHealth:
        (health,) = self.monitor.states(APP, machine_id)
        return health

    def state_of(self, machine_id: str) -> HealthState:
        return self.health(machine_id).state

    def outputs(self, machine_id: str) -> list[str]:
        return [row.output for row in self.monitor.results(APP, machine_id)]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.monitor.close()


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> float:
    """Wait until ``check()`` holds; return how long that took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


# --- http checks -------------------------------------------------------------------------


async def test_http_check_passes_then_fails_then_recovers(
    harness: Harness, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.health")
    harness.apply(
        service(http_checks=[{**FAST, "path": "/health"}]), machine_record("m1", backend.port)
    )
    stats = harness.stats("m1")
    assert harness.state_of("m1") is HealthState.UNKNOWN
    assert not stats.healthy  # not routable before its checks pass

    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    assert stats.healthy
    assert stats.ready_since > 0  # slow start runs from here
    assert harness.outputs("m1")[:2] == ["status 200", "status 200"]

    backend.mode = "fail"
    await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
    assert not stats.healthy
    assert harness.outputs("m1")[:3] == ["status 500"] * 3
    assert "machine m1 of hello is critical: status 500" in caplog.messages

    backend.mode = "ok"
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    assert stats.healthy
    assert harness.outputs("m1")[:2] == ["status 200", "status 200"]
    assert "machine m1 of hello is passing: status 200" in caplog.messages


async def test_http_check_sends_one_request_with_the_machine_as_host(
    harness: Harness, backend: Backend
) -> None:
    check = {**FAST, "method": "head", "path": "/up?x=1", "headers": {"X-Forwarded-Proto": "https"}}
    harness.apply(service(http_checks=[check]), machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    head = backend.heads[0].decode()
    assert head.startswith("HEAD /up?x=1 HTTP/1.1\r\n")
    assert f"\r\nHost: 127.0.0.1:{backend.port}\r\n" in head
    assert "\r\nX-Forwarded-Proto: https\r\n" in head
    assert "\r\nConnection: close\r\n" in head


async def test_a_check_header_can_replace_the_host(harness: Harness, backend: Backend) -> None:
    check = {**FAST, "headers": {"host": "hello.example.com"}}
    harness.apply(service(http_checks=[check]), machine_record("m1", backend.port))
    await eventually(lambda: bool(backend.heads))
    head = backend.heads[0].decode()
    assert "\r\nhost: hello.example.com\r\n" in head
    assert head.lower().count("\r\nhost:") == 1


async def test_a_redirect_fails_and_is_not_followed(harness: Harness, backend: Backend) -> None:
    backend.mode = "redirect"
    harness.apply(service(http_checks=[FAST]), machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
    assert set(harness.outputs("m1")) == {"status 302"}
    assert all(b"/elsewhere" not in head for head in backend.heads)


async def test_https_check_with_and_without_verification(harness: Harness, tmp_path: Path) -> None:
    cert, key = generate_self_signed(["machine.internal"])
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    backend = Backend()
    await backend.start(tls)
    try:
        https = {**FAST, "protocol": "https", "tls_server_name": "machine.internal"}
        spec = service(http_checks=[{**https, "tls_skip_verify": True}])
        harness.apply(spec, machine_record("m1", backend.port))
        await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
        harness.apply(service(http_checks=[https]), machine_record("m1", backend.port))
        await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
        error = "tls: certificate verify failed: self-signed certificate"
        assert harness.outputs("m1")[0] == error
    finally:
        backend.kill()


# --- tcp checks, killed and hanging machines ---------------------------------------------


async def test_tcp_check_of_a_killed_machine_is_critical_in_time(
    harness: Harness, backend: Backend
) -> None:
    timing = {**FAST, "jitter": 0.0}
    harness.apply(service(tcp_checks=[timing]), machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    assert harness.outputs("m1")[0] == "connected"
    backend.kill()
    took = await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
    assert took <= 0.1 * 3 + 0.3 + 0.1  # interval x fall + timeout, and a little slack
    assert harness.outputs("m1")[0] == "connection refused"
    assert not harness.stats("m1").healthy


async def test_a_hanging_machine_fails_by_timeout(harness: Harness, backend: Backend) -> None:
    backend.mode = "hang"
    timing = {**FAST, "interval": "200ms", "timeout": "100ms", "jitter": 0.0}
    spec = service(tcp_checks=[timing], http_checks=[timing])
    harness.apply(spec, machine_record("m1", backend.port))
    took = await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
    assert took <= 0.2 * 3 + 0.1 + 0.1
    (health,) = harness.monitor.states(APP, "m1")
    tcp, http = health.checks
    assert (tcp.name, tcp.state) == ("servicecheck-00-tcp-8080", HealthState.PASSING)
    assert (http.name, http.state) == ("servicecheck-01-http-8080", HealthState.CRITICAL)
    assert http.last is not None
    assert http.last.output == "timeout after 100ms"
    assert 0.09 <= http.last.duration < 0.2
    assert http.target == f"GET http://127.0.0.1:{backend.port}/"


# --- which machines are checked ----------------------------------------------------------


async def test_no_checks_against_a_stopped_machine(harness: Harness, backend: Backend) -> None:
    spec = service(tcp_checks=[FAST])
    harness.apply(spec, machine_record("m1", backend.port, state="stopped"))
    await asyncio.sleep(0.3)
    assert backend.connections == 0
    assert harness.state_of("m1") is HealthState.UNKNOWN
    assert harness.monitor.results(APP, "m1") == []

    harness.apply(spec, machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)

    harness.apply(spec, machine_record("m1", backend.port, state="stopped"))
    assert harness.state_of("m1") is HealthState.UNKNOWN
    assert not harness.stats("m1").healthy
    seen = backend.connections
    await asyncio.sleep(0.3)
    assert backend.connections <= seen + 1  # at most a check that was already connecting


async def test_a_removed_machine_is_no_longer_checked(harness: Harness, backend: Backend) -> None:
    spec = service(tcp_checks=[FAST])
    harness.apply(spec, machine_record("m1", backend.port))
    await eventually(lambda: backend.connections >= 2)
    harness.apply(spec)
    assert harness.monitor.states(APP, "m1") == []
    seen = backend.connections
    await asyncio.sleep(0.3)
    assert backend.connections <= seen + 1


async def test_a_machine_without_checks_is_routable_and_never_probed(
    harness: Harness, backend: Backend
) -> None:
    harness.apply(service(), machine_record("m1", backend.port))
    assert harness.state_of("m1") is HealthState.PASSING
    assert harness.stats("m1").healthy
    assert harness.stats("m1").ready_since == float("-inf")  # found at start: no ramp
    harness.apply(service(), machine_record("m1", backend.port), machine_record("m2", 9))
    assert harness.stats("m2").healthy
    assert harness.stats("m2").ready_since > 0  # added while running: slow start
    await asyncio.sleep(0.2)
    assert backend.connections == 0


async def test_redeployed_checks(harness: Harness, backend: Backend) -> None:
    harness.apply(service(tcp_checks=[FAST]), machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    # New settings for the same checks: what they found holds, and they go on.
    harness.apply(service(tcp_checks=[{**FAST, "interval": "50ms"}]), machine_record("m1", 1))
    assert harness.state_of("m1") is HealthState.PASSING
    await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)  # port 1: refused
    # One more check: they start over.
    spec = service(tcp_checks=[FAST], http_checks=[FAST])
    harness.apply(spec, machine_record("m1", backend.port))
    assert harness.state_of("m1") is HealthState.UNKNOWN
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    assert [check.name for check in harness.health("m1").checks] == [
        "servicecheck-00-tcp-8080",
        "servicecheck-01-http-8080",
    ]


async def test_grace_period_hides_early_failures(harness: Harness, backend: Backend) -> None:
    backend.kill()
    timing = {**FAST, "interval": "50ms", "grace_period": "400ms", "fall": 2}
    harness.apply(service(tcp_checks=[timing]), machine_record("m1", backend.port))
    await eventually(lambda: len(harness.outputs("m1")) >= 4)
    assert harness.state_of("m1") is HealthState.UNKNOWN  # refused, but inside the grace
    took = await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
    assert took > 0.1


# --- the operator ------------------------------------------------------------------------


async def test_maint_stops_checks_and_ready_resumes_them(
    harness: Harness, backend: Backend
) -> None:
    spec = service(tcp_checks=[FAST])
    harness.apply(spec, machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    (health,) = harness.monitor.set_admin(APP, "m1", "maint")
    assert health.state is HealthState.MAINT
    assert harness.stats("m1").admin == "maint"
    seen = backend.connections
    await asyncio.sleep(0.3)
    assert backend.connections <= seen + 1
    harness.apply(spec, machine_record("m1", backend.port))  # other changes keep it
    assert harness.state_of("m1") is HealthState.MAINT
    harness.monitor.set_admin(APP, "m1", "ready")
    assert harness.stats("m1").admin == ""
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    assert harness.monitor.set_admin(APP, "nope", "drain") == []


async def test_drain_keeps_checking(harness: Harness, backend: Backend) -> None:
    harness.apply(service(tcp_checks=[FAST]), machine_record("m1", backend.port))
    await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
    harness.monitor.set_admin(APP, "m1", "drain")
    assert harness.stats("m1").admin == "drain"
    backend.kill()
    await eventually(lambda: harness.health("m1").checks[0].state is HealthState.CRITICAL)
    assert harness.state_of("m1") is HealthState.DRAIN
    harness.monitor.set_admin(APP, "m1", "ready")
    assert harness.state_of("m1") is HealthState.CRITICAL


# --- passive health through the listener router ------------------------------------------

CLIENT = ClientInfo("127.0.0.1", 40000, "127.0.0.1", 80)


def upstream_to(router: AppRouter, machine_id: str | None) -> Upstream:
    hints = None if machine_id is None else RouteHints(force_instance=machine_id.encode())
    choice = router.choose(CLIENT, hints, frozenset())
    assert isinstance(choice, Upstream)
    return choice


async def test_router_reports_eject_a_failing_machine(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge.outlier")
    spec = service()  # no active checks: passive health alone
    harness.apply(spec, machine_record("m1", 1), machine_record("m2", 2))
    router = AppRouter(harness.state, APP, spec.ports[0], Recorder(Metrics()))
    up = upstream_to(router, "m1")
    for _ in range(4):
        router.responded(up, 503, 0.01)
    router.responded(up, 200, 0.01)  # ends the streak
    for _ in range(4):
        router.connect_failed(up, "refused")
    router.connected(up, 0.001)  # over HTTP a connection that opens is not a success
    stats = harness.stats("m1")
    assert stats.ejections == 0
    router.responded(up, 502, 0.01)
    assert stats.ejections == 1
    assert stats.ejected_until > time.monotonic() + 29
    message = "machine m1 of hello ejected for 30s after 5 failures in a row (last: status 502)"
    assert message in caplog.messages
    assert {upstream_to(router, None).machine_id for _ in range(20)} == {"m2"}


async def test_over_raw_tcp_a_connection_that_opens_ends_the_streak(harness: Harness) -> None:
    spec = ServiceSpec.model_validate({"internal_port": INTERNAL_PORT, "ports": [{"port": 80}]})
    harness.apply(spec, machine_record("m1", 1))
    router = AppRouter(harness.state, APP, spec.ports[0], Recorder(Metrics()))
    up = upstream_to(router, "m1")
    for _ in range(4):
        router.connect_failed(up, "refused")
    router.connected(up, 0.001)
    assert harness.stats("m1").consecutive_failures == 0


# --- counting and closing ----------------------------------------------------------------


async def test_check_outcomes_are_counted_and_close_stops_everything(backend: Backend) -> None:
    counted: list[tuple[str, str, str]] = []
    harness = Harness()
    harness.monitor = HealthMonitor(random.Random(3), on_check=lambda *c: counted.append(c))
    harness.apply(service(tcp_checks=[FAST]), machine_record("m1", backend.port))
    await eventually(lambda: len(counted) >= 2)
    assert set(counted) == {(APP, "lhr", "success")}
    await harness.monitor.close()
    seen = backend.connections
    await asyncio.sleep(0.25)
    assert backend.connections == seen


def test_checks_run_on_uvloop() -> None:
    """The daemon's loop: TCP and HTTP checks, pass and fail."""

    async def scenario() -> None:
        backend = Backend()
        await backend.start()
        harness = Harness()
        try:
            spec = service(tcp_checks=[FAST], http_checks=[FAST])
            harness.apply(spec, machine_record("m1", backend.port))
            await eventually(lambda: harness.state_of("m1") is HealthState.PASSING)
            backend.mode = "fail"
            await eventually(lambda: harness.state_of("m1") is HealthState.CRITICAL)
        finally:
            await harness.monitor.close()
            backend.kill()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # see test_tcp_proxy.on_uvloop
        uvloop.run(asyncio.wait_for(scenario(), 10))
