"""Demo machines over real sockets on 127.0.0.1, on uvloop like the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from edge.runtime.demo import DemoIdentity, DemoMachines

IDENTITY = DemoIdentity(app="hello", machine_id="m-ams-1", region="ams")
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Response = tuple[int, dict[str, str], bytes]


class Harness:
    """A DemoMachines plus the client connections a test opened, all closed at the end."""

    def __init__(self) -> None:
        self.machines = DemoMachines()
        self._writers: list[asyncio.StreamWriter] = []

    async def connect(self, address: tuple[str, int]) -> Streams:
        reader, writer = await asyncio.open_connection(*address)
        self._writers.append(writer)
        return reader, writer

    async def request(self, address: tuple[str, int], raw: bytes) -> Response:
        """Send ``raw`` on a new connection and read one response."""
        reader, writer = await self.connect(address)
        writer.write(raw)
        return await read_response(reader)

    async def close(self) -> None:
        await self.machines.close_all()
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def on_uvloop(test: Callable[[Harness], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test on a fresh uvloop, as the daemon runs.

    A plain function on purpose: pytest-asyncio would run it on its default loop.
    """

    async def body() -> None:
        harness = Harness()
        try:
            async with asyncio.timeout(10):
                await test(harness)
        finally:
            await harness.close()

    def run() -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(body())

    run.__doc__ = test.__doc__
    return run


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Response:
    """One HTTP/1.1 response framed by Content-Length; header names lower-cased."""
    raw = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = raw.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    return int(status_line.split()[1]), headers, await reader.readexactly(length)


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: demo\r\n{extra}\r\n".encode()


async def assert_broken(reader: asyncio.StreamReader) -> None:
    """The connection ends without an answer (EOF or reset), as with a killed process."""
    with contextlib.suppress(ConnectionResetError):
        assert await reader.read(1) == b""


# --- HTTP answers ---------------------------------------------------------------------


@on_uvloop
async def test_json_body_describes_machine_and_request(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    raw = (
        b"POST /some/path?x=1&y=two HTTP/1.1\r\nHost: demo\r\nX-Custom-Header: yes\r\n"
        b"x-multi: a\r\nX-Multi: b\r\nContent-Length: 5\r\n\r\nhello"
    )
    status, headers, body = await h.request(address, raw)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["server"] == "edge-demo"
    assert headers["x-machine-id"] == "m-ams-1"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {
        "app": "hello",
        "machine_id": "m-ams-1",
        "region": "ams",
        "method": "POST",
        "path": "/some/path",
        "query": "x=1&y=two",
        "headers": {
            "Host": "demo",
            "X-Custom-Header": "yes",
            "x-multi": "a, b",
            "Content-Length": "5",
        },
        "body_bytes": 5,
    }


@on_uvloop
async def test_keep_alive_serves_several_requests(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("k", IDENTITY, "http"))
    for n in range(5):
        writer.write(get(f"/n/{n}"))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert "connection" not in headers
        assert json.loads(body)["path"] == f"/n/{n}"


@on_uvloop
async def test_pipelined_answers_keep_order_behind_a_delay(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("k", IDENTITY, "http"))
    writer.write(get("/a") + get("/delay/50") + get("/c") + get("/d", "Connection: close\r\n"))
    paths = [json.loads((await read_response(reader))[2])["path"] for _ in range(4)]
    assert paths == ["/a", "/delay/50", "/c", "/d"]
    assert await reader.read() == b""  # closed after the Connection: close request


@on_uvloop
async def test_chunked_body_is_counted(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("k", IDENTITY, "http"))
    writer.write(b"PUT /up HTTP/1.1\r\nHost: demo\r\nTransfer-Encoding: chunked\r\n\r\n")
    for chunk in (b"5\r\nhello\r\n", b"a\r\n0123456789\r\n", b"0\r\n\r\n"):
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.01)  # separate reads on the server
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)["body_bytes"]) == (200, 15)


@on_uvloop
async def test_expect_100_continue_is_answered(h: Harness) -> None:
    reader, writer = await h.connect(await h.machines.start("k", IDENTITY, "http"))
    writer.write(
        b"POST /up HTTP/1.1\r\nHost: demo\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    )
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"abc")
    status, _, body = await read_response(reader)
    assert (status, json.loads(body)["body_bytes"]) == (200, 3)


def test_identity_rejects_header_breaking_ids() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        DemoIdentity(app="a", machine_id="m\r\nX-Evil: 1", region="ams")


