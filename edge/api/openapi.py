"""The OpenAPI 3.1 description of the REST API (served at ``/v1/openapi.json``).

A test checks that every route the server has is described here and nothing more,
and that the document validates.
"""

from __future__ import annotations

import functools
from typing import Any

from edge import __version__
from edge.config.regions import default_catalogue
from edge.core.faults import FAULT_KINDS

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {JSON: {"schema": schema}}}


def errors(*codes: int) -> dict[str, Any]:
    texts = {
        400: "Bad input: malformed JSON, a wrong field type, an unknown value",
        401: "Missing or invalid bearer token",
        403: "Needs the admin token",
        404: "Not found (or belongs to another org)",
        409: "Conflicts with the current state",
        422: "A limit would be exceeded",
        503: (
            "No capacity: an address pool ran dry, or the state database (a cluster's "
            "control plane) is unavailable"
        ),
    }
    return {str(c): answer(texts[c], ref("Error")) for c in codes}


def operation(
    summary: str,
    ok: tuple[int, str, dict[str, Any] | None],
    error_codes: tuple[int, ...] = (401,),
    body: str | None = None,
    public: bool = False,
) -> dict[str, Any]:
    status, text, schema = ok
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {str(status): answer(text, schema), **errors(*error_codes)},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    if public:
        op["security"] = []
    return op


_NAME_PATTERN = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}


def also_answers(
    op: dict[str, Any], *more: tuple[int, str, dict[str, Any] | None]
) -> dict[str, Any]:
    """``op`` with further success answers (e.g. 201 as well as 200)."""
    for status, text, schema in more:
        op["responses"][str(status)] = answer(text, schema)
    return op


APP_PARAM = {"name": "app", "in": "path", "required": True, "schema": _NAME_PATTERN}
MACHINE_PARAM = {"name": "id", "in": "path", "required": True, "schema": _NAME_PATTERN}
IP_PARAM = {
    "name": "ip",
    "in": "path",
    "required": True,
    "schema": {
        "anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]
    },
}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


STR, BOOL, NUM, INT = (
    {"type": "string"},
    {"type": "boolean"},
    {"type": "number"},
    {"type": "integer"},
)
IP_TYPE = {"type": "string", "enum": ["v4", "shared_v4", "v6", "private_v6"]}
# What the server checks, said here too, so that a request valid for this document is
# one the server accepts (tests/hardening/test_schemathesis.py holds them to it).
NAME = _NAME_PATTERN
REGION = ref("RegionCode")  # the enum of the daemon's region catalogue: openapi_document()
POP = ref("PopCode")  # the enum of the daemon's PoPs
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
PORT_TEXT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
DURATION = {
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": 1e12},
        {"type": "string", "pattern": "^[0-9]{1,9}(\\.[0-9]{1,6})?(ms|s|m|h)?$"},
    ],
    "description": "500ms, 2s, 1m, 1h; a bare number is milliseconds",
}
IP_ADDRESS = {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}]}
# HOST or HOST:PORT, a DNS name or IPv4 address, or [IPv6] with a port.
MACHINE_ADDRESS = {
    "type": "string",
    "pattern": f"^([a-z0-9.-]{{1,253}}(:{PORT_TEXT})?|\\[[0-9a-f:.]{{2,45}}\\]:{PORT_TEXT})$",
}
HANDLERS = {
    "enum": [[], ["http"], ["tls", "http"], ["tls"], ["proxy_proto"], ["tls", "proxy_proto"]]
}

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
    "MoveIp": _obj({"app": NAME}, ("app",)),
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


