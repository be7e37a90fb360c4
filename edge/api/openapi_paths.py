"""The paths of the OpenAPI document (``edge.api.openapi``): every route the server has.

``_paths`` (the control plane), ``_process_paths`` (machines that edge runs) and
``UI_LOGIN_PATHS`` (the dashboard's sign-in).
"""

from __future__ import annotations

from typing import Any

from edge.api.openapi_helpers import (
    APP_PARAM,
    IP_PARAM,
    MACHINE_PARAM,
    PORT,
    REGION,
    STR,
    _obj,
    also_answers,
    list_of,
    operation,
    ref,
)


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
                "PoPs, apps with IPs and machines, listeners, live flows, recent decisions,"
                " the edge's own connections and descriptors (edge); in a cluster also"
                " `cluster`: this node's link and every node",
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
    since = {
        "name": "since",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 10**15},
    }
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 5000},
    }
    events_limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 200},
    }
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
            "parameters": [APP_PARAM, MACHINE_PARAM, events_limit],
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
