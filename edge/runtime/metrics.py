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
- counters and histograms recorded on the hot path through ``Recorder``
  (edge.runtime.recorder) into plain dicts (``Series``, edge.runtime.traffic_metrics)
  that a collector reads at scrape time: a request costs a dict lookup and an addition;
- gauges of state (health, load, IPs, listeners, PoPs, faults) computed when
  Prometheus scrapes, from providers the daemon registers (``StateCollector``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

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
from edge.runtime.traffic_metrics import Series, TrafficCollector

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
        """The hot-path series: plain dicts the Recorder writes (edge.runtime.traffic_metrics)."""
        self.connections = Series(
            "edge_connections", "Client connections accepted", ("app", "pop", "port", "handler")
        )
        self.connections_active = Series(
            "edge_connections_active", "Client connections open now", ("app", "pop"), "gauge"
        )
        self.http_requests = Series(
            "edge_http_requests", "HTTP requests answered, by serving machine and status class",
            ("app", "pop", "machine", "region", "code_class"),
        )  # fmt: skip
        self.http_duration = Series(
            "edge_http_request_duration_seconds",
            "From a request's arrival to its response head (HTTP), by serving machine",
            ("app", "pop", "machine", "region"), "histogram", LATENCY_BUCKETS,
        )  # fmt: skip
        self.connect_duration = Series(
            "edge_upstream_connect_duration_seconds", "Time to open a connection to a machine",
            ("app", "region"), "histogram", LATENCY_BUCKETS,
        )  # fmt: skip
        self.connect_errors = Series(
            "edge_upstream_connection_errors", "Failed connections to machines",
            ("app", "region", "reason"),
        )  # fmt: skip
        self.bytes = Series("edge_bytes", "Bytes relayed", ("app", "direction"))
        self.route_decisions = Series(
            "edge_route_decisions", "Routing decisions by the rule that decided",
            ("app", "pop", "region", "reason"),
        )  # fmt: skip
        self.no_candidate = Series(
            "edge_no_candidate", "Connections or requests no machine could take", ("app", "pop")
        )
        self.retries = Series(
            "edge_retries", "Tries of another machine after a failed connect", ("app", "outcome")
        )
        self.proxy_errors = Series(
            "edge_proxy_errors", "Answers the edge made itself (status tcp: raw connections "
            "it closed), by the platform's error code (none: it has no code for it)",
            ("app", "status", "code"),
        )  # fmt: skip
        self.panic = Series(
            "edge_panic_routing", "Decisions made in panic mode (too few healthy machines)",
            ("app",),
        )  # fmt: skip
        self.replays = Series(
            "edge_replays", "fly-replay answers of machines, by what came of them "
            "(replayed, cache_hit, fallback, failed, refused_<code>)", ("app", "result"),
        )  # fmt: skip
        self.traffic = (
            self.connections, self.connections_active, self.http_requests, self.http_duration,
            self.connect_duration, self.connect_errors, self.bytes, self.route_decisions,
            self.no_candidate, self.retries, self.proxy_errors, self.panic, self.replays,
        )  # fmt: skip
        r.register(TrafficCollector(self.traffic))

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


_CODE_CLASSES = tuple(f"{n}xx" for n in range(10))


def code_class(status: int) -> str:
    n = status // 100
    return _CODE_CLASSES[n] if 0 <= n < 10 else f"{n}xx"


def check_labels(outcome: str) -> tuple[str, str]:
    """(result, reason) of a health check's outcome (success, failure or timeout)."""
    return (OK, "") if outcome == "success" else (ERROR, outcome)


def error_reason(exc: Exception) -> str:
    """The ``reason`` of a failed control-plane operation: its error class, snake_case."""
    name = type(exc).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