def list_of(key: str, item: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": ref(item)}})


def _weights(regions: tuple[str, ...]) -> dict[str, Any]:
    """``population``, ``uniform`` or ``REGION:WEIGHT,...`` over the known regions."""
    item = f"({'|'.join(regions)}):[1-9][0-9]{{0,5}}"
    return {
        "anyOf": [
            {"type": "string", "enum": ["population", "uniform"]},
            {"type": "string", "pattern": f"^{item}(,{item}){{0,5}}$"},
        ]
    }


def _paths(regions: tuple[str, ...]) -> dict[str, Any]:
    return {
        "/healthz": {
            "get": operation(
                "Liveness and a short status: `ok`, or `degraded` on a node whose control "
                "plane is unreachable (it serves from its last state; `control_plane` says more)",
                (200, "OK", None),
                (),
                public=True,
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics (text format); with --workers, every worker's merged "
                "(`?worker=self`: this worker's own)",
                (200, "Metrics", None),
                (),
                public=True,
            )
        },
        "/v1/openapi.json": {
            "get": operation("This document", (200, "OpenAPI 3.1", None), (), public=True)
        },
        "/v1/platform/regions": {
            "get": operation(
                "The region catalogue",
                (
                    200,
                    "Regions",
                    _obj({"Regions": {"type": "array", "items": ref("Region")}, "Nearest": STR}),
                ),
            )
        },
        "/v1/orgs": {
            "get": operation("Orgs the token can see", (200, "Orgs", list_of("orgs", "Org"))),
            "post": operation(
                "Create an org and its token (admin)",
                (201, "Created; the token is shown once", ref("CreatedOrg")),
                (400, 401, 403, 409),
                body="CreateOrg",
            ),
        },
        "/v1/apps": {
            "get": operation("Apps the token can see", (200, "Apps", list_of("apps", "App"))),
            "post": operation(
                "Create an app; assigns its primary IPv4 unless public_ips is false",
                (201, "Created", ref("App")),
                (400, 401, 404, 409, 422, 503),
                body="CreateApp",
            ),
        },
        "/v1/apps/{app}": {
            "parameters": [APP_PARAM],
            "get": operation("An app and its IPs", (200, "The app", ref("App")), (401, 404)),
            "put": also_answers(
                operation(
                    "Deploy an app file: create the app or bring it in line (201 when created)",
                    (200, "Updated", ref("App")),
                    (400, 401, 403, 404, 409, 422, 503),
                    body="AppFile",
                ),
                (201, "Created", ref("App")),
            ),
            "delete": operation(
                "Destroy an app, releasing all its IPs", (204, "Destroyed", None), (401, 404)
            ),
        },
        "/v1/apps/{app}/ip_assignments": {
            "parameters": [APP_PARAM],
            "get": operation(
                "The app's IP assignments", (200, "IPs", list_of("ips", "IpAssignment")), (401, 404)
            ),
            "post": operation(
                "Allocate an IP; answered once its listeners are bound",
                (201, "Allocated", ref("IpAssignment")),
                (400, 401, 404, 409, 422, 503),
                body="AllocateIp",
            ),
        },
        "/v1/faults": {
            "get": operation("Active faults", (200, "Faults", list_of("faults", "Fault"))),
            "post": operation(
                "Inject a fault on a machine, a region or a PoP",
                (201, "Added", ref("Fault")),
                (400, 401, 403, 404),
                body="AddFault",
            ),
            "delete": operation(
                "Remove every fault", (200, "How many were removed", {"type": "object"})
            ),
        },
        "/v1/faults/reset": {
            "post": operation(
                "Remove every fault (Toxiproxy's /reset)",
                (200, "How many were removed", {"type": "object"}),
            )
        },
        "/v1/faults/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": STR}],
            "delete": operation("Remove one fault", (204, "Removed", None), (401, 404)),
        },
        "/v1/status": {
            "get": operation(
                "PoPs, apps with IPs and machines, listeners, live flows, recent decisions; in a "
                "cluster also `cluster`: this node's link and every node",
                (200, "Status", {"type": "object"}),
            )
        },
        "/v1/apps/{app}/route": {
            "parameters": [
                APP_PARAM,
                {"name": "from", "in": "query", "schema": REGION},
                {"name": "port", "in": "query", "schema": PORT},
                {"name": "prefer", "in": "query", "schema": STR},
                # A fly-replay value (region=iad;...): where that answer of the chosen
                # machine would send the request ("replay"); "recent_replays" always.
                {"name": "replay", "in": "query", "schema": STR},
            ],
            "get": operation(
                "Where a client of a region lands and which machine serves it, and why; "
                "with replay=<fly-replay value>, where that replay would go",
                (200, "Explanation", {"type": "object"}),
                (400, 401, 404),
            ),
        },
        "/v1/apps/{app}/catchment": {
            "parameters": [
                APP_PARAM,
                {
                    "name": "clients",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                },
                {"name": "weights", "in": "query", "schema": _weights(regions)},
                {"name": "port", "in": "query", "schema": PORT},
            ],
            "get": operation(
                "Simulated clients from every region (weights: population, uniform or "
                "REGION:W,...): the PoP each lands on, the machine region and the RTT",
                (200, "Catchment", {"type": "object"}),
                (400, 401, 404),
            ),
        },
        "/v1/apps/{app}/machines": {
            "parameters": [APP_PARAM],
            "get": operation(
                "The app's machines with load and health",
                (200, "Machines", list_of("machines", "Machine")),
                (401, 404),
            ),
            "post": operation(
                "Add a machine (an address, a demo machine, or a command: admin only)",
                (201, "Added", ref("Machine")),
                (400, 401, 403, 404, 409),
                body="AddMachine",
            ),
        },
        "/v1/apps/{app}/machines/{id}": {
            "parameters": [APP_PARAM, MACHINE_PARAM],
            "get": operation("One machine", (200, "The machine", ref("Machine")), (401, 404)),
            "delete": operation("Remove a machine", (204, "Removed", None), (401, 404)),
        },
        "/v1/apps/{app}/machines/{id}/start": {
            "parameters": [APP_PARAM, MACHINE_PARAM],
            "post": operation("Start a machine", (200, "Started", ref("Machine")), (401, 404)),
        },
        "/v1/apps/{app}/machines/{id}/admin": {
            "parameters": [APP_PARAM, MACHINE_PARAM],
            "post": operation(
                "Operator state: maint, drain or ready (in memory only)",
                (200, "The machine", ref("Machine")),
                (400, 401, 404, 409),
                body="AdminState",
            ),
        },
        "/v1/apps/{app}/checks": {
            "parameters": [APP_PARAM],
            "get": operation(
                "Recent health-check results of the app's machines, newest first",
                (200, "Results", {"type": "object"}),
                (401, 404),
            ),
        },
        "/v1/apps/{app}/machines/{id}/stop": {
            "parameters": [APP_PARAM, MACHINE_PARAM],
            "post": operation(
                "Stop a machine: it gets no new traffic",
                (200, "Stopped", ref("Machine")),
                (401, 404),
            ),
        },
        "/v1/apps/{app}/ip_assignments/{ip}/move": {
            "parameters": [APP_PARAM, IP_PARAM],
            "post": operation(
                "Serve the address from another app of the same org; answered once its "
                "listeners serve that app (the address keeps its created time)",
                (200, "Moved (as the target app now holds it)", ref("IpAssignment")),
                (400, 401, 404, 409),
                body="MoveIp",
            ),
        },
        "/v1/apps/{app}/ip_assignments/{ip}": {
            "parameters": [APP_PARAM, IP_PARAM],
            "delete": operation(
                "Release an IP (permanent); the primary cannot be released",
                (204, "Released", None),
                (400, 401, 404, 409),
            ),
        },
        **UI_LOGIN_PATHS,
    }


