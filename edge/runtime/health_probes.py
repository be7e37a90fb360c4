"""What one active health check does on the wire: open a TCP connection, or ask HTTP.

A TCP check passes when a connection to the machine opens within the timeout. An HTTP
check sends one HTTP/1.1 request (``Host`` is the machine's address unless the check's
headers set it, ``Connection: close``), reads the response head only, closes, and
passes on a 2xx; a redirect is a failure, never followed. ``https`` checks verify the
machine's certificate against ``tls_server_name`` (else the address) unless
``tls_skip_verify``. The timeout covers the whole check: connect, TLS and head.

Not the hot path: ``asyncio.open_connection`` is plenty.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from dataclasses import dataclass

from edge.config.model import CheckSpec, HttpCheckSpec
from edge.core import limits

LOG = logging.getLogger("edge.health")
USER_AGENT = "edge-health-check/1"
MAX_HEAD_BYTES = 16384  # a status line and headers; more is not an answer we judge
_LINE_BREAKS = frozenset("\r\n")


class BadCheckRequest(ValueError):
    """The check's own request cannot be sent (a header with a line break, say)."""


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    ok: bool
    output: str  # "connected", "status 200", or what went wrong
    timed_out: bool = False
    # The edge itself ran out of file descriptors (EMFILE/ENFILE): says nothing about
    # the machine, so no verdict is drawn from it.
    edge_exhausted: bool = False


async def probe(check: CheckSpec, host: str, port: int) -> ProbeOutcome:
    """Run ``check`` once against ``host:port``; never raises (except on cancellation)."""
    try:
        async with asyncio.timeout(check.timeout):
            if isinstance(check, HttpCheckSpec):
                return await _http(check, host, port)
            return await _tcp(host, port)
    except TimeoutError:  # before OSError: TimeoutError is one
        return ProbeOutcome(False, f"timeout after {seconds_text(check.timeout)}", True)
    except ssl.SSLError as exc:
        return ProbeOutcome(False, describe_tls_error(exc))
    except OSError as exc:
        if limits.edge_exhausted(exc.errno):
            return ProbeOutcome(False, describe_os_error(exc), edge_exhausted=True)
        return ProbeOutcome(False, describe_os_error(exc))
    except BadCheckRequest as exc:
        return ProbeOutcome(False, f"cannot send the check: {exc}")
    except asyncio.IncompleteReadError:
        return ProbeOutcome(False, "connection closed before an answer")
    except asyncio.LimitOverrunError:
        return ProbeOutcome(False, f"bad answer: a head over {MAX_HEAD_BYTES} bytes")
    except ValueError as exc:
        return ProbeOutcome(False, f"bad answer: {exc}")


async def _tcp(host: str, port: int) -> ProbeOutcome:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    return ProbeOutcome(True, "connected")


async def _http(check: HttpCheckSpec, host: str, port: int) -> ProbeOutcome:
    head = request_head(check, host, port)  # before connecting: a bad header fails early
    tls = client_context(check.tls_skip_verify) if check.protocol == "https" else None
    server_name = (check.tls_server_name or host) if tls is not None else None
    reader, writer = await asyncio.open_connection(
        host, port, ssl=tls, server_hostname=server_name, limit=MAX_HEAD_BYTES
    )
    try:
        writer.write(head)
        answer = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    status = parse_status(answer)
    return ProbeOutcome(200 <= status < 300, f"status {status}")


def request_head(check: HttpCheckSpec, host: str, port: int) -> bytes:
    """The request's head; the check's own headers replace the defaults of the same name."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = {"host": ("Host", authority), "user-agent": ("User-Agent", USER_AGENT)}
    headers["accept"] = ("Accept", "*/*")
    for name, value in check.headers.items():
        if _LINE_BREAKS & set(name + value):
            raise BadCheckRequest(f"header {name!r} contains a line break")
        headers[name.lower()] = (name, value)
    headers["connection"] = ("Connection", "close")  # one request, then we hang up
    lines = [f"{check.method} {check.path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.values()]
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise BadCheckRequest("a header or the path is not Latin-1 text") from None


def parse_status(head: bytes) -> int:
    """The status code of an HTTP/1.x response head."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x status line: {line[:60]!r}")
    return int(parts[1])


@functools.cache
def client_context(skip_verify: bool) -> ssl.SSLContext:
    """One client context per verification mode, made once (loading CAs costs time)."""
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_tls_error(exc: ssl.SSLError) -> str:
    """``tls: certificate verify failed: self-signed certificate``, not OpenSSL's codes."""
    text = "tls: " + (exc.reason or str(exc)).lower().replace("_", " ")
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        text += f": {exc.verify_message}"
    return text


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[0].lower() + text[1:] if text else text


def seconds_text(seconds: float) -> str:
    """``1s``, ``1.5s``, ``250ms``: how durations read in config files."""
    if seconds < 1.0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
