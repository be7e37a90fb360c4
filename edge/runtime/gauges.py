"""Scrape-time gauges: state read from the data plane when Prometheus asks.

Each provider yields rows only for things that exist now: a destroyed app's or a removed
machine's series are dropped, never left at 0 (edge.runtime.metrics says the rules)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from edge.runtime.dataplane import DataPlane
from edge.runtime.health_checks import NO_CHECKS
from edge.runtime.metrics import GaugeRows, Metrics

# The machine's health word, and its label value (no spaces in label values).
HEALTH_STATES = {
    "passing": "passing", "critical": "critical", "unknown": "unknown", "maint": "maint",
    "drain": "drain", "stopped": "stopped", NO_CHECKS: "no_checks",
}  # fmt: skip


def machine_health(dataplane: DataPlane) -> Iterator[tuple[tuple[str, ...], float]]:
    snapshot = dataplane.last_snapshot
    if snapshot is None:
        return
    for machine in snapshot.machines:
        current = dataplane.machine_view(machine)["health"]
        for state, label in HEALTH_STATES.items():
            labels = (machine.app, machine.id, machine.region, label)
            yield labels, 1.0 if state == current else 0.0


def machine_load(dataplane: DataPlane) -> GaugeRows:
    load: Counter[tuple[str, str]] = Counter()
    for (app, machine_id, _port), stats in dataplane.state.endpoint_stats().items():
        load[(app, machine_id)] += stats.active
    return [((app, machine), float(value)) for (app, machine), value in load.items()]


def ejections(dataplane: DataPlane) -> GaugeRows:
    now = dataplane.state.clock()  # ejections are stamped by routing's clock
    counts: Counter[str] = Counter()
    for (app, _machine, _port), stats in dataplane.state.endpoint_stats().items():
        counts[app] += 0
        if stats.ejected_until > now:
            counts[app] += 1
    return [((app,), float(n)) for app, n in counts.items()]


def ip_assignments(dataplane: DataPlane) -> GaugeRows:
    snapshot = dataplane.last_snapshot
    counts: Counter[tuple[str, str]] = Counter()
    for ip in snapshot.ips if snapshot else ():
        counts[(ip.org, ip.type)] += 1
    return [(labels, float(n)) for labels, n in counts.items()]


def pops(dataplane: DataPlane) -> GaugeRows:
    up = set(dataplane.state.pops_up)
    return [((pop,), 1.0 if pop in up else 0.0) for pop in dataplane.config.edge.pops]


def queue_lengths(dataplane: DataPlane) -> GaugeRows:
    lengths: Counter[str] = Counter()
    live = dataplane.state.snapshot.apps
    for (app, _port), queue in dataplane.state.queues.items():
        if app in live:  # a gone app's series is dropped, like every gauge of a gone thing
            lengths[app] += len(queue)
    return [((app,), float(n)) for app, n in lengths.items()]


def register_gauges(metrics: Metrics, dataplane: DataPlane) -> None:
    """Point each scrape-time gauge at the data plane it reads."""
    metrics.machine_health.provider = lambda: machine_health(dataplane)
    metrics.machine_load.provider = lambda: machine_load(dataplane)
    metrics.ejections_active.provider = lambda: ejections(dataplane)
    metrics.ip_assignments.provider = lambda: ip_assignments(dataplane)
    metrics.listeners.provider = lambda: [
        ((family,), float(n)) for family, n in dataplane.listeners.counts().items()
    ]
    metrics.pop_up.provider = lambda: pops(dataplane)
    metrics.queue_length.provider = lambda: queue_lengths(dataplane)
    metrics.faults_active.provider = lambda: [
        ((kind,), float(n)) for kind, n in dataplane.faults.counts().items()
    ]
