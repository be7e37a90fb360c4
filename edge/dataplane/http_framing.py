"""Body framing and the responses the edge makes itself.

``ChunkedScanner`` finds where a chunked body ends in the raw byte stream, so the relay
can forward a chunked body untouched and still know where the next message starts (the
parser, fed the same bytes, checks the syntax). The rest builds the short plain-text
answers of the edge: errors, ``NoUpstream`` pages, the ``force_https`` redirect.
"""

from __future__ import annotations

from typing import Final

from edge.dataplane.contract import NoUpstream


class ChunkedScanner:
    """Finds where a chunked body ends in a byte stream; the parser checks the syntax."""

    __slots__ = ("_left", "_line", "_state")

    # One assignment each (not a tuple unpacking): mypyc compiles these modules too.
    _SIZE = 0
    _DATA = 1
    _DATA_END = 2
    _TRAILER = 3
    MAX_LINE = 4096

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._state = self._SIZE
        self._left = 0
        self._line = b""

    def scan(self, data: bytes, pos: int) -> int:
        """Offset just past the body's end in ``data``; -1 if it goes on, -2 if malformed."""
        size = len(data)
        while pos < size:
            if self._state in (self._DATA, self._DATA_END):
                take = min(self._left, size - pos)
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state, self._left = (
                        (self._DATA_END, 2) if self._state == self._DATA else (self._SIZE, 0)
                    )
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                return -2 if len(self._line) > self.MAX_LINE else -1
            line = self._line + data[pos:newline] if self._line else data[pos:newline]
            self._line = b""
            pos = newline + 1
            if self._state == self._TRAILER:
                if line in (b"", b"\r"):
                    return pos
            elif not self._size_line(line):
                return -2
        return -1

    def _size_line(self, line: bytes) -> bool:
        digits = line.partition(b";")[0].rstrip(b"\r")
        if not digits or len(digits) > 15 or digits.strip(b"0123456789abcdefABCDEF"):
            return False
        self._left = int(digits, 16)
        self._state = self._DATA if self._left else self._TRAILER
        return True


REASONS: Final = {
    200: "OK",
    301: "Moved Permanently",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    421: "Misdirected Request",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def edge_response(status: int, text: str, added: bytes, close: bool, extra: bytes = b"") -> bytes:
    """A complete plain-text response made by the edge itself (errors, redirects)."""
    body = text.encode()
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Error").encode()),
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            extra,
            added,
            b"Connection: close\r\n\r\n" if close else b"\r\n",
            body,
        )
    )


def no_upstream_answer(choice: NoUpstream, host: bytes | None) -> tuple[str, bytes]:
    """The body text and extra header lines answering a request nobody can take."""
    name = (host or b"").decode("latin-1")
    if choice.status == 404:
        return f"edge: no app is served at {name!r} on this address ({choice.reason})\n", b""
    who = f"app {choice.app!r}" if choice.app else f"host {name!r}"
    extra = b""
    if choice.status >= 500 or choice.status == 429:
        extra = b"Retry-After: %d\r\n" % choice.retry_after
    return f"edge: {who}: {choice.reason}\n", extra


def https_location(host: bytes, target: bytes) -> bytes:
    """The Location line of a redirect to the https version of a request."""
    # Drop the port (the http port says nothing about the https one), not an IPv6 literal.
    host = host[: host.find(b"]") + 1] if host.startswith(b"[") else host.partition(b":")[0]
    path = target if target.startswith(b"/") else b"/"
    return b"Location: https://" + host + path + b"\r\n"
