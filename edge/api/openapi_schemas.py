"""The component schemas of the OpenAPI document (``edge.api.openapi``).

``SCHEMAS`` (every named schema but the region and PoP enums, which
``openapi_document`` adds), the fault and process-machine fields they are built from,
and ``_closed_bodies``, which closes the schemas used as request bodies.
"""

from __future__ import annotations

from typing import Any

from edge.api.openapi_helpers import (
    BOOL,
    DURATION,
    HANDLERS,
    INT,
    IP_TYPE,
    JSON,
    MACHINE_ADDRESS,
    NAME,
    NUM,
    PORT,
    PORT_TEXT,
    REGION,
    STR,
    _obj,
    ref,
)
from edge.core.faults import FAULT_KINDS

# --- faults: what each kind needs and where it applies (edge.core.faults.check_fault) ---
_POSITIVE_DURATION = {
    "oneOf": [
        {"type": "number", "minimum": 0.001, "maximum": 1e12},  # ms: at least 1 microsecond
        {"type": "string", "pattern": "^[1-9][0-9]{0,8}(ms|s|m|h)?$"},
    ]
}
_FAULT_NEEDS: dict[str, dict[str, Any]] = {
    "latency": {"latency": _POSITIVE_DURATION},
    "bandwidth": {"rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e12}},
    "slow_close": {"delay": _POSITIVE_DURATION},
    "limit_data": {"bytes": {"type": "integer", "minimum": 1, "maximum": 2**53}},
}
_FAULT_SCOPES: dict[str, tuple[str, ...]] = {"withdraw": ("pop",), "down": ("machine", "region")}
_SCOPE_FIELDS: dict[str, dict[str, Any]] = {
    "machine": {"machine": ref("Name"), "app": ref("Name")},
    "region": {"region": ref("RegionCode")},
    "pop": {"pop": ref("PopCode")},
}


def _fault_of(kind: str) -> dict[str, Any]:
    """One kind of fault: its scope (exactly one), what it needs, the optional rest."""
    optional = {
        "stream": {"type": "string", "enum": ["upstream", "downstream"]},
        "latency": DURATION,
        "jitter": DURATION,
        "rate": {"type": "number", "minimum": 0, "maximum": 1e12},
        "timeout": DURATION,
        "delay": DURATION,
        "bytes": {"type": "integer", "minimum": 0, "maximum": 2**53},
    }
    needs = _FAULT_NEEDS.get(kind, {})
    variants: list[dict[str, Any]] = []
    for scope in _FAULT_SCOPES.get(kind, ("machine", "region", "pop")):
        fields = _SCOPE_FIELDS[scope]
        variants.append(
            {
                "type": "object",
                "properties": {"kind": {"const": kind}, **optional, **needs, **fields},
                "required": ["kind", *needs, *fields],
                "additionalProperties": False,
            }
        )
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


# --- machines of an app file that edge runs (a command): edge.config.model.MachineSpec ---
_NO_NUL = {"type": "string", "pattern": "^[^\\u0000]*$"}
_WORDS = "[A-Za-z0-9_./=:,+@%-]+"
_SECONDS = {"type": "number", "minimum": 0, "maximum": 300, "description": "seconds"}
PROCESS_FIELDS: dict[str, Any] = {
    "command": {
        "anyOf": [
            {"type": "array", "minItems": 1, "items": _NO_NUL},
            {"type": "string", "pattern": f"^{_WORDS}( {_WORDS})*$"},
        ],
        "description": "a list, or plain words separated by single spaces",
    },
    "env": {
        "type": "object",
        "propertyNames": {"pattern": "^[^=\\u0000]+$"},
        "additionalProperties": _NO_NUL,
    },
    "workdir": _NO_NUL,
    "kill_signal": {
        "enum": ["SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGHUP"]
    },
    "kill_timeout": _SECONDS,
    "start_timeout": {**_SECONDS, "minimum": 0.001},
    "restart": {
        "type": "object",
        "properties": {
            "policy": {"enum": ["no", "on-failure", "always"]},
            "max_retries": {"type": "integer", "minimum": 0, "maximum": 1000},
        },
        "additionalProperties": False,
    },
}


def machine_of_file(add_machine: dict[str, Any]) -> dict[str, Any]:
    """A machine in an app file: AddMachine, or a machine with a command (admin only)."""
    only_command = {"anyOf": [{"required": [k]} for k in ("command", "env", "workdir")]}
    branches = [
        {
            **branch,
            "not": only_command
            if "not" not in branch
            else {"anyOf": [branch["not"], only_command]},
        }
        for branch in add_machine["oneOf"]
    ]
    branches.append(
        {
            "required": ["command"],
            "properties": {"demo": {"const": False}, "ports": {"maxProperties": 0}},
            "not": {"required": ["address"]},
        }
    )
    properties = {**add_machine["properties"], **PROCESS_FIELDS}
    return {**add_machine, "properties": properties, "oneOf": branches}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": STR}, ("error",)),
    "IpAssignment": _obj(
        {
            "ip": STR,
            "type": IP_TYPE,
            "region": STR,
            "created_at": {"type": "string", "format": "date-time"},
            "shared": BOOL,
            "primary": BOOL,
            "app": STR,
            "listeners": {"type": "array", "items": ref("Listener")},
        },
        ("ip", "type", "region", "created_at", "shared", "primary"),
    ),
    "Listener": _obj(
        {"address": STR, "port": INT, "bound": BOOL, "error": {"type": ["string", "null"]}}
    ),
    "App": _obj(
        {
            "name": STR,
            "org_slug": STR,
            "primary_region": STR,
            "created_at": {"type": "string", "format": "date-time"},
            "ips": {"type": "array", "items": ref("IpAssignment")},
            "listeners": {"type": "array", "items": ref("Listener")},
            "declared_in_config": BOOL,
            "warning": STR,
        },
        ("name", "org_slug", "primary_region", "created_at"),
    ),
    "Org": _obj({"slug": STR, "created_at": STR, "apps": INT, "ips": INT}, ("slug",)),
    "Region": _obj(
        {
            "code": STR,
            "name": STR,
            "latitude": NUM,
            "longitude": NUM,
            "gateway_available": BOOL,
            "requires_paid_plan": BOOL,
            "deprecated": BOOL,
        },
        ("code", "name", "latitude", "longitude", "deprecated"),
    ),
    "Name": NAME,
    "RegionCode": {"type": "string", "pattern": "^[a-z]{3}$"},
    "PopCode": {"type": "string", "pattern": "^[a-z]{3}$"},
    "CreateOrg": _obj({"slug": NAME}, ("slug",)),
    "UiLoginCode": _obj({"code": STR, "path": STR, "expires_in": NUM}, ("code", "path")),
    "UiRedeem": _obj({"code": STR}, ("code",)),
    "UiSession": _obj({"token": STR, "expires_in": NUM}, ("token",)),
    "CreatedOrg": _obj({"slug": STR, "token": STR}, ("slug", "token")),
    "CreateApp": _obj(
        {
            "app_name": NAME,
            "org_slug": NAME,
            "primary_region": REGION,
            "ipv6": BOOL,
            "public_ips": BOOL,
        },
        ("app_name",),
    )
    | {
        # A public IPv6 needs public IPs.
        "not": {
            "properties": {"ipv6": {"const": True}, "public_ips": {"const": False}},
            "required": ["ipv6", "public_ips"],
        }
    },
    "AllocateIp": _obj({"type": IP_TYPE, "region": REGION}),
    "MoveIp": _obj(
        {"app": {**NAME, "description": "another app of the same org than the URL's"}},
        ("app",),
    ),
    "Fault": _obj(
        {
            "id": STR,
            "kind": STR,
            "scope": {"type": "string", "enum": ["machine", "region", "pop"]},
            "target": STR,
            "app": {"type": ["string", "null"]},
            "stream": {"type": "string", "enum": ["upstream", "downstream"]},
            "latency_ms": NUM,
            "jitter_ms": NUM,
            "rate_kbps": NUM,
            "timeout_ms": NUM,
            "delay_ms": NUM,
            "bytes": INT,
            "created_at": STR,
        },
        ("id", "kind", "scope", "target"),
    ),
    "AddFault": {"oneOf": [_fault_of(kind) for kind in FAULT_KINDS]},
    "AdminState": _obj(
        {"state": {"type": "string", "enum": ["maint", "drain", "ready"]}}, ("state",)
    ),
    "AppFile": _obj(
        {
            # "app" may be given too, but only as the URL's name: the URL says it.
            "org": NAME,
            "primary_region": REGION,
            "services": {
                "type": "array",
                "items": ref("Service"),
                "description": "a public port may be used by one service only",
            },
            "machines": {
                "type": "array",
                "items": ref("MachineOfFile"),
                "description": "machine ids are unique within an app",
            },
        },
        ("primary_region",),
    ),
    "Service": _obj(
        {
            "internal_port": PORT,
            "protocol": {"const": "tcp"},
            "ports": {
                "type": "array",
                "minItems": 1,
                "items": _obj({"port": PORT, "handlers": HANDLERS}, ("port",)),
            },
            "strategy": {
                "enum": [
                    "nearest",
                    "weighted_latency",
                    "least_connections",
                    "p2c_peak_ewma",
                    "maglev",
                ]
            },
            "retries": {"type": "integer", "minimum": 0, "maximum": 10},
            "timeout": DURATION,
            "connect_timeout": DURATION,
            "auto_stop_machines": {"enum": ["off", "stop", "suspend", True, False]},
            "auto_start_machines": BOOL,
            "min_machines_running": {"type": "integer", "minimum": 0},
        },
        ("ports",),
    ),
    "Machine": _obj(
        {
            "id": STR,
            "app": STR,
            "region": STR,
            "state": {"type": "string", "enum": ["started", "stopped", "suspended"]},
            "address": {"type": ["string", "null"]},
            "ports": {"type": "object", "additionalProperties": INT},
            "weight": INT,
            "demo": BOOL,
            "created_at": STR,
            "updated_at": STR,
            "listening": {"type": "array", "items": STR},
            "services": {"type": "array", "items": {"type": "object"}},
            "process": {
                "type": ["object", "null"],
                "description": "A process machine: command, state (starting, started, "
                "stopping, stopped, suspended, failed), pid, private_ip, port, restarts, "
                "exit_code, error",
            },
            "state_reason": {"type": ["string", "null"]},
        },
        ("id", "app", "region", "state", "weight", "demo"),
    ),
    "AddMachine": {
        **_obj(
            {
                "region": REGION,
                "id": NAME,
                "address": MACHINE_ADDRESS,
                "ports": {
                    "type": "object",
                    "propertyNames": {"pattern": f"^{PORT_TEXT}$"},
                    "additionalProperties": PORT,
                },
                "weight": {"type": "integer", "minimum": 1, "maximum": 1000},
                "demo": BOOL,
                "state": {"type": "string", "enum": ["started", "stopped"]},
            },
            ("region",),
        ),
        # Either an address, or a demo machine served by the edge.
        "oneOf": [
            {"required": ["address"], "properties": {"demo": {"const": False}}},
            {
                "required": ["demo"],
                "properties": {"demo": {"const": True}},
                "not": {"required": ["address"]},
            },
        ],
    },
}


SCHEMAS["MachineOfFile"] = machine_of_file(SCHEMAS["AddMachine"])
REQUEST_BODIES = (
    "CreateOrg", "CreateApp", "AllocateIp", "AdminState", "AppFile", "Service",
    "AddMachine", "MachineOfFile", "MoveIp", "UiRedeem",
)  # fmt: skip
for _name in REQUEST_BODIES:
    SCHEMAS[_name]["additionalProperties"] = False
SCHEMAS["Service"]["properties"]["ports"]["items"]["additionalProperties"] = False


def _closed_bodies(paths: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """Request bodies refuse unknown keys (``edge.api.bodies.Body``): every schema used as
    one says ``additionalProperties: false``, so an unknown key is not schema-valid."""
    closed = dict(schemas)
    for item in paths.values():
        for op in (v for v in item.values() if isinstance(v, dict)):  # not "parameters"
            target = op.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
            name = str((target or {}).get("$ref", "")).rpartition("/")[2]
            if name in closed and "properties" in closed[name]:
                closed[name] = {**closed[name], "additionalProperties": False}
    return closed
