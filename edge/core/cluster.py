"""What nodes of a cluster decide from what the others published: pure functions.

Health: each (machine, service) is checked by one node, the live node with a PoP
nearest the machine's region (``checker_of``); the others route on its published
verdict. A verdict is fresh for ``FRESH_FOR`` seconds (the checker republishes every
``edge.cluster.sharing.SHARE_INTERVAL``); older, it is stale but still used within
the platform's PM11-style "recently stopped" window (``RECENT_WINDOW``, 5 minutes): a
node whose view is stale keeps routing on the last verdict (a failed connection is
retried on another machine, as always) rather than flapping. Past the window, or with
no verdict at all for that long, a node checks the machine itself (``must_check``).

Load: every node publishes its own in-flight count per (machine, service); a node
routes on its exact local count plus the others' published counts
(``remote_load``), each at most ``LOAD_STALE_AFTER`` old: older rows (a node gone)
count as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.core.health import HealthState

NODE_STALE_AFTER = 5.0  # seconds without a heartbeat before a node is not live
FRESH_FOR = 3.0  # seconds a published health verdict is fresh
RECENT_WINDOW = 300.0  # PM11: a stale verdict is still used for this long
LOAD_STALE_AFTER = 2.0  # seconds after which a node's published load is ignored

Key = tuple[str, str, int]  # (app, machine_id, internal_port)


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    pops: tuple[str, ...]
    last_seen: float


@dataclass(frozen=True, slots=True)
class SharedVerdict:
    node: str
    passing: bool
    checked_at: float  # when the checker last confirmed it (epoch seconds)


@dataclass(frozen=True, slots=True)
class LoadRow:
    node: str
    key: Key
    concurrency: int
    published_at: float


def live_nodes(nodes: Iterable[NodeView], now: float) -> tuple[NodeView, ...]:
    return tuple(n for n in nodes if now - n.last_seen <= NODE_STALE_AFTER)


def checker_of(
    region: str, nodes: Sequence[NodeView], rtt: Callable[[str, str], float]
) -> str | None:
    """The live node nearest ``region`` (by its nearest PoP; ties: by name)."""
    ranked = [(min(rtt(p, region) for p in n.pops), n.name) for n in nodes if n.pops]
    return min(ranked)[1] if ranked else None


def shared_state(verdict: SharedVerdict | None, now: float) -> tuple[HealthState, str] | None:
    """The state a node routes a machine checked elsewhere on, and why; None when there
    is no usable verdict (none, or older than the window)."""
    if verdict is None:
        return None
    age = now - verdict.checked_at
    state = HealthState.PASSING if verdict.passing else HealthState.CRITICAL
    if age <= FRESH_FOR:
        return state, f"checked by node {verdict.node} {age:.1f}s ago"
    if age <= RECENT_WINDOW:
        return state, f"stale: last checked by node {verdict.node} {age:.0f}s ago"
    return None


def must_check(
    me: str,
    checker: str | None,
    verdict: SharedVerdict | None,
    watched_since: float,
    now: float,
) -> bool:
    """Whether this node runs the checks: it is the checker, or nobody's verdict has
    been usable for the whole window."""
    if checker is None or checker == me:
        return True
    if verdict is not None:
        return shared_state(verdict, now) is None
    return now - watched_since > RECENT_WINDOW


def uses_remote(own: HealthState, started: bool, owned: bool, remote: HealthState | None) -> bool:
    """Whether routing takes another node's verdict for a (machine, service) instead of
    this node's: when there is one, the machine is started and not in the operator's
    maint or drain, and this node does not check it, or has just taken the checks over
    and its own have not settled yet."""
    if remote is None or not started or own in (HealthState.MAINT, HealthState.DRAIN):
        return False
    return not owned or own is HealthState.UNKNOWN


def remote_load(rows: Iterable[LoadRow], me: str, now: float) -> dict[Key, int]:
    """The other nodes' fresh in-flight counts, summed per (machine, service)."""
    total: dict[Key, int] = {}
    for row in rows:
        if row.node != me and now - row.published_at <= LOAD_STALE_AFTER:
            total[row.key] = total.get(row.key, 0) + row.concurrency
    return total


def load_to_publish(local: Mapping[Key, int], published: Mapping[Key, int]) -> dict[Key, int]:
    """The rows to write: every non-zero count (refreshing its time), and a zero once for
    each count that dropped to zero since the last publish."""
    rows = {key: count for key, count in local.items() if count > 0}
    rows |= {key: 0 for key, count in published.items() if count > 0 and local.get(key, 0) == 0}
    return rows
