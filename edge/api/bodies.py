"""Request bodies: JSON parsed into strict models; every mistake is a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.config.load import format_validation_errors
from edge.errors import BadRequest

BodyT = TypeVar("BodyT", bound=BaseModel)


class Body(BaseModel):
    """Base of request bodies: strict types (no "1" for 1), unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 400 for anything else."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


async def read_body(request: web.Request, model: type[BodyT], context: object = None) -> BodyT:
    data = await read_json_object(request)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise BadRequest("; ".join(format_validation_errors(exc))) from None
