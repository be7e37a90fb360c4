"""The one word a machine's health is shown as: "no checks" only when nothing checks it."""

from __future__ import annotations

import pytest

from edge.runtime.dataplane import machine_health


@pytest.mark.parametrize(
    ("state", "services", "word"),
    [
        ("stopped", ["passing"], "stopped"),
        ("started", [], "no checks"),
        ("started", ["no checks"], "no checks"),
        ("started", ["no checks", "passing"], "passing"),
        ("started", ["no checks", "critical"], "critical"),
        ("started", ["unknown", "passing"], "unknown"),
        ("started", ["maint", "no checks"], "maint"),
    ],
)
def test_machine_health(state: str, services: list[str], word: str) -> None:
    assert machine_health(state, services) == word
