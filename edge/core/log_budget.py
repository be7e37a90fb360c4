"""How many log lines of one kind may be written: a fixed window per kind.

Error answers are logged one line each, and a client can provoke them at will (garbage
requests, a host name nobody serves). So each kind of line gets at most ``limit`` lines
per ``window`` seconds; the rest are counted, and the first line of the next window says
how many were left out. Metrics still count every one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Budget:
    window_start: float = -1.0
    written: int = 0  # lines written in the current window
    dropped: int = 0  # lines left out since the last written one


def admit(budget: Budget, now: float, limit: int, window: float) -> tuple[Budget, int | None]:
    """The budget after one more line at ``now``, and None if the line is dropped, else the
    number of lines dropped before it (to be said in it)."""
    if budget.window_start < 0 or now - budget.window_start >= window:
        return Budget(now, 1, 0), budget.dropped
    if budget.written < limit:
        return Budget(budget.window_start, budget.written + 1, 0), budget.dropped
    return Budget(budget.window_start, budget.written, budget.dropped + 1), None
