"""The hot-path recorder: children cached per label set; the null recorder records nothing."""

from __future__ import annotations

from prometheus_client import generate_latest

from edge.runtime.metrics import Metrics
from edge.runtime.recorder import NullRecorder, Recorder


def test_recorder_counts_requests_by_code_class() -> None:
    metrics = Metrics()
    recorder = Recorder(metrics)
    for status in (200, 204, 503):
        recorder.request("web", "lhr", status, 0.01, "m1", "iad")
    recorder.request("web", "lhr", 503, None)  # the edge's own answer: no machine
    text = generate_latest(metrics.registry).decode()
    labels = 'app="web",code_class="2xx",machine="m1",pop="lhr",region="iad"'
    assert f"edge_http_requests_total{{{labels}}} 2.0" in text
    labels = 'app="web",code_class="5xx",machine="none",pop="lhr",region="none"'
    assert f"edge_http_requests_total{{{labels}}} 1.0" in text
    labels = 'app="web",machine="m1",pop="lhr",region="iad"'
    assert f"edge_http_request_duration_seconds_count{{{labels}}} 3.0" in text
    assert "_created" not in text


def test_series_of_gone_machines_and_apps_are_dropped() -> None:
    metrics = Metrics()
    recorder = Recorder(metrics)
    recorder.request("web", "lhr", 200, 0.01, "m1", "lhr")
    recorder.request("web", "lhr", 200, 0.01, "m2", "lhr")
    recorder.request("web", "lhr", 404, None)
    recorder.request("old", "lhr", 200, 0.01, "o1", "lhr")
    recorder.connection_opened("old", "lhr", 80, "http")
    recorder.forget(frozenset({"web"}), frozenset({("web", "m1")}))
    text = generate_latest(metrics.registry).decode()
    assert 'machine="m1"' in text and 'machine="m2"' not in text
    assert 'code_class="4xx",machine="none"' in text
    assert 'edge_connections_active{app="old",pop="lhr"} 1.0' in text  # still open
    assert 'machine="o1"' not in text
    recorder.connection_closed("old", "lhr")
    recorder.forget(frozenset({"web"}), frozenset({("web", "m1")}))
    assert 'app="old"' not in generate_latest(metrics.registry).decode()
    recorder.request("web", "lhr", 200, 0.01, "m1", "lhr")  # children are made again
    assert 'machine="m1"' in generate_latest(metrics.registry).decode()


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
    null.forget(frozenset(), frozenset())


def test_connections_active_goes_up_and_down() -> None:
    metrics = Metrics()
    recorder = Recorder(metrics)
    recorder.connection_opened("web", "lhr", 8080, "http")
    recorder.connection_opened("web", "lhr", 8080, "http")
    recorder.connection_closed("web", "lhr")
    text = generate_latest(metrics.registry).decode()
    assert 'edge_connections_active{app="web",pop="lhr"} 1.0' in text
    assert 'edge_connections_total{app="web",handler="http",pop="lhr",port="8080"} 2.0' in text


def test_the_edges_own_answers_are_counted_by_code_and_dropped_with_their_app() -> None:
    metrics = Metrics()
    recorder = Recorder(metrics)
    recorder.proxy_error("web", "503", "PR01")
    recorder.proxy_error("web", "503", "PR01")
    recorder.proxy_error("old", "tcp", "PC01")
    text = generate_latest(metrics.registry).decode()
    assert 'edge_proxy_errors_total{app="web",code="PR01",status="503"} 2.0' in text
    recorder.forget(frozenset({"web"}), frozenset())
    text = generate_latest(metrics.registry).decode()
    assert 'app="old"' not in text and 'code="PR01"' in text
    NullRecorder().proxy_error("a", "400", "none")
