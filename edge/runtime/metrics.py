"""Every Prometheus collector edge exports, on an injected registry.

The core returns observations; the shell records them here. Each daemon (and each
test) builds its own ``Metrics`` with a fresh ``CollectorRegistry``, so nothing is
global and nothing is registered twice.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from edge import __version__


class Metrics:
    """The collectors of one daemon. Label sets are bounded: never a client address."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.build_info = Info("edge_build", "Version of the running edge", registry=self.registry)
        self.build_info.info({"version": __version__})
        self.start_time = Gauge(
            "edge_start_time_seconds",
            "Unix time the daemon started",
            registry=self.registry,
        )
