"""The error code table: the doc written from it, and the pure code choices (tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.core.error_codes import (
    ERRORS,
    UNCODED,
    ErrorCode,
    capacity_code,
    connect_failure_code,
    describe,
    doc_table,
    no_candidate_code,
)
from edge.core.log_budget import Budget, admit

DOC = Path(__file__).resolve().parents[2] / "docs" / "error-codes.md"


def test_the_doc_is_the_table() -> None:
    assert DOC.read_text() == doc_table(), "run scripts/error-codes-doc"


def test_every_code_has_its_entry_and_the_doc_names_it() -> None:
    assert set(ERRORS) == set(ErrorCode)
    for code in ErrorCode:
        assert describe(code).code is code
        assert f"| {code} |" in doc_table()


def test_answers_without_a_code_are_listed_once() -> None:
    statuses = [a.status for a in UNCODED]
    assert len(statuses) == len(set(statuses))
    for status in statuses:
        assert f"| {status} |" in doc_table()


@pytest.mark.parametrize(
    ("reason", "attempts", "code"),
    [
        ("refused", 1, ErrorCode.PC01),
        ("reset", 1, ErrorCode.PC03),
        ("cancelled", 1, ErrorCode.PC04),
        ("timeout", 1, ErrorCode.PC05),
        ("unreachable", 1, ErrorCode.PC06),
        ("something new", 1, ErrorCode.PC06),
        ("refused", 2, ErrorCode.PC07),
        ("timeout", 3, ErrorCode.PC07),
    ],
)
def test_connect_failure_codes(reason: str, attempts: int, code: ErrorCode) -> None:
    assert connect_failure_code(reason, attempts) is code


@pytest.mark.parametrize(
    ("instance_missing", "retried", "code"),
    [
        (False, False, ErrorCode.PR01),
        (False, True, ErrorCode.PR03),
        (True, False, ErrorCode.PR02),
        (True, True, ErrorCode.PR02),
    ],
)
def test_no_candidate_codes(instance_missing: bool, retried: bool, code: ErrorCode) -> None:
    assert no_candidate_code(instance_missing=instance_missing, retried=retried) is code


def test_capacity_codes() -> None:
    assert capacity_code(http=True) is ErrorCode.PL02
    assert capacity_code(http=False) is ErrorCode.PL01


def test_edge_gives_text_exists_for_the_codes_edge_emits() -> None:
    emitted = {"PC01", "PC03", "PC04", "PC05", "PC06", "PC07", "PU02", "PR01", "PR02", "PR03"}
    emitted |= {"PL01", "PL02"}
    for code in emitted:
        assert ERRORS[ErrorCode(code)].edge_gives


def test_log_budget_drops_past_the_limit_and_reports_the_drops() -> None:
    budget = Budget()
    said: list[int | None] = []
    for now in (0.0, 0.1, 0.2, 0.3, 0.9, 1.0, 1.1):
        budget, dropped = admit(budget, now, 2, 1.0)
        said.append(dropped)
    # two lines, three dropped, then a new window: its first line says 3 were left out
    assert said == [0, 0, None, None, None, 3, 0]
