"""Schema-driven fuzzing of the control plane: the server and ``/v1/openapi.json`` agree.

Every operation the document lists (whatever routes exist when this runs) gets
``EXAMPLES`` generated requests against the real daemon with the admin token, positive
(schema-valid) and negative (schema-violating) ones, checked by schemathesis: no 5xx, no
status code or body the document does not describe, schema-valid requests accepted and
invalid ones rejected. Bounded: no shrinking, a few examples per operation, a time budget.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.integration.daemon import EdgeProcess, free_port, start_edge
from tests.integration.edgeconf import demo_machines, write_edge_config

EXAMPLES = 30
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
    an app file, public ports are unique across services and machine ids across machines."""
    body = case.body if isinstance(case.body, dict) and case.method == "PUT" else {}
    services = body.get("services") or []
    ports = [p.get("port") for s in services for p in s.get("ports", ())]
    ids = [m["id"] for m in body.get("machines") or () if "id" in m]
    return len(ports) != len(set(ports)) or len(ids) != len(set(ids))


def run_operation(operation: schemathesis.APIOperation, edge: EdgeProcess) -> None:
    headers = {"Authorization": f"Bearer {edge.token()}"}

    @given(case=operation.as_strategy().filter(lambda c: not breaks_a_rule_stated_in_words(c)))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded in time
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=edge.url, headers=headers)

    check()


def test_the_api_agrees_with_its_document(edge: EdgeProcess) -> None:
    schema = schemathesis.openapi.from_url(edge.url + "/v1/openapi.json")
    started = time.monotonic()
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if time.monotonic() - started > BUDGET_SECONDS:
            failures.append(f"time budget spent before {operation.label}")
            break
        tried += 1
        try:
            run_operation(operation, edge)
        except BaseException as exc:  # every operation's failures, then report them all
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {exc}")
    assert tried >= 10
    assert not failures, "\n\n".join(failures)
    assert "unexpected error" not in edge.log()