@on_uvloop
async def test_healthz(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    status, headers, body = await h.request(address, get("/healthz"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["x-machine-id"] == "m-ams-1"


@on_uvloop
async def test_status_path_sets_the_status(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    status, _, body = await h.request(address, get("/status/503"))
    assert (status, json.loads(body)["machine_id"]) == (503, "m-ams-1")
    status, _, _ = await h.request(address, get("/status/99"))
    assert status == 400


@on_uvloop
async def test_delay_path_answers_late(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    started = time.monotonic()
    status, _, _ = await h.request(address, get("/delay/50"))
    assert status == 200
    assert time.monotonic() - started >= 0.045


@on_uvloop
async def test_head_has_length_but_no_body(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("k", IDENTITY, "http"))
    writer.write(b"HEAD /x HTTP/1.1\r\nHost: demo\r\n\r\n" + get("/after"))
    status, headers, body = await read_response(reader, head=True)
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0
    assert json.loads((await read_response(reader))[2])["path"] == "/after"


@on_uvloop
async def test_malformed_request_gets_400_and_close(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("k", IDENTITY, "http"))
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (400, "close")
    assert await reader.read() == b""


@on_uvloop
async def test_oversized_head_gets_400_and_close(h: Harness) -> None:
    reader, writer = await h.connect(await h.machines.start("k", IDENTITY, "http"))
    writer.write(get("/", "X-Big: " + "x" * 70_000 + "\r\n"))
    assert (await read_response(reader))[0] == 400
    assert await reader.read() == b""


@on_uvloop
async def test_http_1_0_closes_unless_keep_alive(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    reader, writer = await h.connect(address)
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    assert (await read_response(reader))[1]["connection"] == "close"
    assert await reader.read() == b""
    reader, writer = await h.connect(address)
    writer.write(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
    for _ in range(2):
        assert (await read_response(reader))[1]["connection"] == "keep-alive"


# --- stop, start, hang ----------------------------------------------------------------


@on_uvloop
async def test_stop_refuses_and_breaks_in_flight(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    reader, writer = await h.connect(address)
    writer.write(get("/delay/5000"))
    await writer.drain()
    await asyncio.sleep(0.05)  # the request is being served
    await machines.stop("k")
    assert not machines.is_running("k")
    assert machines.address("k") == address
    await assert_broken(reader)
    with pytest.raises(ConnectionRefusedError):
        await h.connect(address)


@on_uvloop
async def test_start_after_stop_rebinds_the_same_port(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    assert await machines.start("k", IDENTITY, "http") == address  # already running
    for _ in range(3):
        await machines.stop("k")
        assert await machines.start("k", IDENTITY, "http") == address
        assert machines.is_running("k")
        assert (await h.request(address, get("/healthz")))[0] == 200


@on_uvloop
async def test_start_falls_back_when_the_port_was_taken(h: Harness) -> None:
    machines = h.machines
    host, port = await machines.start("k", IDENTITY, "echo")
    await machines.stop("k")
    with socket.socket() as squatter:
        squatter.bind((host, port))
        squatter.listen()
        new_host, new_port = await machines.start("k", IDENTITY, "echo")
    assert (new_host, new_port != port) == (host, True)
    assert machines.address("k") == (new_host, new_port)


@on_uvloop
async def test_hang_reads_but_never_answers(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "http")
    machines.hang("k", True)
    reader, writer = await h.connect(address)
    writer.write(get("/a") + get("/b"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    machines.hang("k", False)
    assert (await h.request(address, get("/healthz")))[0] == 200


@on_uvloop
async def test_hang_is_kept_across_restart(h: Harness) -> None:
    machines = h.machines
    address = await machines.start("k", IDENTITY, "echo")
    machines.hang("k", True)
    await machines.stop("k")
    assert await machines.start("k", IDENTITY, "echo") == address
    reader, writer = await h.connect(address)
    writer.write(b"ping")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)


# --- echo and upgrade -----------------------------------------------------------------


@on_uvloop
async def test_echo_with_half_close(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("e", IDENTITY, "echo"))
    payload = bytes(range(256)) * 8192  # 2 MiB: more than socket buffers hold
    writer.write(payload)
    writer.write_eof()
    assert await reader.read() == payload


@on_uvloop
async def test_websocket_upgrade_then_echo(h: Harness) -> None:
    machines = h.machines
    reader, writer = await h.connect(await machines.start("k", IDENTITY, "http"))
    writer.write(
        b"GET /chat HTTP/1.1\r\nHost: demo\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        b"early"  # sent before the 101 arrives: still echoed, after it
    )
    status, headers, _ = await read_response(reader)
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's example
    assert headers["upgrade"] == "websocket"
    assert await reader.readexactly(5) == b"early"
    writer.write(b"\x81\x05hello")
    assert await reader.readexactly(7) == b"\x81\x05hello"


@on_uvloop
async def test_close_all_stops_every_machine(h: Harness) -> None:
    machines = h.machines
    first = await machines.start("a", IDENTITY, "http")
    await machines.start("b", IDENTITY, "echo")
    reader, _writer = await h.connect(first)
    await machines.close_all()
    assert not machines.is_running("a")
    assert not machines.is_running("b")
    await assert_broken(reader)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1 on this host")
@on_uvloop
async def test_ipv6_loopback(h: Harness) -> None:
    address = await h.machines.start("k", IDENTITY, "http", host="::1")
    assert address[0] == "::1"
    assert (await h.request(address, get("/healthz")))[0] == 200
    await h.machines.stop("k")
    assert await h.machines.start("k", IDENTITY, "http", host="::1") == address


@on_uvloop
async def test_writes_away_from_the_primary_region_answer_a_replay(h: Harness) -> None:
    away = DemoIdentity(app="hello", machine_id="hello-syd-1", region="syd", primary_region="lhr")
    home = DemoIdentity(app="hello", machine_id="hello-lhr-1", region="lhr", primary_region="lhr")
    address = await h.machines.start("away", away, "http")
    status, headers, body = await h.request(address, get("/write/order"))
    assert (status, headers["fly-replay"]) == (200, "region=lhr")
    assert json.loads(body) == {"replayed_to": "lhr", "by": "hello-syd-1"}
    # Once replayed (fly-replay-src), or outside /write, it answers itself.
    src = "fly-replay-src: instance=hello-syd-1;region=syd;t=1\r\n"
    _, headers, body = await h.request(address, get("/write/order", src))
    assert "fly-replay" not in headers and json.loads(body)["machine_id"] == "hello-syd-1"
    _, headers, _ = await h.request(address, get("/read"))
    assert "fly-replay" not in headers
    home_address = await h.machines.start("home", home, "http")
    _, headers, body = await h.request(home_address, get("/write/order"))
    assert "fly-replay" not in headers and json.loads(body)["region"] == "lhr"
