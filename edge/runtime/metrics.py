"""Every Prometheus collector edge exports, on an injected registry.

Naming follows Prometheus practice: one ``edge_`` prefix, base units, ``_total``
counters, bounded label sets (apps, PoPs, regions, reasons: never a client address).
Each daemon (and each test) builds its own ``Metrics`` with a fresh registry.

One name per concept, in every metric:
- ``app``: the app; ``_shared`` (not a valid app name) for traffic on the shared IPv4
  that names no app (before the Host or SNI is known, or naming no app of it).
- ``pop``: the PoP that took the client; ``region``: the region of the machine that
  served it; ``machine``: that machine's id (``none`` and ``none`` when the edge
  answered itself). Client regions never appear (unbounded in the simulation).
- ``result``: ``ok`` or ``error``; ``reason``: why it was an error (empty when ok).
- Scrape-time gauges of things that are gone (a destroyed app, a removed machine) are
  dropped, not kept at 0; live gauges of an app are dropped when the app goes.
- No ``_created`` series (``disable_created_metrics``): they double every counter.

Two kinds of metric live here:
- counters and histograms recorded on the hot path through ``Recorder``, which caches
  each label set's child so a request costs a dict lookup and an increment;
- gauges of state (health, load, IPs, listeners, PoPs, faults) computed when
  Prometheus scrapes, from providers the daemon registers (``StateCollector``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide: no *_created

SHARED_APP = "_shared"  # the app label of shared-IPv4 traffic that names no app
NO_MACHINE = "none"  # the machine and region labels when the edge answered itself
OK, ERROR = "ok", "error"  # the values of every ``result`` label

# Loopback answers take well under a millisecond; modelled intercontinental trips take
# a few hundred. The buckets cover both.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# A cold start is a process coming up: tens of milliseconds to seconds.
COLD_START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

GaugeRows = Iterable[tuple[tuple[str, ...], float]]


class StateGauge:
    """A gauge computed at scrape time: its name, help, label names and a row provider."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.provider: Callable[[], GaugeRows] = lambda: ()


class StateCollector(Collector):
    def __init__(self, gauges: Iterable[StateGauge]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for gauge in self.gauges:
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=gauge.labels)
            for labels, value in gauge.provider():
                family.add_metric(labels, value)
            yield family


