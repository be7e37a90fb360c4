"""The hot-path metrics' own storage: plain dicts written per request, read at scrape time.

A prometheus-client ``Counter.labels(...).inc()`` takes a lock and walks a few Python
layers; per request that was a measurable share of the relay's CPU. Here each labelled
metric is a ``Series``: a dict from label values to a number (or, for a histogram, a list
of per-bucket counts and the sum), incremented in place by ``Recorder``. One
``TrafficCollector`` turns them into metric families when Prometheus scrapes, with the
names, HELP, types, label names, bucket bounds and series order that the client's own
objects would write (tests/unit/test_metrics_exposition.py holds that to a golden file).

The daemon is one event loop: writes and the scrape happen on it, and a scrape copies
each dict (``list(d.items())``, atomic under the GIL) before reading it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = tuple[str, ...]
Kind = Literal["counter", "gauge", "histogram"]


class Series:
    """One labelled metric: label values -> value (histograms: bucket counts + sum)."""

    __slots__ = ("_les", "bounds", "documentation", "kind", "labels", "name", "values")

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        kind: Kind = "counter",
        bounds: Sequence[float] = (),
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.kind = kind
        # A histogram's upper bounds, +Inf last, as prometheus-client keeps them.
        self.bounds = (*bounds, float("inf")) if kind == "histogram" else ()
        self._les = tuple(floatToGoString(b) for b in self.bounds)  # type: ignore[no-untyped-call]
        # counter, gauge: float; histogram: [count of bucket 0 .. n, sum] (not cumulative)
        self.values: dict[Labels, Any] = {}

    def family(self) -> Metric:
        if self.kind == "histogram":
            return self._histogram()
        maker = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = maker(self.name, self.documentation, labels=self.labels)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        return family

    def _histogram(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, counts in list(self.values.items()):
            assert isinstance(counts, list)
            cumulative, running = [], 0.0
            for le, n in zip(self._les, counts, strict=False):
                running += n
                cumulative.append((le, running))
            family.add_metric(labels, cumulative, counts[-1])
        return family

    def new_histogram_row(self) -> list[float]:
        return [0.0] * len(self.bounds) + [0.0]


class TrafficCollector(Collector):
    """The hot-path series, as metric families, in the order they were defined."""

    def __init__(self, series: Sequence[Series]) -> None:
        self.series = tuple(series)

    def collect(self) -> Iterator[Metric]:
        for series in self.series:
            yield series.family()
