"""The one place where errors become HTTP answers: JSON ``{"error": "..."}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from edge.errors import EdgeError

LOG = logging.getLogger("edge.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except EdgeError as exc:
        return error_response(exc.http_status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        return error_response(exc.status, reason or "error")
    except Exception:
        LOG.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "internal error; see the daemon's log")