def _process_paths() -> dict[str, Any]:
    """Machines that edge runs (edge.api.routes_process)."""
    since = {"name": "since", "in": "query", "schema": INT}
    limit = {"name": "limit", "in": "query", "schema": INT}
    return {
        "/v1/apps/{app}/logs": {
            "parameters": [
                APP_PARAM,
                {"name": "machine", "in": "query", "schema": STR},
                since,
                limit,
            ],
            "get": operation(
                "What the app's process machines wrote (stdout, stderr, edge's notes), after "
                "line number since",
                (200, "Lines and next_since", {"type": "object"}),
                (400, 401, 404),
            ),
        },
        "/v1/apps/{app}/machines/{id}/logs": {
            "parameters": [APP_PARAM, MACHINE_PARAM, since, limit],
            "get": operation(
                "What one process machine wrote, after line number since",
                (200, "Lines and next_since", {"type": "object"}),
                (400, 401, 404),
            ),
        },
        "/v1/apps/{app}/machines/{id}/events": {
            "parameters": [APP_PARAM, MACHINE_PARAM, limit],
            "get": operation(
                "The machine and its lifecycle events, newest first",
                (200, "The machine with events", {"type": "object"}),
                (400, 401, 404),
            ),
        },
        "/v1/apps/{app}/machines/{id}/restart": {
            "parameters": [APP_PARAM, MACHINE_PARAM],
            "post": operation(
                "Stop the machine's process (kill_signal, then SIGKILL) and start it again",
                (200, "Restarted", ref("Machine")),
                (401, 404, 409),
            ),
        },
        "/v1/apps/{app}/ips/private": {
            "parameters": [APP_PARAM],
            "get": operation(
                "Each machine's private address (a process machine's own loopback address)",
                (200, "Addresses", {"type": "object"}),
                (401, 404),
            ),
        },
    }


# The dashboard's one-step sign-in (edge.api.ui_sessions): edgectl ui, then the page.
UI_LOGIN_PATHS: dict[str, Any] = {
    "/v1/ui/login-codes": {
        "post": operation(
            "A one-time code that signs a dashboard tab in as the caller (edgectl ui)",
            (201, "The code, and the dashboard path that uses it", ref("UiLoginCode")),
            (401,),
        ),
    },
    "/v1/ui/session": {
        "post": operation(
            "Trade a one-time code for a dashboard session token (the code is used up)",
            (201, "The session token", ref("UiSession")),
            (400, 401),
            body="UiRedeem",
            public=True,
        ),
    },
}


@functools.cache
def openapi_document(
    regions: tuple[str, ...] | None = None, pops: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The document; region and PoP fields are enums of the daemon's region codes and PoPs
    (by default those of the built-in catalogue, as ``edge serve`` without a config)."""
    if regions is None or pops is None:
        catalogue = default_catalogue()
        regions = tuple(sorted(catalogue.codes())) if regions is None else regions
        pops = tuple(r.code for r in catalogue.current()) if pops is None else pops
    schemas = {
        **SCHEMAS,
        "RegionCode": {"type": "string", "enum": list(regions)},
        "PopCode": {"type": "string", "enum": list(pops)},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "edge API",
            "version": __version__,
            "description": "Apps, machines and IP addresses of an edge daemon, "
            "shaped like the platform's Machines API.",
        },
        "servers": [{"url": "http://127.0.0.1:4280"}],
        "security": [{"bearer": []}],
        "paths": {**_paths(regions), **_process_paths()},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
