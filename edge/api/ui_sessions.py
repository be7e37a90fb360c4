"""One-step sign-in to the dashboard: ``edgectl ui`` prints ``/ui#code=CODE``.

A caller with a token asks ``POST /v1/ui/login-codes`` for a one-time code (valid
``CODE_TTL`` seconds, usable once). The page reads it from the URL fragment (which no
browser sends to a server or puts in a Referer), removes it from the address bar, and
trades it at ``POST /v1/ui/session`` (no token needed) for a session token that acts
as the caller did, for ``SESSION_TTL`` seconds. Only hashes of codes and session tokens
are kept, in memory: a restart signs every dashboard out. Both tables are bounded, the
oldest entry going first, so no client can grow them.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.core.tokens import format_token, hash_token
from edge.errors import Unauthorized
from edge.store import Caller

CODE_TTL = 120.0
SESSION_TTL = 12 * 3600.0
MAX_CODES = 64
MAX_SESSIONS = 1024
SESSION_PATH = "/v1/ui/session"  # public: the code is the credential


@dataclass(slots=True)
class UiLogins:
    """Outstanding one-time codes and live dashboard sessions, by hash."""

    clock: Callable[[], float] = time.monotonic
    codes: OrderedDict[str, tuple[Caller, float]] = field(default_factory=OrderedDict)
    sessions: OrderedDict[str, tuple[Caller, float]] = field(default_factory=OrderedDict)

    def new_code(self, caller: Caller) -> str:
        code = format_token(secrets.token_bytes(32), prefix="")
        _put(self.codes, hash_token(code), (caller, self.clock() + CODE_TTL), MAX_CODES)
        return code

    def redeem(self, code: str) -> str:
        """A session token for ``code``, which is used up; Unauthorized if it is not valid."""
        entry = self.codes.pop(hash_token(code), None)
        if entry is None or entry[1] < self.clock():
            raise Unauthorized(
                "this sign-in link is used up or expired: run `edgectl ui` for a new one"
            )
        token = format_token(secrets.token_bytes(32), prefix="edge_ui_")
        _put(self.sessions, hash_token(token), (entry[0], self.clock() + SESSION_TTL), MAX_SESSIONS)
        return token

    def caller(self, token_hash: str) -> Caller | None:
        """Who a live session token acts as (an expired one is forgotten)."""
        entry = self.sessions.get(token_hash)
        if entry is None:
            return None
        if entry[1] < self.clock():
            del self.sessions[token_hash]
            return None
        return entry[0]


def _put(
    table: OrderedDict[str, tuple[Caller, float]],
    key: str,
    value: tuple[Caller, float],
    limit: int,
) -> None:
    table[key] = value
    while len(table) > limit:
        table.popitem(last=False)
