"""Hot-path recording: what the routers report, as plain dict additions.

Each report adds to its ``Series``' dict in place (edge.runtime.traffic_metrics): no
lock, no prometheus-client object per label set, nothing allocated but the key. The
series are read when Prometheus scrapes; ``forget`` drops those of gone apps and machines.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from edge.runtime.metrics import NO_MACHINE, SHARED_APP, Metrics, code_class
from edge.runtime.traffic_metrics import Series


class Recorder:
    """Hot-path recording into the series of one ``Metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = m = metrics
        self._connections = m.connections.values
        self._active = m.connections_active.values
        self._requests = m.http_requests.values
        self._durations = m.http_duration.values
        self._connects = m.connect_duration.values
        self._bytes = m.bytes.values
        self._decisions = m.route_decisions.values
        self._bounds = m.http_duration.bounds  # both histograms use LATENCY_BUCKETS
        self._row = m.http_duration.new_histogram_row

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
        counts = self._requests
        key = (app, pop, machine, region, code_class(status))
        counts[key] = counts.get(key, 0) + 1
        if seconds is not None:
            self._observe(self._durations, (app, pop, machine, region), seconds)

    def _observe(self, rows: dict[Any, Any], key: tuple[str, ...], seconds: float) -> None:
        row = rows.get(key)
        if row is None:
            row = rows[key] = self._row()
        row[bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds
        row[-1] += seconds

    def connection_opened(self, app: str, pop: str, port: int, handler: str) -> None:
        _add(self._connections, (app, pop, str(port), handler), 1)
        _add(self._active, (app, pop), 1)

    def connection_closed(self, app: str, pop: str) -> None:
        _add(self._active, (app, pop), -1)

    def connected(self, app: str, region: str, seconds: float) -> None:
        self._observe(self._connects, (app, region), seconds)

    def connect_failed(self, app: str, region: str, reason: str) -> None:
        _add(self.m.connect_errors.values, (app, region, reason), 1)

    def transferred(self, app: str, to_machine: int, to_client: int) -> None:
        counts = self._bytes
        if to_machine:
            key = (app, "to_machine")
            counts[key] = counts.get(key, 0) + to_machine
        if to_client:
            key = (app, "to_client")
            counts[key] = counts.get(key, 0) + to_client

    def decision(self, app: str, pop: str, region: str, reason: str) -> None:
        counts = self._decisions
        key = (app, pop, region, reason)
        counts[key] = counts.get(key, 0) + 1

    def panic(self, app: str) -> None:
        _add(self.m.panic.values, (app,), 1)

    def no_candidate(self, app: str, pop: str) -> None:
        _add(self.m.no_candidate.values, (app, pop), 1)

    def proxy_error(self, app: str, status: str, code: str) -> None:
        _add(self.m.proxy_errors.values, (app, status, code), 1)

    def retry(self, app: str, outcome: str) -> None:
        _add(self.m.retries.values, (app, outcome), 1)

    def replay(self, app: str, result: str) -> None:
        _add(self.m.replays.values, (app, result), 1)

    def forget(self, live_apps: frozenset[str], live_machines: frozenset[tuple[str, str]]) -> None:
        """Drop the series of apps and machines that are gone (``live_machines``: every
        (app, machine id) there is now). A series of a gone app whose connections are
        still open stays until a later change after they close."""
        apps = {*live_apps, SHARED_APP}
        m = self.m
        for series in m.traffic:
            per_machine = series is m.http_requests or series is m.http_duration
            values: dict[Any, Any] = series.values
            for key in [
                k
                for k, v in values.items()
                if _stale(k, v, series, per_machine, apps, live_machines)
            ]:
                del values[key]


def _add(counts: dict[Any, Any], key: tuple[str, ...], amount: int) -> None:
    counts[key] = counts.get(key, 0) + amount


def _stale(
    key: tuple[str, ...],
    value: Any,
    series: Series,
    per_machine: bool,
    apps: set[str],
    live_machines: frozenset[tuple[str, str]],
) -> bool:
    """A series of a gone app (its open-connection gauge only once it reads 0), or of a
    gone machine of a live app (keys (app, pop, machine, ...)); the edge's own answers,
    machine "none", stay with their app."""
    if key[0] not in apps:
        return series.kind != "gauge" or value == 0
    return per_machine and key[2] != NO_MACHINE and (key[0], key[2]) not in live_machines


class NullRecorder(Recorder):
    """``metrics.enabled: false``: the data plane records nothing (for benchmarks)."""

    def __init__(self) -> None:
        pass

    def request(
        self,
        app: str,
        pop: str,
        status: int,
        seconds: float | None,
        machine: str = NO_MACHINE,
        region: str = NO_MACHINE,
    ) -> None:
        pass

    def connection_opened(self, app: str, pop: str, port: int, handler: str) -> None:
        pass

    def connection_closed(self, app: str, pop: str) -> None:
        pass

    def connected(self, app: str, region: str, seconds: float) -> None:
        pass

    def connect_failed(self, app: str, region: str, reason: str) -> None:
        pass

    def transferred(self, app: str, to_machine: int, to_client: int) -> None:
        pass

    def decision(self, app: str, pop: str, region: str, reason: str) -> None:
        pass

    def panic(self, app: str) -> None:
        pass

    def no_candidate(self, app: str, pop: str) -> None:
        pass

    def proxy_error(self, app: str, status: str, code: str) -> None:
        pass

    def retry(self, app: str, outcome: str) -> None:
        pass

    def replay(self, app: str, result: str) -> None:
        pass

    def forget(self, live_apps: frozenset[str], live_machines: frozenset[tuple[str, str]]) -> None:
        pass
