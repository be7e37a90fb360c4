"""Who is calling: the admin token, an org's token, or nobody (401).

Tokens are looked up by their hash; the admin token is compared in constant time.
Org tokens see only their org: everything of another org answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from edge.api.ui_sessions import SESSION_PATH, UiLogins
from edge.core.tokens import bearer_token, hash_token, token_matches
from edge.errors import Forbidden, Unauthorized
from edge.store import ADMIN, Caller

# Paths anyone may read: liveness, metrics for Prometheus, the API's own description,
# and the dashboard's code-for-session exchange (the one-time code is its credential).
PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/v1/openapi.json", SESSION_PATH})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Identity:
    caller: Caller

    @property
    def is_admin(self) -> bool:
        return self.caller.org is None

    @property
    def org_scope(self) -> str | None:
        """The org this caller is limited to; None for the admin."""
        return self.caller.org

    def require_admin(self, action: str) -> None:
        if not self.is_admin:
            raise Forbidden(f"{action} needs the admin token")


IDENTITY = web.RequestKey("identity", Identity)


class TokenCheck:
    """Resolves a bearer token to an Identity; the admin hash is cached at start."""

    def __init__(
        self,
        admin_hash: str,
        find_org: Callable[[str], Awaitable[str | None]],
        logins: UiLogins | None = None,
        metrics_hash: str | None = None,
    ) -> None:
        self._admin_hash = admin_hash
        self._find_org = find_org
        self.logins = UiLogins() if logins is None else logins  # dashboard sessions
        self._metrics_hash = metrics_hash

    @property
    def metrics_protected(self) -> bool:
        return self._metrics_hash is not None

    def check_metrics(self, authorization: str | None) -> None:
        """/metrics with ``metrics.require_token``: the admin or the metrics token only.

        Org tokens are refused too: the metrics name every org's apps and machines.
        """
        if bearer_token(authorization) is None:
            raise Unauthorized(
                "/metrics needs 'Authorization: Bearer TOKEN' with the metrics token "
                "(STATE_DIR/metrics_token) or the admin token"
            )
        token = self._token(authorization)
        for stored in (self._admin_hash, self._metrics_hash or ""):
            if token_matches(token, stored):
                return
        raise Unauthorized(
            "/metrics needs the metrics token (STATE_DIR/metrics_token) or the admin token"
        )

    @staticmethod
    def _token(authorization: str | None) -> str:
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized("missing bearer token: send 'Authorization: Bearer TOKEN'")
        if not token.isascii() or not token.isprintable():
            # Tokens are URL-safe base64; anything else (e.g. undecodable bytes) is not one.
            raise Unauthorized("invalid token")
        return token

    async def identify(self, authorization: str | None) -> Identity:
        token = self._token(authorization)
        if token_matches(token, self._admin_hash):
            return Identity(ADMIN)
        session = self.logins.caller(hash_token(token))
        if session is not None:
            return Identity(session)
        slug = await self._find_org(hash_token(token))
        if slug is None:
            raise Unauthorized("invalid token")
        return Identity(Caller.for_org(slug))


def auth_middleware(check: TokenCheck) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/metrics" and check.metrics_protected:
            check.check_metrics(request.headers.get("Authorization"))
            return await handler(request)
        if request.path in PUBLIC_PATHS or request.path.startswith("/ui"):
            return await handler(request)
        request[IDENTITY] = await check.identify(request.headers.get("Authorization"))
        return await handler(request)

    return middleware
