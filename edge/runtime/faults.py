"""The faults injected into a running edge (in memory: a restart clears them).

Adding or removing a fault recomputes the PoPs that are up (``withdraw``) and hands
the routing state the active faults, which the listener routers attach to each
chosen upstream; the relays act on them.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from dataclasses import replace

from edge.core.faults import Fault, check_fault, withdrawn_pops
from edge.errors import NotFound
from edge.runtime.routing_state import RoutingState

LOG = logging.getLogger("edge.faults")


class FaultRegistry:
    def __init__(self, state: RoutingState) -> None:
        self.state = state
        self._faults: dict[str, Fault] = {}

    def add(self, fault: Fault) -> Fault:
        fault = check_fault(fault)
        fault = replace(fault, id=f"fault-{secrets.token_hex(4)}", created_at=time.time())
        self._faults[fault.id] = fault
        LOG.info(
            "fault added",
            extra={"id": fault.id, "kind": fault.kind, "scope": f"{fault.scope}:{fault.target}"},
        )
        self._publish()
        return fault

    def remove(self, fault_id: str, org: str | None = None) -> Fault:
        fault = self._faults.get(fault_id)
        if fault is None or (org is not None and fault.org != org):
            raise NotFound(f"fault {fault_id!r} not found")
        del self._faults[fault_id]
        LOG.info("fault removed", extra={"id": fault_id})
        self._publish()
        return fault

    def clear(self, org: str | None = None) -> list[Fault]:
        gone = [f for f in self._faults.values() if org is None or f.org == org]
        for fault in gone:
            del self._faults[fault.id]
        if gone:
            LOG.info("faults cleared", extra={"count": len(gone)})
            self._publish()
        return gone

    def listed(self, org: str | None = None) -> list[Fault]:
        faults = [f for f in self._faults.values() if org is None or f.org == org]
        return sorted(faults, key=lambda f: f.created_at)

    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self._faults.values())

    def _publish(self) -> None:
        faults = tuple(self._faults.values())
        withdrawn = withdrawn_pops(faults)
        self.state.faults = tuple(f for f in faults if f.kind != "withdraw")
        self.state.set_pops_up(p for p in self.state.config.edge.pops if p not in withdrawn)
