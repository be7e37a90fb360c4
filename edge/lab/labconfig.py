"""The edge configuration of the lab's nodes (``edge.yaml``), as a plain mapping.

Every node gets the same configuration: the lab's PoPs, the client networks mapped to
their regions (``edge.clients``: a client's real source address says where it is), the
anycast pool, and the app ``hello`` whose machines live in the machine namespaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge.lab.topology import ANYCAST_PREFIX, APP_PORT, SHARED_V4, Topology

APP = "hello"


def node_config(topology: Topology, pops: Sequence[str] | None = None) -> dict[str, Any]:
    """``edge.yaml`` for a node; ``pops`` narrows ``edge.pops`` (a node without --pops)."""
    pop_regions = list(pops) if pops is not None else [p.region for p in topology.pops]
    machines = [
        {"id": m.machine_id, "region": m.region, "address": m.address} for m in topology.machines
    ]
    return {
        "edge": {
            "pops": pop_regions,
            "local_region": pop_regions[0],
            "clients": [{"cidr": c.network, "region": c.region} for c in topology.clients],
            "trust_client_region_header": False,
            "simulate_latency": False,
        },
        "ipam": {"pools": {"v4": [ANYCAST_PREFIX]}, "shared_v4": SHARED_V4},
        "drain_timeout": "2s",
        "orgs": [{"slug": "personal"}],
        "apps": [
            {
                "app": APP,
                "org": "personal",
                "primary_region": topology.machines[0].region,
                "services": [
                    {
                        "internal_port": APP_PORT,
                        "ports": [{"port": APP_PORT, "handlers": ["http"]}],
                        "http_checks": [
                            {
                                "interval": "1s",
                                "timeout": "1s",
                                "grace_period": "1s",
                                "path": "/healthz",
                            }
                        ],
                    }
                ],
                "machines": machines,
            }
        ],
    }
