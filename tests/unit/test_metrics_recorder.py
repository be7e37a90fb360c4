"""The hot-path recorder: children cached per label set; the null recorder records nothing."""

from __future__ import annotations

from prometheus_client import generate_latest

from edge.runtime.metrics import Metrics, NullRecorder, Recorder


def test_recorder_counts_requests_by_code_class() -> None:
    metrics = Metrics()
    recorder = Recorder(metrics)
    for status in (200, 204, 503):
        recorder.request("web", "lhr", status, 0.01)
    text = generate_latest(metrics.registry).decode()
    assert 'edge_http_requests_total{app="web",code_class="2xx",pop="lhr"} 2.0' in text
    assert 'edge_http_requests_total{app="web",code_class="5xx",pop="lhr"} 1.0' in text
    assert 'edge_http_request_duration_seconds_count{app="web",pop="lhr"} 3.0' in text


def test_every_recorder_method_works_on_the_null_recorder() -> None:
    null = NullRecorder()
    null.request("a", "lhr", 200, 0.1)
    null.connection_opened("a", "lhr", 80, "http")
    null.connection_closed("a", "lhr")
    null.connected("a", "lhr", 0.1)
    null.connect_failed("a", "lhr", "refused")
    null.transferred("a", 1, 2)
    null.decision("a", "lhr", "lhr", "nearest")
    null.panic("a")
    null.no_candidate("a", "lhr")
    null.retry("a", "retried")


def test_connections_active_goes_up_and_down() -> None:
    metrics = Metrics()
    recorder = Recorder(metrics)
    recorder.connection_opened("web", "lhr", 8080, "http")
    recorder.connection_opened("web", "lhr", 8080, "http")
    recorder.connection_closed("web", "lhr")
    text = generate_latest(metrics.registry).decode()
    assert 'edge_connections_active{app="web",pop="lhr"} 1.0' in text
    assert 'edge_connections_total{app="web",handler="http",pop="lhr",port="8080"} 2.0' in text
