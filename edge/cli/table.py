"""Borderless tables with upper-case headers, as the platform's CLI prints them."""

from __future__ import annotations

from collections.abc import Sequence


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; a row may carry extra trailing notes."""
    width = max([len(headers), *(len(r) for r in rows)])
    cells = [[str(h).upper() for h in headers] + [""] * (width - len(headers))]
    cells += [["" if c is None else str(c) for c in r] + [""] * (width - len(r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(width)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
