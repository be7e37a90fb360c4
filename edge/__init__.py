"""edge: an anycast edge proxy and load-balancer simulator.

Architecture (see docs/ARCHITECTURE.md for the path of a connection):

- ``edge.config``: YAML parsed once into frozen, validated objects (pydantic).
- ``edge.core``: the functional core. Regions and the latency model, anycast
  ingress, IP allocation rules, the routing snapshot and strategies, health state.
  Plain synchronous code over immutable values; time and randomness are inputs.
  It imports nothing from asyncio, sockets, aiohttp or prometheus_client.
- ``edge.store``: persistence behind a small interface (SQLite by default).
- ``edge.dataplane``: the hot path. uvloop ``asyncio.Protocol`` relays for raw
  TCP and HTTP/1.1 (httptools), reading the routing snapshot they captured.
- ``edge.runtime``: the I/O shell. Daemon lifecycle, listener reconciliation,
  health-check runners, demo machines, metrics recording.
- ``edge.api``: the aiohttp control plane (REST API, /metrics, /healthz).
- ``edge.cli``: ``edge`` (daemon and local commands) and ``edgectl`` (API client).
"""

from edge.build import extensions_disabled, install_source_only_finder

__version__ = "0.1.0"

# EDGE_NO_EXTENSIONS=1: every edge module loads from its .py, even where a compiled
# extension sits beside it (see edge/build.py and docs/PERFORMANCE.md).
if extensions_disabled():
    install_source_only_finder()
