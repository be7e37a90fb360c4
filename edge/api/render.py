"""The JSON shapes of API answers, in one place (the OpenAPI document mirrors them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.core.apps import AppRecord, Machine, Org
from edge.core.faults import Fault
from edge.core.ipam import IpAssignment, format_time
from edge.core.regions import Region


def ip_json(assignment: IpAssignment) -> dict[str, Any]:
    return {
        "ip": assignment.address,
        "type": assignment.type,
        "region": assignment.region,
        "created_at": assignment.created,
        "shared": assignment.shared,
        "primary": assignment.primary,
    }


def app_json(app: AppRecord, ips: Iterable[IpAssignment] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": app.name,
        "org_slug": app.org,
        "primary_region": app.primary_region,
        "created_at": format_time(app.created_at),
    }
    if ips is not None:
        body["ips"] = [ip_json(a) for a in ips]
    return body


def org_json(org: Org, apps: int, ips: int) -> dict[str, Any]:
    return {"slug": org.slug, "created_at": format_time(org.created_at), "apps": apps, "ips": ips}


def region_json(region: Region) -> dict[str, Any]:
    return {
        "code": region.code,
        "name": region.city,
        "latitude": region.latitude,
        "longitude": region.longitude,
        "gateway_available": region.gateway,
        "requires_paid_plan": False,
        "deprecated": region.deprecated,
    }


def machine_json(machine: Machine, live: dict[str, Any]) -> dict[str, Any]:
    """A machine as stored, plus what the running edge knows of it (``live``)."""
    return {
        "id": machine.id,
        "app": machine.app,
        "region": machine.region,
        "state": machine.state,
        "address": machine.address,
        "ports": {str(internal): host for internal, host in machine.ports},
        "weight": machine.weight,
        "demo": machine.demo,
        "created_at": format_time(machine.created_at),
        "updated_at": format_time(machine.updated_at),
        **live,
    }


def fault_json(fault: Fault) -> dict[str, Any]:
    return {
        "id": fault.id,
        "kind": fault.kind,
        "scope": fault.scope,
        "target": fault.target,
        "app": fault.app,
        "stream": fault.stream,
        "latency_ms": round(fault.latency * 1000, 3),
        "jitter_ms": round(fault.jitter * 1000, 3),
        "rate_kbps": fault.rate,
        "timeout_ms": round(fault.timeout * 1000, 3),
        "delay_ms": round(fault.delay * 1000, 3),
        "bytes": fault.bytes,
        "created_at": format_time(fault.created_at),
    }
