"""The /metrics exposition of the hot-path metrics, byte for byte, for a known sequence.

``golden/metrics_exposition.txt`` was written by the prometheus-client ``Counter`` /
``Gauge`` / ``Histogram`` objects the recorder used before it kept its own counters
(read at scrape time by a collector): names, labels, types, HELP, values and the order
of series must stay what they were. Regenerate it only on purpose:
``EDGE_WRITE_GOLDEN=1 .venv/bin/pytest tests/unit/test_metrics_exposition.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import generate_latest

from edge.runtime.metrics import Metrics
from edge.runtime.recorder import Recorder

GOLDEN = Path(__file__).resolve().parent / "golden" / "metrics_exposition.txt"
HOT_FAMILIES = (
    "edge_connections", "edge_http_request", "edge_upstream", "edge_bytes", "edge_route",
    "edge_no_candidate", "edge_retries", "edge_proxy_errors", "edge_panic", "edge_replays",
)  # fmt: skip


def play(recorder: Recorder) -> None:
    """Every kind of hot-path report, forgotten series and re-made ones included."""
    recorder.connection_opened("web", "lhr", 8080, "http")
    recorder.connection_opened("_shared", "fra", 80, "http")
    recorder.connection_opened("web", "lhr", 8080, "http")
    recorder.connection_closed("web", "lhr")
    for i, status in enumerate((200, 204, 301, 404, 503, 200, 101)):
        recorder.request("web", "lhr", status, 0.0001 * (i + 1) ** 3, "m1", "iad")
    recorder.request("web", "lhr", 200, 0.005, "m1", "iad")  # on a bucket's bound
    recorder.request("web", "lhr", 503, None)
    recorder.request("api", "fra", 200, 12.5, "a1", "fra")  # past the last bound
    recorder.request("api", "fra", 200, 0.3, "a2", "fra")
    recorder.connected("web", "iad", 0.0004)
    recorder.connected("web", "iad", 10.0)
    recorder.connected("api", "fra", 7.0)
    recorder.connect_failed("web", "iad", "refused")
    recorder.transferred("web", 120, 0)
    recorder.transferred("web", 0, 0)
    recorder.transferred("web", 77, 123456789012)
    recorder.decision("web", "lhr", "iad", "nearest")
    recorder.decision("web", "lhr", "iad", "nearest")
    recorder.decision("api", "fra", "fra", "panic")
    recorder.panic("api")
    recorder.no_candidate("web", "lhr")
    recorder.proxy_error("web", "503", "PR01")
    recorder.proxy_error("old", "tcp", "PC01")
    recorder.retry("web", "retried")
    recorder.replay("web", "replayed")
    recorder.replay("old", "refused_PA05")
    recorder.request("old", "lhr", 200, 0.01, "o1", "lhr")
    recorder.connection_opened("old", "lhr", 8080, "http")
    recorder.connection_closed("old", "lhr")
    recorder.forget(frozenset({"web", "api"}), frozenset({("web", "m1"), ("api", "a1")}))
    recorder.request("api", "fra", 500, 0.05, "a2", "fra")  # a forgotten series, made again
    recorder.connection_opened("web", "lhr", 8080, "http")


def hot_lines(text: str) -> list[str]:
    def name(line: str) -> str:
        return line.split(" ")[2] if line.startswith("#") else line.split("{", maxsplit=1)[0]

    return [line for line in text.splitlines() if name(line).startswith(HOT_FAMILIES)]


def exposition() -> str:
    metrics = Metrics()
    play(Recorder(metrics))
    return generate_latest(metrics.registry).decode()


def test_the_hot_path_metrics_read_as_before() -> None:
    lines = hot_lines(exposition())
    if os.environ.get("EDGE_WRITE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("\n".join(lines) + "\n")
    assert lines == GOLDEN.read_text().splitlines()


def test_the_families_keep_their_order() -> None:
    types = [line for line in exposition().splitlines() if line.startswith("# TYPE edge_")]
    names = [line.split(" ")[2] for line in types]
    assert names[:4] == [
        "edge_build_info", "edge_start_time_seconds", "edge_connections_total",
        "edge_connections_active",
    ]  # fmt: skip
    assert names.index("edge_replays_total") + 1 == names.index("edge_ipam_operations_total")
    hot = [n for n in names if n.startswith(HOT_FAMILIES)]
    golden = [line.split(" ")[2] for line in GOLDEN.read_text().splitlines() if "# TYPE" in line]
    assert hot == golden
