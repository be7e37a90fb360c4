"""Schema-driven fuzzing of the control plane: the server and ``/v1/openapi.json`` agree.

Every operation the document lists (whatever routes exist when this runs) gets
``EXAMPLES`` schema-valid requests against the real daemon with the admin token, checked
by every schemathesis check: no 5xx, no status code, content type or body the document
does not describe, no schema-valid request refused. Then ``NEGATIVE_EXAMPLES``
schema-violating ones: no 5xx and only documented answers. Bounded: no shrinking, a few
examples per operation, a time budget; the same examples each run unless
``EDGE_FUZZ_RANDOM=1`` (then new ones: run it that way now and then).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import demo_machines, write_edge_config

EXAMPLES = 30
# The same examples on every run (CI stays reproducible); EDGE_FUZZ_RANDOM=1 explores anew.
RANDOM = os.environ.get("EDGE_FUZZ_RANDOM") == "1"
NEGATIVE_EXAMPLES = 15
NEGATIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BUDGET_SECONDS = 90.0


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    app = {
        "app": "hello",
        "primary_region": "lhr",
        "services": [
            {"internal_port": 8080, "ports": [{"port": free_port(), "handlers": ["http"]}]}
        ],
        "machines": demo_machines("hello", ["lhr", "iad"]),
    }
    process = start_edge(tmp, config=write_edge_config(tmp, [app]))
    yield process
    process.kill()


def breaks_a_rule_stated_in_words(case: schemathesis.Case) -> bool:
    """Rules JSON Schema cannot state, which the document says in its descriptions: in
    an app file, public ports are unique across services and machine ids across machines;
    an address moves to another app than the one in the URL."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.path.endswith("/move"):
        return bool(body.get("app") == (case.path_parameters or {}).get("app"))
    if case.method != "PUT":
        return False
    services = body.get("services") or []
    ports = [p.get("port") for s in services for p in s.get("ports", ())]
    ids = [m["id"] for m in body.get("machines") or () if "id" in m]
    return len(ports) != len(set(ports)) or len(ids) != len(set(ids))


def run_operation(
    operation: schemathesis.APIOperation, edge: EdgeProcess, mode: GenerationMode
) -> None:
    headers = {"Authorization": f"Bearer {edge.token()}"}
    # Schema-violating requests must be refused with a documented 4xx, never a 5xx; whether
    # the server is stricter than the document there (negative_data_rejection) is not asked.
    checks = None if mode == GenerationMode.POSITIVE else NEGATIVE_CHECKS
    strategy = operation.as_strategy(generation_mode=mode)
    if mode == GenerationMode.POSITIVE:
        strategy = strategy.filter(lambda c: not breaks_a_rule_stated_in_words(c))

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES if mode == GenerationMode.POSITIVE else NEGATIVE_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded in time
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=edge.url, headers=headers, checks=checks)

    with contextlib.suppress(Unsatisfiable):  # e.g. nothing to violate: no parameters
        check()


def test_the_api_agrees_with_its_document(edge: EdgeProcess) -> None:
    schema = schemathesis.openapi.from_url(edge.url + "/v1/openapi.json")
    started = time.monotonic()
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() - started > BUDGET_SECONDS:
                failures.append(f"time budget spent before {operation.label}")
                break
            tried += 1
            try:
                run_operation(operation, edge, mode)
            except BaseException as exc:  # every operation's failures, then report them all
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert tried >= 10
    assert not failures, "\n\n".join(failures)
    assert "unexpected error" not in edge.log()
