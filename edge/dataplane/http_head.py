"""HTTP/1.1 message heads for the L7 relay: what a head says, how it is rewritten, framing.

The relay forwards heads *as received* and edits them in place: hop-by-hop and spoofable
lines are cut out (found by the exact header name bytes the parser reported, so nothing
is re-serialised), the edge's own headers are appended before the blank line. A head
without such lines costs one slice and one concatenation.

``RequestHeadScan``/``ResponseHeadScan`` are the httptools callback targets: they keep
only what routing, framing and rewriting need. Bodies are never re-encoded: the relay
forwards the raw bytes and only needs to know where a body ends (``ChunkedScanner``
for chunked framing, a count for Content-Length).
"""

from __future__ import annotations

from typing import Final

# Header kinds: what a header line means to the relay.
_HOST: Final = 1
_CONTENT_LENGTH: Final = 2
_TRANSFER_ENCODING: Final = 3
_CONNECTION: Final = 4
_UPGRADE: Final = 5
_EXPECT: Final = 6
_HOP: Final = 7  # hop-by-hop: never forwarded
_OURS: Final = 8  # set by the edge: a client's copy is dropped, never trusted
_XFF: Final = 9
_XF_PORT: Final = 10
_PREFER_REGION: Final = 11
_FORCE_REGION: Final = 12
_PREFER_INSTANCE: Final = 13
_FORCE_INSTANCE: Final = 14
_CLIENT_REGION: Final = 15


def _kinds(table: dict[str, int]) -> dict[bytes, int]:
    """Lower, Title-Case and UPPER spellings, so common heads skip ``bytes.lower``."""
    out: dict[bytes, int] = {}
    for name, kind in table.items():
        title = "-".join(part.capitalize() for part in name.split("-"))
        for spelling in (name, title, name.upper()):
            out[spelling.encode()] = kind
    return out


_REQUEST_KINDS: Final = _kinds(
    {
        "host": _HOST,
        "content-length": _CONTENT_LENGTH,
        "transfer-encoding": _TRANSFER_ENCODING,
        "connection": _CONNECTION,
        "upgrade": _UPGRADE,
        "expect": _EXPECT,
        "keep-alive": _HOP,
        "te": _HOP,
        "trailer": _HOP,
        "proxy-connection": _HOP,
        "fly-client-ip": _OURS,
        "x-forwarded-proto": _OURS,
        "x-forwarded-ssl": _OURS,
        "fly-forwarded-port": _OURS,
        "fly-region": _OURS,
        "x-forwarded-for": _XFF,
        "x-forwarded-port": _XF_PORT,
        "fly-prefer-region": _PREFER_REGION,
        "fly-force-region": _FORCE_REGION,
        "fly-prefer-instance-id": _PREFER_INSTANCE,
        "fly-force-instance-id": _FORCE_INSTANCE,
        "edge-client-region": _CLIENT_REGION,
    }
)
_RESPONSE_KINDS: Final = _kinds(
    {
        "content-length": _CONTENT_LENGTH,
        "transfer-encoding": _TRANSFER_ENCODING,
        "connection": _CONNECTION,
        "upgrade": _UPGRADE,
        "keep-alive": _HOP,
        "te": _HOP,
        "trailer": _HOP,
        "proxy-connection": _HOP,
    }
)
_REQUEST_LENGTHS: Final = frozenset(len(name) for name in _REQUEST_KINDS)
_RESPONSE_LENGTHS: Final = frozenset(len(name) for name in _RESPONSE_KINDS)
# Connection may name other headers to drop, but never these: that would change framing.
_NEVER_NAMED: Final = frozenset({b"host", b"content-length", b"transfer-encoding", b"upgrade"})


class _ConnectionTokens:
    """What a head's Connection header(s) said."""

    __slots__ = ("conn_close", "conn_keep_alive", "named")

    def _reset_connection(self) -> None:
        self.conn_close = False
        self.conn_keep_alive = False
        self.named: set[bytes] | None = None  # other headers it names, to drop

    def _connection(self, value: bytes) -> None:
        for token in value.lower().split(b","):
            name = token.strip()
            if name == b"close":
                self.conn_close = True
            elif name == b"keep-alive":
                self.conn_keep_alive = True
            elif name and name != b"upgrade" and name not in _NEVER_NAMED:
                if self.named is None:
                    self.named = set()
                self.named.add(name)

    def keeps_alive(self, http10: bool) -> bool:
        """Whether the sender keeps the connection open after this message."""
        return self.conn_keep_alive and not self.conn_close if http10 else not self.conn_close


