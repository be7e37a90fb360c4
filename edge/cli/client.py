"""A small blocking client for the edge REST API, used by ``edgectl``.

It finds the API at ``$EDGE_API_URL`` (default ``http://127.0.0.1:4280``) and the token
in ``$EDGE_API_TOKEN``, else in ``STATE_DIR/token`` (the daemon's state-dir rules).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.errors import EdgeError
from edge.runtime.statedir import default_state_dir

DEFAULT_API_URL = "http://127.0.0.1:4280"


class ApiError(EdgeError):
    """The API answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def find_token(env: Mapping[str, str]) -> str | None:
    if env.get("EDGE_API_TOKEN"):
        return env["EDGE_API_TOKEN"].strip()
    path = default_state_dir(env) / "token"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class ApiClient:
    base_url: str
    token: str | None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiClient:
        env = os.environ if env is None else env
        url = check_api_url(env.get("EDGE_API_URL") or DEFAULT_API_URL)
        return cls(base_url=url, token=find_token(env))

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        query: Mapping[str, str] | None = None,
    ) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        return self._send(request)

    def _send(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(_error_text(exc), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(
                f"cannot reach the edge API at {self.base_url} ({reason}); is `edge serve` "
                "running? Set EDGE_API_URL to use another address"
            ) from None
        return json.loads(payload) if payload else None

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: object) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def check_api_url(url: str) -> str:
    """``url`` (without a final /) when it is ``http(s)://HOST[:PORT]``; else an ApiError
    saying what to set."""
    problem = ""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname:
            problem = "it names no host"
        elif parts.query or parts.fragment:
            problem = "it must not have a query or fragment"
    if problem:
        raise ApiError(
            f"EDGE_API_URL {url!r} is malformed ({problem}): expected http://HOST:PORT, "
            f"for example {DEFAULT_API_URL}"
        )
    return url.strip().rstrip("/")


def _error_text(exc: urllib.error.HTTPError) -> str:
    raw = exc.read()
    try:
        message = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace").strip() or exc.reason
    if exc.code == 401:
        return f"{message} (set EDGE_API_TOKEN, or run where the daemon's STATE_DIR/token is)"
    return str(message)
