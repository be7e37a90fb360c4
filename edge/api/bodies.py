"""Request bodies: JSON parsed into strict models; every mistake is a 400 naming the field."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.api.app_context import CONTEXT
from edge.config.load import format_validation_errors
from edge.errors import BadRequest, RequestTimeout

BodyT = TypeVar("BodyT", bound=BaseModel)
MAX_JSON_DEPTH = 32  # no request body of this API needs more than a few levels


def _number(text: str) -> float | int:
    """A JSON number with a zero fraction (``108.0``, ``1e3``) is an integer, as JSON Schema
    says, so strict integer fields take it; the rest stay floats."""
    value = float(text)
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _depth(value: object) -> int:
    """How deeply ``value`` nests lists and objects, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if level + 1 > MAX_JSON_DEPTH:
                    return level + 1
                stack.append((child, level + 1))
        deepest = max(deepest, level)
    return deepest


class Body(BaseModel):
    """Base of request bodies: strict types (no "1" for 1), unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


async def _read_within(request: web.Request, seconds: float) -> bytes:
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {seconds:g}s") from None


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 400 for anything else."""
    raw = await _read_within(request, request.app[CONTEXT].config.api.body_read_timeout)
    if not raw.strip():
        return {}
    too_deep = BadRequest(f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    try:
        data = json.loads(raw, parse_float=_number)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # deeper than the parser goes
        raise too_deep from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise too_deep
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def whole_number(text: str | None, field: str) -> int | None:
    """A query parameter that must be a whole number in ASCII digits; None when absent.

    ``str.isdigit`` alone would let ``²`` (then ``int`` raises) or Arabic-Indic digits
    (then ``int`` silently converts) through.
    """
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise BadRequest(f"{field}: must be a whole number (0-9), not {text!r}")
    return int(text)


def port_keys(ports: object) -> object:
    """A JSON object keyed by port numbers: its keys are strings in JSON, ints in the
    model; ASCII digit keys become ints, anything else stays for the model to reject."""
    if not isinstance(ports, dict):
        return ports
    return {
        int(k) if k.isascii() and k.isdigit() and len(k) < 8 else k: v for k, v in ports.items()
    }


async def read_body(request: web.Request, model: type[BodyT], context: object = None) -> BodyT:
    data = await read_json_object(request)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise BadRequest("; ".join(format_validation_errors(exc))) from None
