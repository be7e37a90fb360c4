"""Merging the workers' scrapes (edge.cluster.metrics_merge): counters and histograms
add up, per-process sizes add up, start times take the earliest, state gauges are the
answering worker's."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from edge.cluster.metrics_merge import merge, render

ONE = """# HELP edge_http_requests_total HTTP requests answered
# TYPE edge_http_requests_total counter
edge_http_requests_total{app="web",result="ok"} 120.0
# HELP edge_machine_load Open connections or in-flight requests
# TYPE edge_machine_load gauge
edge_machine_load{app="web",machine="m1"} 4.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1000.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 200.0
# HELP edge_request_seconds Latency
# TYPE edge_request_seconds histogram
edge_request_seconds_bucket{le="0.1"} 3.0
edge_request_seconds_bucket{le="+Inf"} 4.0
edge_request_seconds_count 4.0
edge_request_seconds_sum 0.5
"""
TWO = ONE.replace("120.0", "80.0").replace("4.0\n# HELP process", "9.0\n# HELP process")
TWO = TWO.replace("1000.0", "500.0").replace("200.0", "100.0")
TWO += 'edge_http_requests_total{app="api",result="ok"} 5.0\n'


def values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_workers_scrapes_merge_by_kind() -> None:
    merged = values(render(merge([ONE, TWO])))
    assert merged[("edge_http_requests_total", (("app", "web"), ("result", "ok")))] == 200
    assert merged[("edge_http_requests_total", (("app", "api"), ("result", "ok")))] == 5
    assert merged[("edge_request_seconds_bucket", (("le", "0.1"),))] == 6
    assert merged[("edge_request_seconds_count", ())] == 8
    assert merged[("process_resident_memory_bytes", ())] == 1500
    assert merged[("process_start_time_seconds", ())] == 100
    # the summed load is every worker's view already: the answering worker's value
    assert merged[("edge_machine_load", (("app", "web"), ("machine", "m1")))] == 4
