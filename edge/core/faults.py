"""Injected faults (Toxiproxy's toxics, built into the edge), as plain values.

A fault has a kind, a scope (one machine, a whole region, or a PoP) and attributes.
Toxics (latency, bandwidth, timeout, reset_peer, slow_close, limit_data) act on the
edge's side of the connection to the machine, in one direction (``stream``):
``upstream`` is client -> machine, ``downstream`` machine -> client (Toxiproxy's
default). ``down`` makes connections to a machine (or every machine of a region) fail
as refused. ``withdraw`` takes a PoP's anycast route away, so its clients land on
the next nearest PoP. Faults live in memory only: a restart clears them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from edge.errors import BadRequest

FaultKind = Literal[
    "latency", "bandwidth", "timeout", "reset_peer", "slow_close", "limit_data", "down", "withdraw"
]  # fmt: skip
FAULT_KINDS: tuple[FaultKind, ...] = (
    "latency", "bandwidth", "timeout", "reset_peer", "slow_close", "limit_data", "down", "withdraw",
)  # fmt: skip
TOXIC_KINDS = frozenset(
    {"latency", "bandwidth", "timeout", "reset_peer", "slow_close", "limit_data"}
)
Scope = Literal["machine", "region", "pop"]
Stream = Literal["upstream", "downstream"]


@dataclass(frozen=True, slots=True)
class Fault:
    id: str
    kind: FaultKind
    scope: Scope
    target: str  # the machine id, region code or PoP code
    app: str | None = None  # for machine scope: the machine's app
    org: str | None = None  # who may see and remove it (None: admin only)
    stream: Stream = "downstream"
    latency: float = 0.0  # seconds (latency)
    jitter: float = 0.0  # seconds, +- uniform (latency)
    rate: float = 0.0  # KB/s (bandwidth)
    timeout: float = 0.0  # seconds (timeout: 0 = black hole until removed; reset_peer)
    delay: float = 0.0  # seconds (slow_close)
    bytes: int = 0  # limit_data
    created_at: float = 0.0

    @property
    def is_toxic(self) -> bool:
        return self.kind in TOXIC_KINDS


_SCOPES_OF: dict[str, tuple[Scope, ...]] = {
    "withdraw": ("pop",),
    "down": ("machine", "region"),
}


def check_fault(fault: Fault) -> Fault:
    """The fault, or BadRequest saying what is wrong with it."""
    allowed = _SCOPES_OF.get(fault.kind, ("machine", "region", "pop"))
    if fault.scope not in allowed:
        raise BadRequest(f"a {fault.kind} fault applies to: {', '.join(allowed)}")
    if fault.scope == "machine" and not fault.app:
        raise BadRequest("a machine fault needs the machine's app (app)")
    needs = {
        "latency": fault.latency > 0,
        "bandwidth": fault.rate > 0,
        "slow_close": fault.delay > 0,
        "limit_data": fault.bytes > 0,
    }
    if not needs.get(fault.kind, True):
        field = {"latency": "latency", "bandwidth": "rate", "slow_close": "delay"}
        raise BadRequest(
            f"a {fault.kind} fault needs {field.get(fault.kind, 'bytes')} greater than zero"
        )
    if min(fault.latency, fault.jitter, fault.rate, fault.timeout, fault.delay) < 0:
        raise BadRequest("fault attributes must not be negative")
    return fault


def applies(fault: Fault, app: str, machine_id: str, region: str, pop: str) -> bool:
    if fault.scope == "machine":
        return fault.target == machine_id and fault.app == app
    if fault.scope == "region":
        return fault.target == region
    return fault.target == pop


def faults_for(
    faults: Iterable[Fault], app: str, machine_id: str, region: str, pop: str
) -> tuple[Fault, ...]:
    """The toxics and ``down`` faults that act on one connection to one machine."""
    return tuple(
        f for f in faults if f.kind != "withdraw" and applies(f, app, machine_id, region, pop)
    )


def withdrawn_pops(faults: Iterable[Fault]) -> frozenset[str]:
    return frozenset(f.target for f in faults if f.kind == "withdraw")