class Metrics:
    """The collectors of one daemon."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Info("edge_build", "Version of the running edge", registry=r).info({"version": __version__})
        self.start_time = Gauge(
            "edge_start_time_seconds", "Unix time the daemon started", registry=r
        )
        self._define_traffic(r)
        self._define_control(r)
        self._define_state(r)
        self._define_machines(r)

    def _define_machines(self, r: CollectorRegistry) -> None:
        """Machines edge runs: starts, exits, cold starts, autostop (edge.runtime.supervisor)."""
        self.machine_starts = Counter(
            "edge_machine_starts", "Machines started (cause: deploy, autostart, restart, api)",
            ["app", "region", "cause"], registry=r,
        )  # fmt: skip
        self.machine_exits = Counter(
            "edge_machine_exits", "Process machines that exited (outcome: clean, failed, killed)",
            ["app", "region", "outcome"], registry=r,
        )  # fmt: skip
        self.machine_cold_start = Histogram(
            "edge_machine_cold_start_seconds",
            "From autostart to the machine accepting on its port, requests waiting",
            ["app", "region"], buckets=COLD_START_BUCKETS, registry=r,
        )  # fmt: skip
        self.autostops = Counter(
            "edge_autostop_machines", "Machines stopped or suspended by autostop",
            ["app", "region", "action"], registry=r,
        )  # fmt: skip
        self.autostart_waits = Counter(
            "edge_autostart_requests", "Requests or connections that waited for a start "
            "(outcome: started, timeout, failed)", ["app", "outcome"], registry=r,
        )  # fmt: skip

    def _define_traffic(self, r: CollectorRegistry) -> None:
        self.connections = Counter(
            "edge_connections", "Client connections accepted",
            ["app", "pop", "port", "handler"], registry=r,
        )  # fmt: skip
        self.connections_active = Gauge(
            "edge_connections_active", "Client connections open now", ["app", "pop"], registry=r
        )
        self.http_requests = Counter(
            "edge_http_requests", "HTTP requests answered, by serving machine and status class",
            ["app", "pop", "machine", "region", "code_class"], registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "edge_http_request_duration_seconds",
            "From a request's arrival to its response head (HTTP), by serving machine",
            ["app", "pop", "machine", "region"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.connect_duration = Histogram(
            "edge_upstream_connect_duration_seconds", "Time to open a connection to a machine",
            ["app", "region"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.connect_errors = Counter(
            "edge_upstream_connection_errors", "Failed connections to machines",
            ["app", "region", "reason"], registry=r,
        )  # fmt: skip
        self.bytes = Counter("edge_bytes", "Bytes relayed", ["app", "direction"], registry=r)
        self.route_decisions = Counter(
            "edge_route_decisions", "Routing decisions by the rule that decided",
            ["app", "pop", "region", "reason"], registry=r,
        )  # fmt: skip
        self.no_candidate = Counter(
            "edge_no_candidate", "Connections or requests no machine could take",
            ["app", "pop"], registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "edge_retries", "Tries of another machine after a failed connect",
            ["app", "outcome"], registry=r,
        )  # fmt: skip
        self.proxy_errors = Counter(
            "edge_proxy_errors", "Answers the edge made itself (status tcp: raw connections "
            "it closed), by the platform's error code (none: it has no code for it)",
            ["app", "status", "code"], registry=r,
        )  # fmt: skip
        self.panic = Counter(
            "edge_panic_routing", "Decisions made in panic mode (too few healthy machines)",
            ["app"], registry=r,
        )  # fmt: skip
        self.replays = Counter(
            "edge_replays", "fly-replay answers of machines, by what came of them "
            "(replayed, cache_hit, fallback, failed, refused_<code>)",
            ["app", "result"], registry=r,
        )  # fmt: skip

    def _define_control(self, r: CollectorRegistry) -> None:
        self.ipam_operations = Counter(
            "edge_ipam_operations", "IP allocations and releases",
            ["op", "result", "reason"], registry=r,
        )  # fmt: skip
        self.listener_errors = Counter(
            "edge_listener_errors", "Listeners that failed to bind", ["reason"], registry=r
        )
        self.health_checks = Counter(
            "edge_health_checks", "Active health checks run",
            ["app", "region", "result", "reason"], registry=r,
        )  # fmt: skip

    def _define_state(self, r: CollectorRegistry) -> None:
        self.machine_health = StateGauge(
            "edge_machine_health", "1 for the machine's current check state",
            ("app", "machine", "region", "state"),
        )  # fmt: skip
        self.machine_load = StateGauge(
            "edge_machine_load", "Open connections or in-flight requests", ("app", "machine")
        )
        self.ejections_active = StateGauge(
            "edge_outlier_ejections_active", "Machines ejected by outlier detection now", ("app",)
        )
        self.queue_length = StateGauge(
            "edge_queue_length", "Requests or connections waiting for capacity", ("app",)
        )
        self.ip_assignments = StateGauge(
            "edge_ip_assignments", "IP addresses assigned", ("org", "type")
        )
        self.listeners = StateGauge("edge_listeners", "Bound listeners", ("family",))
        self.faults_active = StateGauge("edge_faults_active", "Injected faults", ("kind",))
        self.pop_up = StateGauge("edge_pop_up", "1 when the PoP's route is announced", ("pop",))
        r.register(
            StateCollector(
                [
                    self.machine_health,
                    self.machine_load,
                    self.ejections_active,
                    self.queue_length,
                    self.ip_assignments,
                    self.listeners,
                    self.faults_active,
                    self.pop_up,
                ]
            )
        )


def code_class(status: int) -> str:
    return f"{status // 100}xx"


def check_labels(outcome: str) -> tuple[str, str]:
    """(result, reason) of a health check's outcome (success, failure or timeout)."""
    return (OK, "") if outcome == "success" else (ERROR, outcome)


