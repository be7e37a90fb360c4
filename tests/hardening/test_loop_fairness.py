"""One client must not hold the event loop: a 60 MB upload of 1-byte chunks to one app
while another client uses another app, against the real daemon (bounded in time).

The upload and the machines run as processes of their own (``load_proc``), so only the
measuring client shares this process. ``EDGE_FAIRNESS_REPORT=1`` prints the figures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from edge.runtime.metrics import ERROR
from tests.hardening.conftest import EdgeFactory, Site, start_site
from tests.integration.daemon import ROOT

UPLOAD_BYTES = 60_000_000


@pytest.fixture
def sink_site(edge_factory: EdgeFactory, tmp_path: Path) -> Iterator[Site]:
    """The hardening site, its machines being ``load_proc sink`` processes."""
    with ExitStack() as stack:
        ports = {}
        for name in ("alpha", "beta"):
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.hardening.load_proc", "sink"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
            )
            assert proc.stdout is not None
            stack.callback(proc.stdout.close)
            stack.callback(proc.wait, 10)
            stack.callback(proc.kill)
            ports[name] = int(proc.stdout.readline())
        yield start_site(edge_factory, tmp_path, stack, backends=ports)


def get_latencies(site: Site, uploader: subprocess.Popen[str] | None, count: int) -> list[float]:
    """Latencies (s) of GETs to app beta on one keep-alive connection."""
    request = b"GET /x HTTP/1.1\r\nHost: beta.edge.test\r\n\r\n"
    latencies: list[float] = []
    with socket.create_connection((site.ips["beta"], site.http_port), timeout=30) as sock:
        while len(latencies) < count or (uploader is not None and uploader.poll() is None):
            started = time.perf_counter()
            sock.sendall(request)
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)
    return latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def failed_checks(site: Site) -> float:
    total = 0.0
    for line in site.edge.get_text("/metrics").splitlines():
        if line.startswith("edge_health_checks_total{") and f'result="{ERROR}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_tiny_chunk_upload_does_not_hold_the_loop(sink_site: Site) -> None:
    site = sink_site
    baseline = get_latencies(site, None, 300)
    failures_before = failed_checks(site)
    args = ["upload", site.ips["alpha"], str(site.http_port), "alpha.edge.test"]
    with subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.load_proc", *args, str(UPLOAD_BYTES)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as uploader:
        during = get_latencies(site, uploader, 50)
        out, _ = uploader.communicate(timeout=120)
    status, seconds = out.split()
    assert status == "200", out
    if os.environ.get("EDGE_FAIRNESS_REPORT"):
        print(
            f"\nupload {UPLOAD_BYTES / 1e6:.0f} MB of 1-byte chunks in {seconds}s;"
            f" other client's GET p99 {p99(baseline) * 1000:.1f} ms without it,"
            f" {p99(during) * 1000:.1f} ms during it ({len(during)} requests),"
            f" max {max(during) * 1000:.1f} ms"
        )
    # "Within a few ms of normal", with room for a loaded 2-core CI machine: before the
    # fix the loop was held for a second and more at a time.
    assert p99(during) < p99(baseline) + 0.1, sorted(during)[-5:]
    assert site.health()["beta-1"] == "passing"
    assert failed_checks(site) == failures_before
