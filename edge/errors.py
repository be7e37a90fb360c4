"""The one error root of edge, with the HTTP status each kind maps to.

Expected failures of the control plane are raised as ``EdgeError`` subclasses and
turned into JSON answers in one place (``edge.api.errors``); the CLI prints them as
one ``Error: ...`` line. The data plane does not raise these: its expected failures
are values.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Root of every error edge reports on purpose."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(EdgeError):
    """A configuration file is unreadable or invalid; ``problems`` holds every error."""

    http_status = 400

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class BadRequest(EdgeError):
    """The request is malformed: bad JSON, a wrong type, an unknown value."""

    http_status = 400


class Unauthorized(EdgeError):
    http_status = 401


class RequestTimeout(EdgeError):
    """The client did not send its request in time (the connection is closed after)."""

    http_status = 408


class Forbidden(EdgeError):
    http_status = 403


class NotFound(EdgeError):
    http_status = 404


class Conflict(EdgeError):
    """The request collides with the current state (the primary IP, an existing name)."""

    http_status = 409


class LimitExceeded(EdgeError):
    """A quota such as ``ipam.max_ips_per_org`` would be exceeded."""

    http_status = 422


class PoolExhausted(EdgeError):
    """An address pool has no address left to hand out."""

    http_status = 503


class StartupError(EdgeError):
    """The daemon cannot start: a port in use, an unreadable state directory."""

    http_status = 500


class StoreUnavailable(EdgeError):
    """The state database cannot be used right now: busy, disk full, an I/O error."""

    http_status = 503
