"""When a PoP's BGP speaker announces the anycast prefix: a pure transition rule.

The lab's agent (``edge.lab.agent``) probes the PoP's edge node every ``interval`` and
feeds each result here. The prefix is announced while the node is healthy and no node
holds a ``withdraw`` fault for this PoP. A withdraw fault acts at once; a node
failing its health probe ``fall`` times in a row is withdrawn (a dead PoP must not
blackhole its clients), and it is announced again after ``rise`` passes in a row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AnnounceState:
    announced: bool = False
    healthy: bool = False  # the node's health after rise/fall
    passes: int = 0  # consecutive passing probes
    failures: int = 0  # consecutive failing probes


@dataclass(frozen=True, slots=True)
class AnnounceRule:
    rise: int = 2
    fall: int = 2


def step(
    state: AnnounceState, probe_ok: bool, withdrawn: bool, rule: AnnounceRule
) -> AnnounceState:
    """The state after one probe result; ``announced`` says what BIRD should do."""
    passes = state.passes + 1 if probe_ok else 0
    failures = 0 if probe_ok else state.failures + 1
    healthy = state.healthy
    if healthy and failures >= rule.fall:
        healthy = False
    elif not healthy and passes >= rule.rise:
        healthy = True
    return AnnounceState(
        announced=healthy and not withdrawn, healthy=healthy, passes=passes, failures=failures
    )
