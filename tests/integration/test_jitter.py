"""Jitter through the real daemon: with it on, a simulated path's p99 is well above its p50."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess
from tests.integration.edgeconf import http_app, write_edge_config

EdgeFactory = Callable[..., EdgeProcess]


def timings(address: str, port: int, count: int) -> list[float]:
    """Seconds per request over one keep-alive connection (its setup not counted)."""
    conn = http.client.HTTPConnection(address, port, timeout=10)
    out = []
    try:
        for i in range(count + 1):
            started = time.monotonic()
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            if i:  # the first request also pays the client's connection round trip
                out.append(time.monotonic() - started)
    finally:
        conn.close()
    return sorted(out)


def test_lognormal_jitter_spreads_the_latency_of_a_simulated_path(
    edge_factory: EdgeFactory, tmp_path: Path
) -> None:
    web, http_port, _ = http_app("web", ["lhr"])
    config = write_edge_config(tmp_path, [web], simulate_latency=True)
    text = config.read_text() + (
        "latency:\n  jitter: {distribution: lognormal, median: 20ms, sigma: 1.0, seed: 11}\n"
    )
    config.write_text(text)
    edge = edge_factory(config=config)
    address = Api.admin(edge).get("/v1/apps/web/ip_assignments")[1]["ips"][0]["ip"]
    times = timings(address, http_port, 100)
    p50, p99 = times[49], times[98]
    # lhr -> lhr is 6 ms modelled; the jitter adds a median of 20 ms and a p99 of ~205 ms.
    assert 0.020 <= p50 <= 0.080, times
    assert p99 - p50 >= 0.060, times
    assert p99 >= 3 * p50, times
