"""The edge's own resource limits: how many client connections the data plane takes.

Every proxied connection needs two descriptors (the client's and the machine's), and the
edge needs more for itself: health checks, the control plane, listeners, the store and
logs. So the data plane stops accepting well before the descriptor limit, and a
machine is never judged by what the edge itself lacks.
"""

from __future__ import annotations

import errno
from typing import Final

MIN_RESERVE: Final = 64  # descriptors kept for health checks, control plane, store, logs
MIN_CONNECTIONS: Final = 16
NOFILE_CAP: Final = 1 << 20  # what "unlimited" counts as
RESUME_FRACTION: Final = 0.9  # accepting resumes once the count is below this share
EXHAUSTION_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE})


def descriptor_reserve(nofile: int) -> int:
    """Descriptors the data plane leaves to the rest of the edge: 1/8 of the limit, >= 64."""
    return max(MIN_RESERVE, min(nofile, NOFILE_CAP) // 8)


def default_max_connections(nofile: int) -> int:
    """``edge.max_connections`` when the config says nothing, from RLIMIT_NOFILE's soft
    limit: two descriptors per connection after the reserve (at least 16)."""
    nofile = min(nofile, NOFILE_CAP)
    return max(MIN_CONNECTIONS, (nofile - descriptor_reserve(nofile)) // 2)


def resume_below(limit: int) -> int:
    """Accepting, paused at ``limit`` open connections, resumes below this count."""
    return max(1, min(limit - 1, int(limit * RESUME_FRACTION)))


def accepting(open_connections: int, limit: int, paused: bool) -> bool:
    """Whether the data plane accepts new connections (hysteresis between the bounds)."""
    if paused:
        return open_connections < resume_below(limit)
    return open_connections < limit


def edge_exhausted(error_number: int | None) -> bool:
    """Whether an OS error means the edge ran out of descriptors (not the machine's fault)."""
    return error_number in EXHAUSTION_ERRNOS