class RequestHeadScan(_ConnectionTokens):
    """Parser callbacks for a request head: routing hints, framing, lines to cut."""

    __slots__ = (
        "chunked",
        "client_region",
        "content_length",
        "cut",
        "expect_continue",
        "force_instance",
        "force_region",
        "has_xf_port",
        "headers_done",
        "hinted",
        "host",
        "message_done",
        "prefer_instance",
        "prefer_region",
        "upgrade_name",
        "url",
        "xff",
    )

    def __init__(self) -> None:
        self.cut: list[bytes] = []
        self.on_message_begin()

    def on_message_begin(self) -> None:
        self.url = b""
        self.host: bytes | None = None
        self.content_length = -1
        self.chunked = False
        self.expect_continue = False
        self.xff: bytes | None = None
        self.has_xf_port = False
        self.prefer_region: bytes | None = None
        self.force_region: bytes | None = None
        self.prefer_instance: bytes | None = None
        self.force_instance: bytes | None = None
        self.client_region: bytes | None = None
        self.hinted = False  # any routing header besides Host
        self.upgrade_name: bytes | None = None
        self._reset_connection()
        self.cut.clear()
        self.headers_done = False
        self.message_done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = _REQUEST_KINDS.get(name)
        if kind is None:
            if len(name) not in _REQUEST_LENGTHS or self.headers_done:
                return
            kind = _REQUEST_KINDS.get(name.lower())
            if kind is None:
                return
        if self.headers_done:
            return  # a chunked body's trailer: forwarded as body bytes, untouched
        if kind == _HOST:
            self.host = value
        elif kind == _CONTENT_LENGTH:
            self.content_length = int(value)  # the parser already rejected a bad value
        elif kind == _TRANSFER_ENCODING:
            self.chunked = True  # the parser rejects a request whose last coding isn't chunked
        elif kind <= _EXPECT:
            self._connection_kinds(kind, name, value)
        else:
            self._edge_kinds(kind, name, value)

    def _connection_kinds(self, kind: int, name: bytes, value: bytes) -> None:
        if kind == _CONNECTION:
            self.cut.append(name)
            self._connection(value)
        elif kind == _UPGRADE:
            self.upgrade_name = name
        else:
            self.expect_continue = value.lower() == b"100-continue"

    def _edge_kinds(self, kind: int, name: bytes, value: bytes) -> None:
        if kind == _XF_PORT:
            self.has_xf_port = True
        elif kind in (_HOP, _OURS):
            self.cut.append(name)
        elif kind == _XFF:
            self.cut.append(name)
            self.xff = value if self.xff is None else self.xff + b", " + value
        else:
            self._routing_kinds(kind, name, value)

    def _routing_kinds(self, kind: int, name: bytes, value: bytes) -> None:
        self.hinted = True
        if kind == _PREFER_REGION:
            self.prefer_region = value
        elif kind == _FORCE_REGION:
            self.force_region = value
        elif kind == _PREFER_INSTANCE:
            self.prefer_instance = value
        elif kind == _FORCE_INSTANCE:
            self.force_instance = value
        else:
            self.cut.append(name)  # Edge-Client-Region is for the edge only
            self.client_region = value

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_message_complete(self) -> None:
        self.message_done = True

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0


class ResponseHeadScan(_ConnectionTokens):
    """Parser callbacks for a response head: framing and hop-by-hop lines to cut."""

    __slots__ = (
        "chunked",
        "content_length",
        "cut",
        "headers_done",
        "message_done",
        "transfer_coded",
        "upgrade_name",
    )

    def __init__(self) -> None:
        self.cut: list[bytes] = []
        self.on_message_begin()

    def on_message_begin(self) -> None:
        self.content_length = -1
        self.chunked = False
        self.transfer_coded = False
        self.upgrade_name: bytes | None = None
        self._reset_connection()
        self.cut.clear()
        self.headers_done = False
        self.message_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = _RESPONSE_KINDS.get(name)
        if kind is None:
            if len(name) not in _RESPONSE_LENGTHS or self.headers_done:
                return
            kind = _RESPONSE_KINDS.get(name.lower())
            if kind is None:
                return
        if self.headers_done:
            return
        if kind == _CONTENT_LENGTH:
            self.content_length = int(value)
        elif kind == _TRANSFER_ENCODING:
            # Only the last coding decides: chunked, or else the body runs until close.
            self.transfer_coded = True
            self.chunked = value.rstrip().lower().endswith(b"chunked")
        elif kind == _UPGRADE:
            self.upgrade_name = name
        else:
            self.cut.append(name)
            if kind == _CONNECTION:
                self._connection(value)

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_message_complete(self) -> None:
        self.message_done = True


