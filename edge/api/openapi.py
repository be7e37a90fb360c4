"""The OpenAPI 3.1 description of the REST API (served at ``/v1/openapi.json``).

A test checks that every route the server has is described here and nothing more,
and that the document validates.
"""

from __future__ import annotations

import functools
from typing import Any

from edge import __version__
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


APP_PARAM = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}
MACHINE_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
IP_PARAM = {"name": "ip", "in": "path", "required": True, "schema": {"type": "string"}}


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
    "CreateOrg": _obj({"slug": STR}, ("slug",)),
    "CreatedOrg": _obj({"slug": STR, "token": STR}, ("slug", "token")),
    "CreateApp": _obj(
        {
            "app_name": STR,
            "org_slug": STR,
            "primary_region": STR,
            "ipv6": BOOL,
            "public_ips": BOOL,
        },
        ("app_name",),
    ),
    "AllocateIp": _obj({"type": IP_TYPE, "region": STR}),
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
    "AddFault": _obj(
        {
            "kind": {"type": "string", "enum": list(FAULT_KINDS)},
            "machine": STR,
            "app": STR,
            "region": STR,
            "pop": STR,
            "stream": {"type": "string", "enum": ["upstream", "downstream"]},
            "latency": {"type": ["string", "number"]},
            "jitter": {"type": ["string", "number"]},
            "rate": NUM,
            "timeout": {"type": ["string", "number"]},
            "delay": {"type": ["string", "number"]},
            "bytes": INT,
        },
        ("kind",),
    ),
    "AdminState": _obj(
        {"state": {"type": "string", "enum": ["maint", "drain", "ready"]}}, ("state",)
    ),
    "AppFile": _obj(
        {
            "app": STR,
            "org": STR,
            "primary_region": STR,
            "services": {"type": "array", "items": {"type": "object"}},
            "machines": {"type": "array", "items": ref("AddMachine")},
        },
        ("primary_region",),
    ),
    "Machine": _obj(
        {
            "id": STR,
            "app": STR,
            "region": STR,
            "state": {"type": "string", "enum": ["started", "stopped"]},
            "address": {"type": ["string", "null"]},
            "ports": {"type": "object", "additionalProperties": INT},
            "weight": INT,
            "demo": BOOL,
            "created_at": STR,
            "updated_at": STR,
            "listening": {"type": "array", "items": STR},
            "services": {"type": "array", "items": {"type": "object"}},
        },
        ("id", "app", "region", "state", "weight", "demo"),
    ),
    "AddMachine": _obj(
        {
            "region": STR,
            "id": STR,
            "address": STR,
            "ports": {"type": "object", "additionalProperties": INT},
            "weight": INT,
            "demo": BOOL,
            "state": {"type": "string", "enum": ["started", "stopped"]},
        },
        ("region",),
    ),
}


def list_of(key: str, item: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": ref(item)}})


def _paths() -> dict[str, Any]:
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
            "put": operation(
                "Deploy an app file: create the app or bring it in line (201 when created)",
                (200, "Updated", ref("App")),
                (400, 401, 404, 409, 422, 503),
                body="AppFile",
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
                {"name": "from", "in": "query", "schema": STR},
                {"name": "port", "in": "query", "schema": INT},
                {"name": "prefer", "in": "query", "schema": STR},
            ],
            "get": operation(
                "Where a client of a region lands and which machine serves it, and why",
                (200, "Explanation", {"type": "object"}),
                (400, 401, 404),
            ),
        },
        "/v1/apps/{app}/catchment": {
            "parameters": [
                APP_PARAM,
                {"name": "clients", "in": "query", "schema": INT},
                {"name": "weights", "in": "query", "schema": STR},
                {"name": "port", "in": "query", "schema": INT},
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
                "Add a machine (an address, or a demo machine served by the edge)",
                (201, "Added", ref("Machine")),
                (400, 401, 404, 409),
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
        "/v1/apps/{app}/ip_assignments/{ip}": {
            "parameters": [APP_PARAM, IP_PARAM],
            "delete": operation(
                "Release an IP (permanent); the primary cannot be released",
                (204, "Released", None),
                (400, 401, 404, 409),
            ),
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
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
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
