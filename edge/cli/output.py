"""Printing for ``edgectl``: tables for people, ``--json`` for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence

from edge.cli.table import render_table


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], empty: str) -> None:
    print(render_table(headers, rows) if rows else empty)