def cut_headers(head: bytes, names: list[bytes]) -> bytes:
    """``head`` without one line per name (exact bytes as parsed, so no case folding)."""
    for name in names:
        start = head.find(b"\r\n" + name + b":")
        if start >= 0:
            end = head.find(b"\r\n", start + 2)
            head = head[:start] + head[end:]
    return head


def cut_named(head: bytes, names: set[bytes]) -> bytes:
    """``head`` without every line whose (case-folded) name is in ``names``; rare path."""
    lines = head.split(b"\r\n")
    kept = [lines[0]]
    kept.extend(line for line in lines[1:] if line.partition(b":")[0].lower() not in names)
    return b"\r\n".join(kept)


class RequestRewriter:
    """What the edge adds to every request of one client connection, built once."""

    __slots__ = ("_client_ip", "_common", "_fly_lines", "_xf_port_line", "_xfp_lines")

    def __init__(self, client_ip: str, listener_port: int, tls: bool, pop: str) -> None:
        ip = client_ip.encode()
        self._client_ip = ip
        port = str(listener_port).encode()
        proto, ssl = (b"https", b"on") if tls else (b"http", b"off")
        self._xfp_lines = b"X-Forwarded-Proto: %s\r\nX-Forwarded-SSL: %s\r\n" % (proto, ssl)
        self._xf_port_line = b"X-Forwarded-Port: " + port + b"\r\n"
        self._fly_lines = b"Fly-Forwarded-Port: %s\r\nFly-Region: %s\r\n" % (port, pop.encode())
        self._common = self._suffix(None, False)

    def _suffix(self, xff: bytes | None, client_set_port: bool) -> bytes:
        chain = self._client_ip if xff is None else xff + b", " + self._client_ip
        return b"".join(
            (
                b"Fly-Client-IP: ",
                self._client_ip,
                b"\r\nX-Forwarded-For: ",
                chain,
                b"\r\n",
                self._xfp_lines,
                b"" if client_set_port else self._xf_port_line,
                self._fly_lines,
            )
        )

    def head_for_machine(
        self, head: bytes, scan: RequestHeadScan, upgrade: bool, http10: bool
    ) -> bytes:
        """The request head to send to the machine; ``head`` ends with the blank line."""
        if scan.upgrade_name is not None and not upgrade:
            scan.cut.append(scan.upgrade_name)
        if scan.cut:
            head = cut_headers(head, scan.cut)
        if scan.named is not None:
            head = cut_named(head, scan.named)
        if scan.xff is None and not scan.has_xf_port:
            suffix = self._common
        else:
            suffix = self._suffix(scan.xff, scan.has_xf_port)
        if upgrade:
            suffix += b"Connection: upgrade\r\n"
        elif http10:
            suffix += b"Connection: keep-alive\r\n"  # so the machine connection can be reused
        return head[:-2] + suffix + b"\r\n"


def head_for_client(head: bytes, scan: ResponseHeadScan, request_id: bytes, tail: bytes) -> bytes:
    """The response head for the client: hop-by-hop lines cut, the edge's lines appended.

    ``tail`` completes the ``Fly-Request-Id`` line after the ULID (``-<pop>``) and holds
    the other added lines and the blank line.
    """
    if scan.cut:
        head = cut_headers(head, scan.cut)
    if scan.named is not None:
        head = cut_named(head, scan.named)
    return b"".join((head[:-2], b"Fly-Request-Id: ", request_id, tail))


class ChunkedScanner:
    """Finds where a chunked body ends in a byte stream; the parser checks the syntax."""

    __slots__ = ("_left", "_line", "_state")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)
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
