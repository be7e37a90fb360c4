"""PROXY protocol v1/v2: headers the edge sends to machines, and the gate that reads them.

Building: ``build_header(version, client)`` gives the bytes to send first on a connection
to a machine, so it learns the client's real address and the address it connected to.

Parsing: ``parse_proxy_header(buf)`` returns a value (``ParsedProxy``, ``NeedMore`` or
``ProxyError``), never raises. ``ProxyHeaderGate`` wraps a listener's protocol for ports
that accept a PROXY header from their client: it buffers until the header is complete,
then hands the transport straight to the inner protocol (``transport.set_protocol``), so
the gate costs nothing once the header is gone.

Spec: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from edge.core.relay_decisions import DeadlineKind
from edge.dataplane.contract import ClientInfo, ProxyProtoVersion
from edge.dataplane.deadlines import INF, DeadlineSweep, sweep_for
from edge.dataplane.tls import client_info_from_transport

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_PREFIX: Final = b"PROXY "
_V1_MAX_LINE: Final = 107  # the spec's longest v1 line, CRLF included
_V2_FIXED: Final = 16  # signature, version/command, family/transport, length
_V2_MAX_BODY: Final = 4096  # the spec allows 65535; nothing we accept needs TLVs that big
_V2_HEAD: Final = struct.Struct("!12sBBH")
_V2_INET: Final = struct.Struct("!4s4sHH")
_V2_INET6: Final = struct.Struct("!16s16sHH")
_CMD_LOCAL: Final = 0x0
_CMD_PROXY: Final = 0x1
_FAMILY_TCP4: Final = 0x11
_FAMILY_TCP6: Final = 0x21

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ParsedProxy:
    """A complete header; addresses are None for ``UNKNOWN`` (v1) and ``LOCAL`` (v2)."""

    version: int  # 1 or 2
    consumed: int  # header length: the connection's own bytes start after it
    src_ip: str | None = None
    src_port: int = 0
    dst_ip: str | None = None
    dst_port: int = 0


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The buffer is a valid but incomplete header so far."""


@dataclass(frozen=True, slots=True)
class ProxyError:
    """The buffer does not start with a valid PROXY header."""

    reason: str


NEED_MORE: Final = NeedMore()
ProxyParse = ParsedProxy | NeedMore | ProxyError


def _unmapped(ip: str) -> Address:
    """The address, with IPv4-mapped IPv6 (a dual-stack socket's view of IPv4) unwrapped."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _pair(client: ClientInfo) -> tuple[Address, Address] | None:
    """Source and destination in one family, or None when that is impossible."""
    try:
        src, dst = _unmapped(client.peer_ip), _unmapped(client.local_ip)
    except ValueError:
        return None
    if src.version != dst.version:
        # v4 client on a v6 listener address (or the reverse): say both in IPv6.
        src, dst = _as_v6(src), _as_v6(dst)
    return src, dst


def _as_v6(addr: Address) -> ipaddress.IPv6Address:
    if isinstance(addr, ipaddress.IPv6Address):
        return addr
    return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + addr.packed)


def build_v1(client: ClientInfo) -> bytes:
    """``PROXY TCP4|TCP6 src dst sport dport\\r\\n``, or ``PROXY UNKNOWN\\r\\n``."""
    pair = _pair(client)
    if pair is None:
        return b"PROXY UNKNOWN\r\n"
    src, dst = pair
    proto = "TCP4" if src.version == 4 else "TCP6"
    line = f"PROXY {proto} {src} {dst} {client.peer_port} {client.local_port}\r\n"
    return line.encode("ascii")


def build_v2(client: ClientInfo) -> bytes:
    """Binary header, command PROXY, STREAM over INET/INET6 (LOCAL/UNSPEC if unknown)."""
    pair = _pair(client)
    if pair is None:
        return _V2_HEAD.pack(V2_SIGNATURE, 0x20 | _CMD_LOCAL, 0x00, 0)
    src, dst = pair
    if src.version == 4:
        body = _V2_INET.pack(src.packed, dst.packed, client.peer_port, client.local_port)
        family = _FAMILY_TCP4
    else:
        body = _V2_INET6.pack(src.packed, dst.packed, client.peer_port, client.local_port)
        family = _FAMILY_TCP6
    return _V2_HEAD.pack(V2_SIGNATURE, 0x20 | _CMD_PROXY, family, len(body)) + body


def build_header(version: ProxyProtoVersion, client: ClientInfo) -> bytes:
    return build_v2(client) if version == "v2" else build_v1(client)


def parse_proxy_header(buf: bytes) -> ProxyParse:
    """Parse a PROXY header at the start of ``buf`` (v1 or v2, told apart by signature)."""
    if buf[:12] == V2_SIGNATURE:
        return _parse_v2(buf)
    if buf[:6] == _V1_PREFIX:
        return _parse_v1(buf)
    if V2_SIGNATURE.startswith(buf[:12]) or _V1_PREFIX.startswith(buf[:6]):
        return NEED_MORE  # includes the empty buffer
    return ProxyError("no PROXY protocol signature")


def _parse_v1(buf: bytes) -> ProxyParse:
    end = buf.find(b"\r\n", 0, _V1_MAX_LINE)
    if end < 0:
        if len(buf) < _V1_MAX_LINE and b"\n" not in buf:
            return NEED_MORE
        return ProxyError("v1 header line too long or not CRLF-terminated")
    parts = buf[:end].split(b" ")
    if len(parts) >= 2 and parts[1] == b"UNKNOWN":
        return ParsedProxy(version=1, consumed=end + 2)
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        return ProxyError("v1 header needs: PROXY TCP4|TCP6 src dst sport dport")
    want = 4 if parts[1] == b"TCP4" else 6
    src, dst = _v1_address(parts[2], want), _v1_address(parts[3], want)
    sport, dport = _v1_port(parts[4]), _v1_port(parts[5])
    if src is None or dst is None:
        return ProxyError(f"v1 header has an invalid IPv{want} address")
    if sport is None or dport is None:
        return ProxyError("v1 header has an invalid port")
    return ParsedProxy(1, end + 2, src, sport, dst, dport)


def _v1_address(raw: bytes, version: int) -> str | None:
    try:
        addr = ipaddress.ip_address(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return str(addr) if addr.version == version else None


def _v1_port(raw: bytes) -> int | None:
    # Digits only (int() would also take "+1", " 1" or "1_0"), no leading zero.
    if not raw.isdigit() or len(raw) > 5 or (raw[:1] == b"0" and raw != b"0"):
        return None
    port = int(raw)
    return port if port <= 65535 else None


def _parse_v2(buf: bytes) -> ProxyParse:
    if len(buf) < _V2_FIXED:
        return NEED_MORE
    _, ver_cmd, family, length = _V2_HEAD.unpack_from(buf)
    if ver_cmd >> 4 != 2:
        return ProxyError(f"v2 header has version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command not in (_CMD_LOCAL, _CMD_PROXY):
        return ProxyError(f"v2 header has unknown command {command}")
    if length > _V2_MAX_BODY:
        return ProxyError(f"v2 header body of {length} bytes is too large")
    total = _V2_FIXED + length
    if len(buf) < total:
        return NEED_MORE
    if command == _CMD_LOCAL:
        return ParsedProxy(version=2, consumed=total)
    return _v2_addresses(buf, family, length, total)


def _v2_addresses(buf: bytes, family: int, length: int, total: int) -> ProxyParse:
    address_family = family >> 4
    if address_family not in (1, 2):
        # UNSPEC or AF_UNIX: the spec says accept and use the connection's own addresses.
        return ParsedProxy(version=2, consumed=total)
    layout = _V2_INET if address_family == 1 else _V2_INET6
    if length < layout.size:
        return ProxyError("v2 address block is shorter than its family needs")
    src, dst, sport, dport = layout.unpack_from(buf, _V2_FIXED)
    src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    return ParsedProxy(2, total, str(src_ip), sport, str(dst_ip), dport)


def client_from_header(parsed: ParsedProxy, own: ClientInfo) -> ClientInfo:
    """The connection's ClientInfo as the header tells it (``own`` when it has no addresses)."""
    if parsed.src_ip is None or parsed.dst_ip is None:
        return ClientInfo(
            own.peer_ip, own.peer_port, own.local_ip, own.local_port, own.tls, own.sni, True
        )
    return ClientInfo(
        peer_ip=parsed.src_ip,
        peer_port=parsed.src_port,
        local_ip=parsed.dst_ip,
        local_port=parsed.dst_port,
        tls=own.tls,
        sni=own.sni,
        proxied=True,
    )


