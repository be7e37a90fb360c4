"""The dashboard's sign-in routes (the rules: edge.api.ui_sessions)."""

from __future__ import annotations

from aiohttp import web

from edge.api.app_context import CONTEXT
from edge.api.auth import IDENTITY
from edge.api.bodies import Body, read_body
from edge.api.ui_sessions import CODE_TTL, SESSION_PATH, SESSION_TTL, UiLogins

routes = web.RouteTableDef()
LOGINS = web.AppKey("ui_logins", UiLogins)


class Redeem(Body):
    code: str


@routes.post("/v1/ui/login-codes")
async def new_login_code(request: web.Request) -> web.Response:
    """A one-time code for the dashboard, acting as the caller (edgectl ui)."""
    code = request.app[LOGINS].new_code(request[IDENTITY].caller)
    return web.json_response(
        {"code": code, "path": f"/ui#code={code}", "expires_in": CODE_TTL}, status=201
    )


@routes.post(SESSION_PATH)
async def redeem_login_code(request: web.Request) -> web.Response:
    body = await read_body(request, Redeem)
    token = request.app[LOGINS].redeem(body.code)
    return web.json_response({"token": token, "expires_in": SESSION_TTL}, status=201)


def token_path_hint(request: web.Request) -> str | None:
    """The admin token file, shown on the login box only to a client on this machine."""
    path = request.app[CONTEXT].token_path
    remote = request.remote or ""
    local = remote.startswith("127.") or remote in ("::1", "localhost")
    return str(path) if path is not None and local else None
