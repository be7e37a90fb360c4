"""The one place where errors become HTTP answers: JSON ``{"error": "..."}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from edge.errors import EdgeError

LOG = logging.getLogger("edge.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Headers an error answer must carry (RFC 9110 11.6.1, 15.5.6): a 401 names the scheme.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="edge"'}
# Headers of aiohttp's own HTTP errors worth keeping (405's Allow names the methods).
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    extra = dict(headers or {})
    if status == 401:
        extra = {**_CHALLENGE, **extra}
    response = web.json_response({"error": message}, status=status, headers=extra or None)
    if status == 408:
        response.force_close()  # the rest of a late request must not be read as a new one
    return response


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
        kept = {k: exc.headers[k] for k in _KEPT_HEADERS if k in exc.headers}
        return error_response(exc.status, reason or "error", kept)
    except Exception:
        LOG.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "internal error; see the daemon's log")
