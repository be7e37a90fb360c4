"""Fixtures for integration tests: the real daemon as a process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import EdgeProcess, start_edge
from tests.integration.stores import db  # noqa: F401  (the store contract's backends)


@pytest.fixture
def edge_factory(tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    """Start daemons with ``edge_factory(config=..., extra=[...])``; all killed at the end."""
    started: list[EdgeProcess] = []

    def factory(**kwargs: Any) -> EdgeProcess:
        edge = start_edge(tmp_path, **kwargs)
        started.append(edge)
        return edge

    yield factory
    for edge in started:
        edge.kill()
