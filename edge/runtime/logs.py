"""Lifecycle logging to stderr: one line per event, human-readable or JSON.

An event with an exception carries its traceback (indented lines after the event in the
human form, a ``traceback`` field in JSON): "see the daemon's log" must find it there.
Errors the loop reports (``Fatal error on transport``, a failed callback) go through
``log_loop_exception``; a client's malformed request to the API is one line, no traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

LOG = logging.getLogger("edge")

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[1] is not None:
        return formatter.formatException(record.exc_info)
    return record.stack_info or None


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp}Z {record.levelname.lower():<7} {record.getMessage()}"
        line = f"{line} {extra}" if extra else line
        trace = _traceback(self, record)
        if trace:
            line += "\n" + "\n".join("    " + row for row in trace.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            **_fields(record),
        }
        trace = _traceback(self, record)
        if trace:
            entry["traceback"] = trace
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print a line per API request; lifecycle only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_client_error_as_one_line)


def _client_error_as_one_line(record: logging.LogRecord) -> bool:
    """aiohttp logs a client's malformed request (too long a header, a bad request line)
    as an error with a traceback: it is the client's mistake, so one info line."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500:
        record.msg = "api: malformed request answered with %s"
        record.args = (exc.code or 400,)
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        record.__dict__["reason"] = exc.message
    return True


def log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's exception handler: the loop's message, what failed, the traceback."""
    exc = context.get("exception")
    message = str(context.get("message") or "unhandled error in the event loop")
    fields = {
        key: repr(value)
        for key, value in context.items()
        if key in ("protocol", "transport", "handle", "task", "future")
    }
    if isinstance(exc, BaseException):
        fields["error"] = f"{type(exc).__name__}: {exc}"
        LOG.error(message, extra=fields, exc_info=(type(exc), exc, exc.__traceback__))
    else:
        LOG.error(message, extra=fields)
