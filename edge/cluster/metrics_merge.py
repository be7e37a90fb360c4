"""``/metrics`` of a node with worker processes: one scrape per worker, merged.

The worker that answers fetches every other live worker's own metrics
(``/metrics?worker=self`` on its private address, from the shared tables) and merges
them with its own, so Prometheus scrapes one target per node:

- counters, histograms and summaries are summed (requests, bytes, latency buckets);
- per-process gauges that add up (memory, open fds) are summed, start times take the
  earliest;
- every other gauge describes the node's shared state (health, IPs, listeners, load on
  the summed view) and is the answering worker's value, not a sum.

A worker that does not answer within ``PEER_TIMEOUT`` is left out (and counted in
``edge_metrics_workers_missing``), so one stuck worker cannot stall a scrape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from edge.core.cluster import NODE_STALE_AFTER

if TYPE_CHECKING:
    from edge.cluster.node import ClusterLink

PEER_TIMEOUT = 1.0  # seconds
SUMMED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
ADDITIVE_GAUGES = frozenset(
    {"process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds"}
)
EARLIEST = ("_created", "start_time_seconds")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def _combine(family: Metric, sample: Sample, old: float, new: float) -> float:
    if sample.name.endswith(EARLIEST):
        return min(old, new)
    if family.type in SUMMED or family.name in ADDITIVE_GAUGES:
        return old + new
    return old  # the answering worker's view of shared state


def merge(expositions: Iterable[str]) -> list[Metric]:
    """Families of the first exposition, with the others' samples folded in."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[SampleKey, tuple[Sample, float]]] = {}
    for text in expositions:
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            seen = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key in seen:
                    first, value = seen[key]
                    seen[key] = (first, _combine(merged, sample, value, sample.value))
                else:
                    seen[key] = (sample, sample.value)
    for name, family in families.items():
        family.samples = [
            Sample(s.name, s.labels, value, s.timestamp, s.exemplar)
            for s, value in values[name].values()
        ]
    return list(families.values())


class _Merged(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def render(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families))
    return generate_latest(registry)


async def _fetch(session: aiohttp.ClientSession, api: str) -> str | None:
    try:
        async with session.get(f"http://{api}/metrics", params={"worker": "self"}) as answer:
            return await answer.text() if answer.status == 200 else None
    except (TimeoutError, aiohttp.ClientError):
        return None


async def merged_scrape(link: ClusterLink, registry: CollectorRegistry) -> bytes:
    own = generate_latest(registry).decode()
    me = link.me.name
    prefix = me.rsplit("#", 1)[0] + "#"
    now = time.time()
    peers = [
        n.api
        for n in await asyncio.to_thread(link.tables.nodes)
        if n.name.startswith(prefix) and n.name != me and now - n.last_seen <= NODE_STALE_AFTER
    ]
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        texts = await asyncio.gather(*(_fetch(session, api) for api in peers))
    missing = sum(1 for text in texts if text is None)
    note = (
        "# HELP edge_metrics_workers Worker processes merged into this scrape\n"
        "# TYPE edge_metrics_workers gauge\n"
        f"edge_metrics_workers {1 + len(peers) - missing}\n"
        "# HELP edge_metrics_workers_missing Workers that did not answer in time\n"
        "# TYPE edge_metrics_workers_missing gauge\n"
        f"edge_metrics_workers_missing {missing}\n"
    )
    return render(merge([own, *(t for t in texts if t is not None), note]))
