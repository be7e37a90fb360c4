"""Shared building blocks of the OpenAPI document (``edge.api.openapi``).

Helpers that shape operations and answers (``ref``, ``answer``, ``errors``, ``operation``,
``also_answers``, ``list_of``, ``_obj``), the path parameters, and the field types the
schemas and paths share (``NAME``, ``REGION``, ``POP``, ``PORT``, ``DURATION``, ...).
"""

from __future__ import annotations

from typing import Any

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


def list_of(key: str, item: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": ref(item)}})