def error_reason(exc: Exception) -> str:
    """The ``reason`` of a failed control-plane operation: its error class, snake_case."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


class Recorder:
    """Hot-path recording: each label set's child is looked up once, then cached."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(
        self,
        app: str,
        pop: str,
        status: int,
        seconds: float | None,
        machine: str = NO_MACHINE,
        region: str = NO_MACHINE,
    ) -> None:
        """A request answered by ``machine`` in ``region`` (by the edge itself: none)."""
        self._child(self.m.http_requests, app, pop, machine, region, code_class(status)).inc()
        if seconds is not None:
            self._child(self.m.http_duration, app, pop, machine, region).observe(seconds)

    def connection_opened(self, app: str, pop: str, port: int, handler: str) -> None:
        self._child(self.m.connections, app, pop, str(port), handler).inc()
        self._child(self.m.connections_active, app, pop).inc()

    def connection_closed(self, app: str, pop: str) -> None:
        self._child(self.m.connections_active, app, pop).dec()

    def connected(self, app: str, region: str, seconds: float) -> None:
        self._child(self.m.connect_duration, app, region).observe(seconds)

    def connect_failed(self, app: str, region: str, reason: str) -> None:
        self._child(self.m.connect_errors, app, region, reason).inc()

    def transferred(self, app: str, to_machine: int, to_client: int) -> None:
        if to_machine:
            self._child(self.m.bytes, app, "to_machine").inc(to_machine)
        if to_client:
            self._child(self.m.bytes, app, "to_client").inc(to_client)

    def decision(self, app: str, pop: str, region: str, reason: str) -> None:
        self._child(self.m.route_decisions, app, pop, region, reason).inc()

    def panic(self, app: str) -> None:
        self._child(self.m.panic, app).inc()

    def no_candidate(self, app: str, pop: str) -> None:
        self._child(self.m.no_candidate, app, pop).inc()

    def proxy_error(self, app: str, status: str, code: str) -> None:
        self._child(self.m.proxy_errors, app, status, code).inc()

    def retry(self, app: str, outcome: str) -> None:
        self._child(self.m.retries, app, outcome).inc()

    def replay(self, app: str, result: str) -> None:
        self._child(self.m.replays, app, result).inc()

    def forget(self, live_apps: frozenset[str], live_machines: frozenset[tuple[str, str]]) -> None:
        """Drop the series of apps and machines that are gone (``live_machines``: every
        (app, machine id) there is now), with their cached children. A series of a gone
        app whose connections are still open stays until a later change after they close."""
        apps = {*live_apps, SHARED_APP}
        stale = [
            key
            for key, child in self._children.items()
            if self._is_stale(key, child, apps, live_machines)
        ]
        by_id = self._metric_by_id()
        for key in stale:
            del self._children[key]
            with contextlib.suppress(KeyError):
                by_id[key[0]].remove(*key[1:])

    def _is_stale(
        self,
        key: tuple[Any, ...],
        child: Any,
        live_apps: set[str],
        live_machines: frozenset[tuple[str, str]],
    ) -> bool:
        metric, app = key[0], key[1]
        if app not in live_apps:
            # prometheus_client has no public read of a gauge child: its value holder
            return metric != id(self.m.connections_active) or bool(child._value.get() == 0)
        per_machine = metric in (id(self.m.http_requests), id(self.m.http_duration))
        # (the edge's own answers, machine "none", stay with the app)
        return per_machine and key[3] != NO_MACHINE and (app, key[3]) not in live_machines

    def _metric_by_id(self) -> dict[int, Any]:
        m = self.m
        metrics = (
            m.connections, m.connections_active, m.http_requests, m.http_duration,
            m.connect_duration, m.connect_errors, m.bytes, m.route_decisions,
            m.no_candidate, m.retries, m.panic, m.proxy_errors, m.replays,
        )  # fmt: skip
        return {id(metric): metric for metric in metrics}


class _NoMetrics:
    """Stands in for ``Metrics`` in a NullRecorder: every collector is None."""

    def __getattr__(self, name: str) -> None:
        return None


class NullRecorder(Recorder):
    """``metrics.enabled: false``: the data plane records nothing (for benchmarks)."""

    def __init__(self) -> None:
        self.m = _NoMetrics()  # type: ignore[assignment]

    def _child(self, metric: Any, *labels: str) -> Any:
        return _NULL_CHILD

    def forget(self, live_apps: frozenset[str], live_machines: frozenset[tuple[str, str]]) -> None:
        pass


class _NullChild:
    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


_NULL_CHILD = _NullChild()
