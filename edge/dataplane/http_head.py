"""HTTP/1.1 message heads for the L7 relay: what a head says (``http_rewrite`` edits it).

``RequestHeadScan``/``ResponseHeadScan`` are the httptools callback targets: they keep
only what routing, framing and rewriting need. (A regular-expression pass over the
lower-cased head instead of per-header callbacks was measured: slower for real heads.)
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
        "fly-replay-src": _OURS,  # set by the edge on a replayed request only
        "fly-replay-failed": _OURS,
        "fly-replay-cache-status": _OURS,
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


class _HeadScan:
    """What a head said that the relay needs; the common fields are reset per message.

    Headers other than Host, Content-Length and Transfer-Encoding are rare, so their
    fields are only reset after a message that had one (``rare``): resetting costs about
    as much as scanning.
    """

    __slots__ = (
        "chunked",
        "conn_close",
        "conn_keep_alive",
        "content_length",
        "cut",
        "headers_done",
        "message_done",
        "named",
        "rare",
        "upgrade_name",
    )

    def __init__(self) -> None:
        self.cut: list[bytes] = []  # names of the lines to cut, as parsed
        self.rare = True
        self.reset()

    # Not the parser's on_message_begin: a callback from C costs more than the caller's
    # call to reset() before it feeds a new head.
    def reset(self) -> None:
        self.content_length = -1
        self.chunked = False
        self.headers_done = False
        self.message_done = False
        if self.rare:
            self._reset_rare()

    def _reset_rare(self) -> None:
        self.rare = False
        self.conn_close = False
        self.conn_keep_alive = False
        self.named: set[bytes] | None = None  # other headers Connection names, to drop
        self.upgrade_name: bytes | None = None
        self.cut.clear()

    # No on_headers_complete: a head is fed whole, so the caller knows when it is done
    # (and sets ``headers_done``, after which on_header only sees a body's trailers).
    def on_message_complete(self) -> None:
        self.message_done = True

    def _connection(self, value: bytes) -> None:
        if value == b"keep-alive":  # what nearly every server sends
            self.conn_keep_alive = True
            return
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


class RequestHeadScan(_HeadScan):
    """Parser callbacks for a request head: routing hints, framing, lines to cut."""

    __slots__ = (
        "client_region",
        "expect_continue",
        "extra_hosts",
        "force_instance",
        "force_region",
        "has_xf_port",
        "hinted",
        "host",
        "prefer_instance",
        "prefer_region",
        "xff",
    )

    def reset(self) -> None:  # the base's, inlined: it runs for every request
        self.host: bytes | None = None
        self.content_length = -1
        self.chunked = False
        self.headers_done = False
        self.message_done = False
        if self.rare:
            self._reset_rare()

    def _reset_rare(self) -> None:
        super()._reset_rare()
        self.extra_hosts = 0  # Host lines after the first: any is a 400
        self.expect_continue = False
        self.xff: bytes | None = None
        self.has_xf_port = False
        self.hinted = False  # any routing header besides Host
        self.prefer_region: bytes | None = None
        self.force_region: bytes | None = None
        self.prefer_instance: bytes | None = None
        self.force_instance: bytes | None = None
        self.client_region: bytes | None = None

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
            if self.host is not None:
                self.rare = True
                self.extra_hosts += 1
            self.host = value
        elif kind == _CONTENT_LENGTH:
            self.content_length = int(value)  # the parser already rejected a bad value
        elif kind == _TRANSFER_ENCODING:
            self.chunked = True  # the parser rejects a request whose last coding isn't chunked
        else:
            self.rare = True
            if kind <= _EXPECT:
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

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0


class ResponseHeadScan(_HeadScan):
    """Parser callbacks for a response head: framing and hop-by-hop lines to cut."""

    __slots__ = ("keep_alive_line", "transfer_coded")

    def reset(self) -> None:  # the base's, inlined: it runs for every response
        self.transfer_coded = False
        self.content_length = -1
        self.chunked = False
        self.headers_done = False
        self.message_done = False
        self.keep_alive_line: bytes | None = None  # "Connection: keep-alive", as parsed
        self.conn_keep_alive = False
        if self.rare:
            self._reset_rare()

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
        elif kind == _CONNECTION and value == b"keep-alive" and self.keep_alive_line is None:
            self.keep_alive_line = name  # cut only if the edge says otherwise
            self.conn_keep_alive = True
        else:
            self.rare = True
            if kind == _UPGRADE:
                self.upgrade_name = name
            else:
                self.cut.append(name)
                if kind == _CONNECTION:
                    self._connection(value)
