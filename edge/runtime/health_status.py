"""What the health monitor shows: check and service states, past results, check names.

The values ``HealthMonitor`` (``edge.runtime.health_checks``) returns for ``edgectl
machines list`` and ``edgectl checks list``, and the platform-style name and target
of a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edge.config.model import CheckSpec, HttpCheckSpec
from edge.core.health import CheckResult, HealthState


@dataclass(frozen=True, slots=True)
class CheckStatus:
    name: str  # like the platform's: servicecheck-00-http-8080
    type: Literal["tcp", "http"]
    target: str  # "127.0.0.1:8080", or "GET http://127.0.0.1:8080/healthz"
    state: HealthState  # unknown, passing or critical
    passes: int  # in a row
    failures: int  # in a row, outside the grace period
    last: CheckResult | None


# What a machine (or a service of it) shows when no check watches it: it gets traffic
# like a passing one, but nothing says that anything listens.
NO_CHECKS = "no checks"


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """The health of one machine for one service (``edgectl machines list``)."""

    app: str
    machine_id: str
    region: str
    internal_port: int
    started: bool
    state: HealthState  # unknown, passing, critical, maint or drain
    since: float  # wall-clock time the state was entered (epoch seconds)
    checks: tuple[CheckStatus, ...]
    # In a cluster, for a machine another node checks: whose verdict and how fresh.
    checked_by: str = "this node"


@dataclass(frozen=True, slots=True)
class CheckResultRow:
    """One past check result (``edgectl checks list``)."""

    internal_port: int
    check: str
    at: float  # wall-clock start of the check (epoch seconds)
    ok: bool
    output: str  # "status 200", "connection refused", "timeout after 1s", ...
    duration: float  # seconds


def check_name(index: int, check: CheckSpec, internal_port: int) -> str:
    kind = "http" if isinstance(check, HttpCheckSpec) else "tcp"
    return f"servicecheck-{index:02d}-{kind}-{internal_port}"


def check_target(check: CheckSpec, host: str, port: int) -> str:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(check, HttpCheckSpec):
        return f"{check.method} {check.protocol}://{authority}{check.path}"
    return authority
