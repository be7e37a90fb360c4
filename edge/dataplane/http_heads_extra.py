"""Head edits outside the hot path: fly-replay signals, replayed requests, port policies.

Each function here runs only for a response or request that needs it (a replay answer,
a replayed request, a port with ``http_options.response``), so they favour clarity
over speed: a head is split into lines, edited, joined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from edge.core.replay import JSON_CONTENT_TYPE, ReplayTransform
from edge.core.replay_cache import SessionKind, SessionValue
from edge.dataplane.contract import PortPolicy

_EDGE_VIA: Final = b"via: 1.1 edge"


@dataclass(frozen=True, slots=True)
class ReplaySignal:
    """What a machine's response head says about replaying the request."""

    header: bytes | None  # the fly-replay value (header form)
    json: bool  # the body is the JSON form
    cache: bytes | None  # fly-replay-cache
    cache_ttl: bytes | None  # fly-replay-cache-ttl-secs
    chunked: bool = False  # the body (the JSON form's) comes in chunks


def header_lines(head: bytes) -> list[bytes]:
    """A head's header lines (no start line, no blank line)."""
    return head.rstrip(b"\r\n").split(b"\r\n")[1:]


def header_value(head: bytes, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase) in ``head``, stripped; None if absent."""
    for line in header_lines(head):
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == name:
            return value.strip()
    return None


def replay_signal(head: bytes) -> ReplaySignal | None:
    """A response head's fly-replay instruction, if it carries one."""
    fields: dict[bytes, bytes] = {}
    for line in header_lines(head):
        key, colon, value = line.partition(b":")
        key = key.strip().lower()
        if colon and key not in fields:
            fields[key] = value.strip()
    content_type = fields.get(b"content-type", b"").partition(b";")[0].strip().lower()
    is_json = content_type == JSON_CONTENT_TYPE
    header = fields.get(b"fly-replay")
    if header is None and not is_json:
        return None
    chunked = fields.get(b"transfer-encoding", b"").lower().endswith(b"chunked")
    return ReplaySignal(
        header,
        is_json,
        fields.get(b"fly-replay-cache"),
        fields.get(b"fly-replay-cache-ttl-secs"),
        chunked,
    )


def dechunk(data: bytes) -> bytes:
    """A whole chunked body (as relayed: framing included) without its framing.

    The relay's scanner already checked the framing; ValueError if it is cut short.
    """
    out: list[bytes] = []
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            raise ValueError("a chunked body cut short")
        size = int(data[pos:line_end].partition(b";")[0].strip() or b"0", 16)
        if size == 0:
            return b"".join(out)
        start = line_end + 2
        if start + size > len(data):
            raise ValueError("a chunked body cut short")
        out.append(data[start : start + size])
        pos = start + size + 2


def cookie_value(head: bytes, name: str) -> str | None:
    """The value of cookie ``name`` in the request head's Cookie header(s)."""
    wanted = name.encode("latin-1")
    for line in header_lines(head):
        key, colon, value = line.partition(b":")
        if not colon or key.strip().lower() != b"cookie":
            continue
        for pair in value.split(b";"):
            cookie, eq, found = pair.strip().partition(b"=")
            if eq and cookie == wanted:
                return found.decode("latin-1")
    return None


def session_reader(head: bytes) -> SessionValue:
    """What a session-scoped replay cache keys on: a cookie's or a header's value."""

    def value(kind: SessionKind, name: str) -> str | None:
        if kind == "cookie":
            return cookie_value(head, name)
        found = header_value(head, name.lower().encode("latin-1"))
        return None if found is None else found.decode("latin-1")

    return value


def host_name(host: bytes | None) -> str:
    """A Host header's name, lowercased, without the port (the replay cache's key)."""
    host = host or b""
    name = host[: host.find(b"]") + 1] if host.startswith(b"[") else host.partition(b":")[0]
    return name.decode("latin-1").lower()


def request_path(head: bytes) -> str:
    """The path of a request head's target, without the query."""
    target = head[: head.find(b"\r\n")].split(b" ")[1] if b" " in head[:8192] else b"/"
    return target.partition(b"?")[0].decode("latin-1")


def edit_request(head: bytes, transform: ReplayTransform | None, added: bytes) -> bytes:
    """The replayed request's head: ``transform`` applied, ``added`` lines appended."""
    if transform is None:
        return head[:-2] + added + b"\r\n"
    start, *lines = head[:-4].split(b"\r\n")
    if transform.path is not None:
        method, _, rest = start.partition(b" ")
        version = rest.rpartition(b" ")[2]
        start = b" ".join((method, transform.path.encode("latin-1"), version))
    dropped = {name.encode("latin-1") for name in transform.delete_headers}
    dropped |= {name.lower().encode("latin-1") for name, _ in transform.set_headers}
    kept = [line for line in lines if line.partition(b":")[0].strip().lower() not in dropped]
    kept.extend(
        f"{name}: {value}".encode("latin-1", "replace") for name, value in transform.set_headers
    )
    return b"\r\n".join([start, *kept]) + b"\r\n" + added + b"\r\n"


def apply_policy(head: bytes, policy: PortPolicy) -> bytes:
    """A response head for the client with the port's ``http_options.response`` applied.

    ``head`` is what the edge would send: the machine's lines, then its own
    (Fly-Request-Id, Via, maybe Connection). Pristine drops the edge's own two lines.
    """
    start, *lines = head[:-4].split(b"\r\n")
    kept = []
    for line in lines:
        name = line.partition(b":")[0].strip().lower()
        if name in policy.remove:
            continue
        if policy.pristine and (name == b"fly-request-id" or line.lower() == _EDGE_VIA):
            continue
        kept.append(line)
    return b"\r\n".join([start, *kept]) + b"\r\n" + policy.set_lines + b"\r\n"
