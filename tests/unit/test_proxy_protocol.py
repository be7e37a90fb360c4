"""PROXY protocol v1/v2: building, parsing (both ways), truncation, garbage, and the gate."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from edge.core.clock import FakeClock
from edge.dataplane.contract import ClientInfo
from edge.dataplane.deadlines import DeadlineSweep
from edge.dataplane.proxy_protocol import (
    NEED_MORE,
    V2_SIGNATURE,
    ParsedProxy,
    ProxyError,
    ProxyHeaderGate,
    build_header,
    build_v1,
    build_v2,
    client_from_header,
    parse_proxy_header,
)

V4 = ClientInfo("192.0.2.10", 51234, "203.0.113.5", 443)
V6 = ClientInfo("2001:db8::10", 51234, "2001:db8::1", 8443)


def test_v1_tcp4_text() -> None:
    assert build_v1(V4) == b"PROXY TCP4 192.0.2.10 203.0.113.5 51234 443\r\n"


def test_v1_tcp6_text() -> None:
    assert build_v1(V6) == b"PROXY TCP6 2001:db8::10 2001:db8::1 51234 8443\r\n"


def test_v1_unknown_when_addresses_are_not_ip() -> None:
    assert build_v1(ClientInfo("", 0, "", 0)) == b"PROXY UNKNOWN\r\n"


def test_ipv4_mapped_addresses_become_tcp4() -> None:
    mapped = ClientInfo("::ffff:192.0.2.10", 1, "::ffff:203.0.113.5", 2)
    assert build_v1(mapped) == b"PROXY TCP4 192.0.2.10 203.0.113.5 1 2\r\n"


def test_mixed_families_are_said_in_ipv6() -> None:
    mixed = ClientInfo("192.0.2.10", 1, "2001:db8::1", 2)
    parsed = parse_proxy_header(build_v2(mixed))
    assert isinstance(parsed, ParsedProxy)
    assert parsed.src_ip == "::ffff:c000:20a" and parsed.dst_ip == "2001:db8::1"


def test_v2_tcp4_bytes() -> None:
    header = build_v2(V4)
    assert header[:12] == V2_SIGNATURE
    assert header[12:16] == bytes([0x21, 0x11]) + struct.pack("!H", 12)
    assert header[16:] == bytes([192, 0, 2, 10, 203, 0, 113, 5]) + struct.pack("!HH", 51234, 443)


def test_v2_tcp6_length() -> None:
    header = build_v2(V6)
    assert header[13] == 0x21 and struct.unpack("!H", header[14:16]) == (36,)
    assert len(header) == 16 + 36


def test_v2_local_when_unknown() -> None:
    header = build_v2(ClientInfo("", 0, "", 0))
    assert header == V2_SIGNATURE + bytes([0x20, 0x00, 0, 0])
    assert parse_proxy_header(header) == ParsedProxy(version=2, consumed=16)


@pytest.mark.parametrize("client", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_round_trip_with_trailing_data(client: ClientInfo, version: Any) -> None:
    header = build_header(version, client)
    parsed = parse_proxy_header(header + b"GET / HTTP/1.1\r\n")
    assert parsed == ParsedProxy(
        version=int(version[1]),
        consumed=len(header),
        src_ip=client.peer_ip,
        src_port=client.peer_port,
        dst_ip=client.local_ip,
        dst_port=client.local_port,
    )


@pytest.mark.parametrize("client", [V4, V6], ids=["v4", "v6"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_truncation_needs_more(client: ClientInfo, version: Any) -> None:
    header = build_header(version, client)
    for cut in range(len(header)):
        assert parse_proxy_header(header[:cut]) is NEED_MORE, cut


def test_parses_foreign_v1_examples() -> None:
    parsed = parse_proxy_header(b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n")
    assert isinstance(parsed, ParsedProxy) and parsed.src_port == 65535
    unknown = parse_proxy_header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest")
    assert unknown == ParsedProxy(version=1, consumed=35)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01\x02\x00",  # a TLS ClientHello
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # LF only
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",  # family mismatch
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",  # leading zero
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY " + b"A" * 200,  # never terminated within 107 bytes
    ],
)
def test_garbage_is_an_error_value(data: bytes) -> None:
    assert isinstance(parse_proxy_header(data), ProxyError)


def test_v2_errors() -> None:
    good = build_v2(V4)
    assert isinstance(parse_proxy_header(good[:12] + b"\x11" + good[13:]), ProxyError)  # v1
    assert isinstance(parse_proxy_header(good[:12] + b"\x2f" + good[13:]), ProxyError)  # cmd
    short_block = good[:14] + struct.pack("!H", 4) + good[16:20]
    assert isinstance(parse_proxy_header(short_block), ProxyError)
    huge = good[:14] + struct.pack("!H", 60000)
    assert isinstance(parse_proxy_header(huge), ProxyError)


def test_v2_tlvs_are_skipped_and_unix_family_has_no_addresses() -> None:
    tlv = bytes([0x04, 0x00, 0x03]) + b"abc"  # a NOOP TLV
    header = build_v2(V4)
    with_tlv = header[:14] + struct.pack("!H", 12 + len(tlv)) + header[16:] + tlv
    parsed = parse_proxy_header(with_tlv + b"data")
    assert isinstance(parsed, ParsedProxy) and parsed.consumed == len(with_tlv)
    assert parsed.src_ip == V4.peer_ip
    unix = V2_SIGNATURE + bytes([0x21, 0x31]) + struct.pack("!H", 216) + bytes(216)
    assert parse_proxy_header(unix) == ParsedProxy(version=2, consumed=len(unix))


def test_client_from_header_keeps_tls_and_uses_own_when_no_addresses() -> None:
    own = ClientInfo("10.0.0.1", 1000, "10.0.0.2", 443, tls=True, sni="a.example")
    told = client_from_header(ParsedProxy(1, 40, "192.0.2.1", 5, "192.0.2.2", 6), own)
    assert told == ClientInfo("192.0.2.1", 5, "192.0.2.2", 6, True, "a.example", True)
    local = client_from_header(ParsedProxy(2, 16), own)
    assert local == ClientInfo("10.0.0.1", 1000, "10.0.0.2", 443, True, "a.example", True)


class FakeTransport:
    """Just enough of a transport for the gate (no loop I/O)."""

    def __init__(self) -> None:
        self.protocol: asyncio.BaseProtocol | None = None
        self.aborted = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 1000), "sockname": ("10.0.0.2", 443)}.get(name)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


class Inner(asyncio.Protocol):
    def __init__(self, client: ClientInfo) -> None:
        self.client = client
        self.data = b""
        self.made = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.data += data


def collecting(inners: list[Inner]) -> Any:
    def make(client: ClientInfo) -> Inner:
        inners.append(Inner(client))
        return inners[-1]

    return make


async def test_gate_hands_over_with_client_and_rest() -> None:
    inners: list[Inner] = []
    gate = ProxyHeaderGate(collecting(inners))
    transport = FakeTransport()
    gate.connection_made(transport)  # type: ignore[arg-type]
    header = build_v2(V6)
    gate.data_received(header[:10])
    assert inners == []
    gate.data_received(header[10:] + b"hello")
    (inner,) = inners
    assert transport.protocol is inner and inner.made and inner.data == b"hello"
    assert inner.client == ClientInfo(
        V6.peer_ip, V6.peer_port, V6.local_ip, V6.local_port, proxied=True
    )
    gate.connection_lost(None)


async def test_gate_aborts_on_garbage_and_on_timeout() -> None:
    made: list[Inner] = []
    gate = ProxyHeaderGate(collecting(made))
    transport = FakeTransport()
    gate.connection_made(transport)  # type: ignore[arg-type]
    gate.data_received(b"SSH-2.0-OpenSSH\r\n")
    assert transport.aborted and made == []
    gate.connection_lost(None)

    clock = FakeClock()
    sweep = DeadlineSweep(asyncio.get_running_loop(), clock)
    slow = ProxyHeaderGate(Inner, timeout=0.05, sweep=sweep)
    transport = FakeTransport()
    slow.connection_made(transport)  # type: ignore[arg-type]
    slow.data_received(b"PROXY TCP4 ")
    clock.advance(0.04)
    sweep.sweep()
    assert not transport.aborted
    clock.advance(0.01)  # the header's deadline, on the loop's sweep
    sweep.sweep()
    assert transport.aborted and len(sweep) == 0
    slow.connection_lost(None)


async def test_gate_leaves_the_sweep_once_the_header_is_read() -> None:
    clock = FakeClock()
    sweep = DeadlineSweep(asyncio.get_running_loop(), clock)
    gate = ProxyHeaderGate(collecting([]), timeout=0.05, sweep=sweep)
    transport = FakeTransport()
    gate.connection_made(transport)  # type: ignore[arg-type]
    assert len(sweep) == 1
    gate.data_received(build_v2(V6))
    assert len(sweep) == 0
    clock.advance(1)
    sweep.sweep()
    assert not transport.aborted