InnerFactory = Callable[[ClientInfo], asyncio.Protocol]


class ProxyHeaderGate(asyncio.Protocol):
    """Reads the client's PROXY header, then gives the connection to ``make_inner(client)``.

    The inner protocol gets ``connection_made(transport)`` and then the bytes that came
    after the header; it must use the ClientInfo it was built with instead of asking the
    transport. A connection that sends garbage or no complete header within ``timeout``
    seconds is closed: a port that expects PROXY must not treat raw bytes as a client.
    That timeout is a deadline (kind ``HEAD``) on the loop's one ``DeadlineSweep``, not
    a timer per connection.
    """

    __slots__ = (
        "_buf",
        "_make_inner",
        "_sweep",
        "_timeout",
        "_transport",
        "deadline",
        "deadline_kind",
    )

    def __init__(
        self, make_inner: InnerFactory, timeout: float = 5.0, sweep: DeadlineSweep | None = None
    ) -> None:
        self._make_inner = make_inner
        self._timeout = timeout
        self._sweep = sweep
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self.deadline = INF
        self.deadline_kind = DeadlineKind.NONE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        sweep = self._sweep
        if sweep is None:
            sweep = self._sweep = sweep_for(asyncio.get_running_loop())
        self.deadline = sweep.clock() + self._timeout
        self.deadline_kind = DeadlineKind.HEAD
        sweep.watch(self)

    def deadline_passed(self, now: float) -> None:
        """No complete header in time."""
        self._stop_deadline()
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buf += data  # bounded: parsing fails past the largest header we accept
        parsed = parse_proxy_header(self._buf)
        if isinstance(parsed, NeedMore):
            return
        transport = self._transport
        assert transport is not None
        self._stop_deadline()
        if isinstance(parsed, ProxyError):
            transport.abort()
            return
        client = client_from_header(parsed, client_info_from_transport(transport))
        rest = self._buf[parsed.consumed :]
        self._buf = b""
        inner = self._make_inner(client)
        transport.set_protocol(inner)
        inner.connection_made(transport)
        if rest and not transport.is_closing():
            inner.data_received(rest)

    def eof_received(self) -> bool | None:
        return False  # EOF before a complete header: nothing to hand over

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self._transport = None

    def _stop_deadline(self) -> None:
        self.deadline = INF
        self.deadline_kind = DeadlineKind.NONE
        if self._sweep is not None:
            self._sweep.unwatch(self)


def accept_proxy_header(
    make_inner: InnerFactory, timeout: float = 5.0, sweep: DeadlineSweep | None = None
) -> Callable[[], ProxyHeaderGate]:
    """A protocol factory for ``loop.create_server`` on ports with ``accept_proxy_proto``."""
    return lambda: ProxyHeaderGate(make_inner, timeout, sweep)
