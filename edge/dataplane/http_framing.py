"""Body framing and the responses the edge makes itself.

``ChunkedFramer`` finds where a chunked body ends in the raw byte stream, so the relay
can forward a chunked body untouched and still know where the next message starts (the
relay's parser, fed exactly the body bytes, checks the syntax). The rest builds the short plain-text
answers of the edge: errors, ``NoUpstream`` pages, the ``force_https`` redirect.
"""

from __future__ import annotations

from typing import Final, Protocol

import httptools

from edge.dataplane.contract import NoUpstream


class _BodyEnd(Exception):
    """Stops the lead parser where a chunked body ends (nothing after it is parsed)."""


class _Lead:
    """The lead parser's callback target: it only notes that the message ended."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def on_message_complete(self) -> None:
        self.done = True
        raise _BodyEnd


class MessageEnd(Protocol):
    """What the relay's own parser reports to (``RequestHeadScan`` and the like)."""

    @property
    def message_done(self) -> bool: ...


class HttpParser(Protocol):
    """httptools' parsers, as far as framing needs them."""

    def feed_data(self, data: bytes | memoryview) -> None: ...


# Synthetic head the lead parser starts from: it only ever sees a chunked body after it.
_LEAD_HEAD: Final = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


class ChunkedFramer:
    """Finds where a chunked body ends in the byte stream, at C speed (llhttp's).

    A chunked body is forwarded untouched, yet the relay must know the exact offset
    where it ends (the next request starts there, and no byte of it may reach the
    machine). A Python loop per chunk costs ~1 us: 1-byte chunks ran at 6 MB/s and held
    the event loop for seconds. Here two llhttp parsers do the work: a throwaway *lead*
    is fed each piece (``PIECE`` bytes) first; while it says the body goes on, the
    relay's own parser (which checks the syntax and sees trailers) is fed the same
    piece. In the one piece where the lead saw the end, the relay's parser is fed line
    by line (a body can only end just after a LF) until it says the message is
    complete: that offset is the end. Cost: two C passes over the bytes plus at most
    one feed per line of a single piece per body.
    """

    __slots__ = ("_lead", "_lead_parser")

    PIECE: Final = 2048

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new body (the lead of the previous one may have stopped at its end)."""
        self._lead = _Lead()
        self._lead_parser = httptools.HttpRequestParser(self._lead)
        self._lead_parser.feed_data(_LEAD_HEAD)

    def scan(self, data: bytes, pos: int, parser: HttpParser, target: MessageEnd) -> int:
        """Feed ``parser`` the body bytes of ``data[pos:]``; return the offset just past
        the body's end, -1 if the body goes on after ``data``, -2 if it is malformed.

        ``target`` is ``parser``'s callback object (its ``message_done`` says when the
        body ended). An upgrade signal from ``parser`` is ignored, as before.
        """
        view = memoryview(data)
        size = len(data)
        lead = self._lead_parser
        while pos < size:
            stop = min(pos + self.PIECE, size)
            piece = view[pos:stop]
            try:
                lead.feed_data(piece)
            except httptools.HttpParserError:
                if not self._lead.done:
                    return -2  # llhttp rejected the chunk syntax
                return self._walk(data, view, pos, stop, parser, target)
            if not _fed(parser, piece) or target.message_done:
                return -2  # the two parsers disagree: trust neither
            pos = stop
        return -1

    @staticmethod
    def _walk(
        data: bytes, view: memoryview, pos: int, stop: int, parser: HttpParser, target: MessageEnd
    ) -> int:
        """The body ends in ``data[pos:stop]``: feed ``parser`` a line at a time to it."""
        while pos < stop:
            newline = data.find(b"\n", pos, stop)
            if newline < 0:
                break
            if not _fed(parser, view[pos : newline + 1]):
                return -2
            pos = newline + 1
            if target.message_done:
                return pos
        return -2


def _fed(parser: HttpParser, data: bytes | memoryview) -> bool:
    """Feed ``parser``: False if it rejected the bytes (an upgrade signal is no error)."""
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return True
    except httptools.HttpParserError:
        return False
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
    505: "HTTP Version Not Supported",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def edge_response(
    status: int, text: str, added: bytes, close: bool, extra: bytes = b"", head_only: bool = False
) -> bytes:
    """A complete plain-text response made by the edge itself (errors, redirects).

    ``added`` holds the edge's usual lines (no Connection line: ``close`` adds it, once);
    ``head_only``: the answer to a HEAD request, whose Content-Length tells the size of the
    body a GET would get and which carries no body (RFC 9110 section 9.3.2).
    """
    body = text.encode()
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Error").encode()),
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(body),
            extra,
            added,
            b"Connection: close\r\n\r\n" if close else b"\r\n",
            b"" if head_only else body,
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
