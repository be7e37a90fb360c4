"""Which client requests the HTTP relay accepts, and what it answers to the others.

The relay forwards a request only after these rules have passed it, so a machine only
ever sees requests the edge itself validated (passive health counts failures of those
alone). The parser (llhttp) has already checked the syntax; these rules add what
RFC 9112 asks of a server and what a shared address needs to route safely:

- a version other than HTTP/1.0 or HTTP/1.1 is never forwarded: a version-less
  (HTTP/0.9) line gets 400, a well-formed other version (HTTP/2.0, ...) 505;
- two Host lines are a 400 (RFC 9112 section 3.2), as are an HTTP/1.1 request without
  one and a Host that is not ``host[:port]``;
- an absolute-form target (``GET http://a.example/x HTTP/1.1``) names the host: its
  authority replaces Host and the machine gets the origin form (section 3.2.2);
- on TLS, a Host other than the session's SNI is a 421 Misdirected Request: the
  certificate was chosen for one name, the request would be routed by another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Refusal:
    """The edge answers the request itself and closes the connection."""

    status: int
    text: str


@dataclass(frozen=True, slots=True)
class Retarget:
    """An absolute-form request: route by ``host``, forward ``line`` (origin form)."""

    host: bytes
    line: bytes


Verdict = Refusal | Retarget | None  # None: accept the request as it is

_VERSIONS: Final = (b" HTTP/1.1", b" HTTP/1.0")
# host[:port]: a reg-name or IPv4 address (RFC 3986 unreserved, sub-delims, pct), or an
# IP literal in brackets; the port is digits.
_HOST: Final = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")
_ABSOLUTE: Final = re.compile(rb"(?i)https?://([^/?#]*)")


def valid_host(host: bytes) -> bool:
    """Whether a Host value is ``host[:port]`` (no spaces, userinfo, paths or controls)."""
    return _HOST.fullmatch(host) is not None


def host_name(host: bytes) -> bytes:
    """The name part of a (valid) Host value: no port, lower case, no trailing dot."""
    if host.startswith(b"["):
        return host[: host.find(b"]") + 1].lower()
    return host.partition(b":")[0].rstrip(b".").lower()


def judge_request(line: bytes, host: bytes | None, host_lines: int, sni: str | None) -> Verdict:
    """What to do with a request: ``line`` is its request line (no CRLF), ``host`` its
    Host value (None if absent), ``sni`` the TLS session's server name (None if none)."""
    if not line.endswith(_VERSIONS):
        return _bad_version(line)
    if host_lines > 1:
        return Refusal(400, "edge: a request must have exactly one Host header\n")
    target = line[line.find(b" ") + 1 : line.rfind(b" ")]
    verdict: Verdict = None
    if not target.startswith(b"/"):
        absolute = _ABSOLUTE.match(target)
        if absolute is not None:
            authority = absolute.group(1)
            if not authority or not valid_host(authority):
                return Refusal(400, "edge: the request target names no valid host\n")
            path = target[absolute.end() :] or b"/"
            if not path.startswith(b"/"):
                path = b"/" + path
            host = authority
            verdict = Retarget(authority, line.replace(target, path, 1))
    if host is None:
        if line.endswith(b"1.1"):
            return Refusal(400, "edge: an HTTP/1.1 request needs a Host header\n")
        return verdict
    if not valid_host(host):
        return Refusal(400, "edge: the Host header is not a valid host[:port]\n")
    if sni is not None and host_name(host) != sni.rstrip(".").lower().encode():
        return Refusal(421, "edge: the Host does not name the server of this TLS session\n")
    return verdict


def _bad_version(line: bytes) -> Refusal:
    parts = line.split(b" ")
    if len(parts) == 3 and parts[2].startswith(b"HTTP/"):
        return Refusal(505, "edge: only HTTP/1.0 and HTTP/1.1 are served on this port\n")
    return Refusal(400, "edge: the request line has no HTTP/1.x version\n")
