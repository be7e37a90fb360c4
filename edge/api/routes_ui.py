"""The live dashboard: ``/ui`` serves the static page shipped in ``edge/ui``.

The page is public (it holds no data); it asks for a token and calls the API with it.
Assets are read from the package with importlib.resources on each request (the page loads
once per session; an edited file shows on reload). The files in ``edge/ui`` are the whole
set of names served, so an unknown name (or any path trick) is a 404.
A strict Content-Security-Policy keeps the page from loading anything from elsewhere.
"""

from __future__ import annotations

import html
from importlib import resources
from types import MappingProxyType

from aiohttp import web

from edge.api.ui_login import token_path_hint
from edge.errors import NotFound

routes = web.RouteTableDef()

INDEX = "index.html"
CONTENT_TYPES = MappingProxyType(
    {
        "html": "text/html",
        "js": "text/javascript",
        "css": "text/css",
        "json": "application/json",
        "svg": "image/svg+xml",
        "png": "image/png",
        "ico": "image/x-icon",
    }
)
TEXT_TYPES = frozenset({"html", "js", "css", "json", "svg"})
SECURITY_HEADERS = MappingProxyType(
    {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
)


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower()


def asset_names() -> frozenset[str]:
    """The servable files of ``edge/ui``: the only names ``/ui/{asset}`` answers."""
    folder = resources.files("edge").joinpath("ui")
    return frozenset(
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and _extension(entry.name) in CONTENT_TYPES
    )


def asset_response(name: str) -> web.Response:
    if name not in asset_names():
        raise NotFound(f"no dashboard asset {name!r}")
    body = resources.files("edge").joinpath("ui", name).read_bytes()
    extension = _extension(name)
    response = web.Response(body=body, headers=SECURITY_HEADERS)
    response.content_type = CONTENT_TYPES[extension]
    if extension in TEXT_TYPES:
        response.charset = "utf-8"
    return response


TOKEN_PATH_MARK = '<code id="token-path">STATE_DIR/token</code>'


def index_response(request: web.Request) -> web.Response:
    """The page; a client on this machine is told where the admin token file really is."""
    response = asset_response(INDEX)
    hint = token_path_hint(request)
    if hint is not None and isinstance(response.body, bytes):
        real = f'<code id="token-path">{html.escape(hint)}</code>'
        response.body = response.body.replace(TOKEN_PATH_MARK.encode(), real.encode())
    return response


@routes.get("/ui")
async def dashboard(request: web.Request) -> web.Response:
    return index_response(request)


@routes.get("/ui/")
async def dashboard_slash(request: web.Request) -> web.Response:
    return index_response(request)


@routes.get("/ui/{asset}")
async def dashboard_asset(request: web.Request) -> web.Response:
    return asset_response(request.match_info["asset"])
