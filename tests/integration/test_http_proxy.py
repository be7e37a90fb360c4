"""The HTTP/1.1 relay with real sockets on 127.0.0.1, on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import re
import time
from collections.abc import Callable

from edge.core.faults import Fault
from edge.dataplane.contract import Choice, ClientInfo, NoUpstream, RouteHints, Upstream
from edge.dataplane.simple_router import StaticRouter
from tests.integration._http_helpers import (
    LOCALHOST,
    Backend,
    Message,
    Settings,
    answer_ok,
    free_port,
    get,
    on_uvloop,
    open_fds,
    read_body,
    read_chunked,
    read_head,
    read_response,
    running_relay,
)

REQUEST_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}-iad$")


def router_for(*backends: Backend, **kwargs: object) -> StaticRouter:
    return StaticRouter([(LOCALHOST, b.port) for b in backends], **kwargs)  # type: ignore[arg-type]


# -- headers ------------------------------------------------------------------------------


@on_uvloop
async def test_headers_added_replaced_and_stripped() -> None:
    backend = await Backend().start()
    async with running_relay(router_for(backend)) as relay:
        resp = await relay.request(
            b"GET /x?y=1 HTTP/1.1\r\nHost: app.example\r\n"
            b"Fly-Client-IP: 6.6.6.6\r\nX-Forwarded-For: 1.1.1.1\r\n"
            b"x-forwarded-proto: https\r\nFly-Region: zzz\r\nFly-Forwarded-Port: 1\r\n"
            b"Edge-Client-Region: syd\r\nfly-prefer-region: ams\r\n"
            b"Connection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: 5\r\n"
            b"Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Keep: yes\r\n\r\n"
        )
        seen = backend.requests[0]
        hints = relay.router.last_hints
    await backend.stop()
    assert resp.status == 200
    assert seen.start == "GET /x?y=1 HTTP/1.1"
    assert seen.all("Fly-Client-IP") == ["127.0.0.1"]
    assert seen.all("X-Forwarded-For") == ["1.1.1.1, 127.0.0.1"]
    assert seen.all("X-Forwarded-Proto") == ["http"]
    assert seen.all("X-Forwarded-Port") == [str(relay.port)]
    assert seen.all("Fly-Forwarded-Port") == [str(relay.port)]
    assert seen.all("Fly-Region") == ["iad"]
    assert seen.all("fly-prefer-region") == ["ams"]
    assert seen.get("X-Keep") == "yes"
    for gone in ("Edge-Client-Region", "Connection", "X-Drop-Me", "Keep-Alive", "TE"):
        assert seen.get(gone) is None, gone
    assert seen.get("Proxy-Connection") is None
    assert hints is not None
    assert (hints.host, hints.prefer_region, hints.client_region) == (
        b"app.example",
        b"ams",
        b"syd",
    )
    # The response: the edge's headers added, the machine's hop-by-hop ones gone.
    request_id = resp.get("Fly-Request-Id")
    assert request_id is not None and REQUEST_ID.match(request_id)
    assert resp.get("Via") == "1.1 edge"
    assert resp.get("Connection") is None and resp.get("Keep-Alive") is None
    assert resp.get("X-Backend") == "b"


@on_uvloop
async def test_client_set_forwarded_port_is_kept_and_request_ids_differ() -> None:
    backend = await Backend().start()
    async with running_relay(router_for(backend)) as relay:
        first = await relay.request(get(extra="X-Forwarded-Port: 443\r\n"))
        second = await relay.request(get())
    await backend.stop()
    assert backend.requests[0].all("X-Forwarded-Port") == ["443"]
    assert backend.requests[0].all("Fly-Forwarded-Port") == [str(relay.port)]
    assert first.get("Fly-Request-Id") != second.get("Fly-Request-Id")


# -- keep-alive, pipelining, bodies -------------------------------------------------------


@on_uvloop
async def test_keep_alive_reuses_upstream_connections() -> None:
    backend = await Backend().start()
    async with running_relay(router_for(backend)) as relay:
        for _ in range(2):  # two client connections, one after the other
            reader, writer = await relay.connect()
            for i in range(5):
                writer.write(get(f"/{i}"))
                resp = await read_response(reader)
                assert resp.body == f"path=/{i} body=0".encode()
            writer.close()
        await asyncio.sleep(0.05)
        assert relay.router.in_flight == 0
        assert relay.router.released == 10
        assert len(relay.router.connects) == 1
    await backend.stop()
    assert backend.connections == 1


@on_uvloop
async def test_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if req.target == "/0":
            await asyncio.sleep(0.1)
        return await answer_ok(b, req, r, w)

    backend = await Backend(slow_first).start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        post = b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        writer.write(get("/0") + post + get("/2"))
        bodies = [(await read_response(reader)).body for _ in range(3)]
        writer.close()
    await backend.stop()
    assert bodies == [b"path=/0 body=0", b"path=/1 body=5", b"path=/2 body=0"]


@on_uvloop
async def test_chunked_bodies_stream_both_ways() -> None:
    first_chunk_seen = asyncio.Event()
    client_got_first = asyncio.Event()

    async def stream_echo(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if req.method != "POST":
            return await answer_ok(b, req, r, w)
        size = int((await r.readuntil(b"\r\n")).strip(), 16)
        first = await r.readexactly(size + 2)
        first_chunk_seen.set()  # before the client sent the rest: not buffered whole
        rest = await read_chunked(r)
        body = first[:-2] + rest
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(b"%x\r\n%s\r\n" % (len(body), body))
        await w.drain()
        await asyncio.wait_for(client_got_first.wait(), 5)  # streamed, not buffered
        w.write(b"4\r\ndone\r\n0\r\nX-Trailer: t\r\n\r\n")
        return True

    backend = await Backend(stream_echo).start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        await asyncio.wait_for(first_chunk_seen.wait(), 5)
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        head = await read_head(reader)
        assert head.status == 200 and head.get("Transfer-Encoding") == "chunked"
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        assert await reader.readexactly(size + 2) == b"hello world\r\n"
        client_got_first.set()
        assert await read_chunked(reader) == b"done"
        writer.write(get("/after"))  # the connection is still usable
        assert (await read_head(reader)).status == 200
        writer.close()
    await backend.stop()


@on_uvloop
async def test_expect_100_continue_is_relayed() -> None:
    async def continuing(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        assert req.get("Expect") == "100-continue"
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return await answer_ok(b, req, r, w)

    backend = await Backend(continuing).start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        writer.write(
            b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(read_head(reader), 5)
        assert interim.status == 100
        writer.write(b"data")
        resp = await read_response(reader)
        writer.close()
    await backend.stop()
    assert resp.status == 200 and resp.body == b"path=/f body=4"


@on_uvloop
async def test_head_response_has_no_body_and_connection_is_reused() -> None:
    backend = await Backend().start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n")
        head = await read_response(reader, head_request=True)
        writer.write(get("/next"))
        resp = await read_response(reader)
        writer.close()
    await backend.stop()
    assert head.status == 200 and head.get("Content-Length") is not None
    assert resp.body == b"path=/next body=0"
    assert backend.connections == 1


@on_uvloop
async def test_http10_client_gets_keep_alive_only_when_asked() -> None:
    backend = await Backend().start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        writer.write(b"GET /a HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        first = await read_response(reader)
        writer.write(b"GET /b HTTP/1.0\r\nHost: a\r\n\r\n")
        second = await read_response(reader)
        assert await reader.read() == b""  # closed after a 1.0 request without keep-alive
        writer.close()
    await backend.stop()
    assert first.get("Connection") == "keep-alive" and first.body == b"path=/a body=0"
    assert second.get("Connection") == "close" and second.body == b"path=/b body=0"


@on_uvloop
async def test_websocket_upgrade_switches_to_a_tunnel() -> None:
    async def websocket(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        assert req.get("Upgrade") == "websocket" and req.get("Connection") == "upgrade"
        w.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        while data := await r.read(1024):
            w.write(b"echo:" + data)
            await w.drain()
        return False

    backend = await Backend(websocket).start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
            b"Connection: keep-alive, Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = await read_head(reader)
        assert head.status == 101
        assert head.get("Upgrade") == "websocket" and head.get("Connection") == "upgrade"
        assert head.get("Fly-Request-Id") is not None
        for word in (b"one", b"two"):
            writer.write(word)
            assert await reader.readexactly(5 + len(word)) == b"echo:" + word
        writer.close()
        await asyncio.sleep(0.05)
        assert relay.router.in_flight == 0 and relay.router.bytes_to_machine > 6
    await backend.stop()


# -- failures and retries -----------------------------------------------------------------


@on_uvloop
async def test_retries_the_next_machine_when_the_first_refuses() -> None:
    good = await Backend(name="good").start()
    router = StaticRouter([(LOCALHOST, free_port()), (LOCALHOST, good.port)], retries=2)
    async with running_relay(router) as relay:
        responses = [await relay.request(get(f"/{i}")) for i in range(6)]
        await asyncio.sleep(0.05)
    await good.stop()
    assert [r.status for r in responses] == [200] * 6
    assert ("m0", "refused") in router.connect_failures
    assert router.in_flight == 0


@on_uvloop
async def test_all_machines_refusing_gives_502_after_the_retries() -> None:
    router = StaticRouter([(LOCALHOST, free_port()), (LOCALHOST, free_port())], retries=1)
    async with running_relay(router) as relay:
        resp = await relay.request(get())
    assert resp.status == 502
    assert len(router.connect_failures) == 2 and router.in_flight == 0


async def die_after_head(
    b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    req.body = await read_body(r, req)
    b.requests.append(req)
    return False  # a crash: the connection closes without an answer


@on_uvloop
async def test_post_is_not_replayed_after_it_reached_a_machine() -> None:
    dying = await Backend(die_after_head, name="dying").start()
    good = await Backend(name="good").start()
    router = router_for(dying, good)
    async with running_relay(router) as relay:
        resp = await relay.request(b"POST /pay HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    await dying.stop()
    await good.stop()
    assert resp.status == 502
    assert len(dying.requests) == 1 and good.requests == []
    assert router.in_flight == 0


@on_uvloop
async def test_get_is_replayed_on_the_next_machine_when_no_answer_came() -> None:
    dying = await Backend(die_after_head, name="dying").start()
    good = await Backend(name="good").start()
    router = router_for(dying, good)
    async with running_relay(router) as relay:
        resp = await relay.request(get("/read"))
    await dying.stop()
    await good.stop()
    assert resp.status == 200 and resp.get("X-Backend") == "good"
    assert len(dying.requests) == 1 and len(good.requests) == 1
    assert router.in_flight == 0


@on_uvloop
async def test_stale_pooled_connection_is_retried_on_a_fresh_one() -> None:
    async def one_per_connection(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if b.requests and b.requests[-1].target == "/first" and req.target == "/second":
            b.requests.append(req)
            return False  # closes just as the reused connection's request arrives
        return await answer_ok(b, req, r, w)

    backend = await Backend(one_per_connection).start()
    router = router_for(backend, retries=0)
    async with running_relay(router) as relay:
        reader, writer = await relay.connect()
        writer.write(get("/first"))
        first = await read_response(reader)
        writer.write(get("/second"))
        second = await read_response(reader)
        writer.close()
    await backend.stop()
    assert (first.status, second.status) == (200, 200)
    assert backend.connections == 2 and router.connect_failures == []


@on_uvloop
async def test_machine_closing_mid_response_closes_the_client() -> None:
    async def truncated(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await w.drain()
        return False

    backend = await Backend(truncated).start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        writer.write(get())
        head = await read_head(reader)
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF, not a made-up response
        writer.close()
        await asyncio.sleep(0.05)
        assert relay.router.in_flight == 0
    await backend.stop()
    assert head.status == 200 and rest == b"0123456789"


@on_uvloop
async def test_silent_machine_gives_504() -> None:
    async def silent(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        await asyncio.sleep(10)
        return False

    backend = await Backend(silent).start()
    router = router_for(backend, timeout=0.3)
    async with running_relay(router) as relay:
        started = time.monotonic()
        resp = await relay.request(get())
        elapsed = time.monotonic() - started
        assert router.in_flight == 0 and router.statuses.get(504) == 1
    await backend.stop()
    assert resp.status == 504 and 0.25 < elapsed < 2


# -- bad input ----------------------------------------------------------------------------


async def answer_and_eof(
    relay_request: bytes, port: int, pause: float = 0.0
) -> tuple[Message, bytes]:
    reader, writer = await asyncio.open_connection(LOCALHOST, port)
    writer.write(relay_request)
    if pause:
        await asyncio.sleep(pause)
    resp = await asyncio.wait_for(read_response(reader), 5)
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return resp, rest


@on_uvloop
async def test_bad_requests_are_answered_and_closed() -> None:
    backend = await Backend().start()
    settings = Settings(headers_read_timeout=0.3, max_header_bytes=4096)
    async with running_relay(router_for(backend), settings) as relay:
        malformed, rest1 = await answer_and_eof(
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", relay.port
        )
        garbage, rest2 = await answer_and_eof(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", relay.port
        )
        huge, rest3 = await answer_and_eof(get(extra="X-Big: " + "a" * 5000 + "\r\n"), relay.port)
        slow, rest4 = await answer_and_eof(b"GET / HTTP/1.1\r\nHost: a\r\n", relay.port)
        smuggle, rest5 = await answer_and_eof(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            relay.port,
        )
    await backend.stop()
    assert [m.status for m in (malformed, garbage, huge, slow, smuggle)] == [
        400,
        400,
        431,
        408,
        400,
    ]
    assert rest1 == rest2 == rest3 == rest4 == rest5 == b""
    assert all(m.get("Connection") == "close" for m in (malformed, huge, slow))
    assert backend.requests == []


@on_uvloop
async def test_idle_keep_alive_connection_closes_after_idle_timeout() -> None:
    backend = await Backend().start()
    settings = Settings(idle_timeout=0.2)
    async with running_relay(router_for(backend), settings) as relay:
        reader, writer = await relay.connect()
        writer.write(get())
        await read_response(reader)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 3) == b""
        assert time.monotonic() - started >= 0.15
        writer.close()
        await asyncio.sleep(0.05)
        assert len(relay.tracker) == 0
    await backend.stop()


# -- answers from the edge itself ---------------------------------------------------------


@on_uvloop
async def test_no_upstream_gives_503_with_retry_after() -> None:
    router = StaticRouter([], app="shop", retry_after=7)
    async with running_relay(router) as relay:
        reader, writer = await relay.connect()
        writer.write(get())
        resp = await read_response(reader)
        writer.write(get())  # no body: the connection stays usable
        again = await read_response(reader)
        writer.close()
    assert resp.status == 503 and again.status == 503
    assert resp.get("Retry-After") == "7"
    assert b"shop" in resp.body and b"no machine can take it" in resp.body
    assert resp.get("Fly-Request-Id") is not None


@on_uvloop
async def test_unknown_host_gives_404() -> None:
    backend = await Backend().start()
    router = router_for(backend, hosts=frozenset({b"known.example"}))
    async with running_relay(router) as relay:
        unknown = await relay.request(get(host="other.example"))
        known = await relay.request(get(host="known.example"))
    await backend.stop()
    assert unknown.status == 404 and b"other.example" in unknown.body
    assert unknown.get("Retry-After") is None
    assert known.status == 200 and len(backend.requests) == 1


@on_uvloop
async def test_force_https_redirects_without_contacting_a_machine() -> None:
    backend = await Backend().start()
    router = router_for(backend, force_https=True)
    async with running_relay(router) as relay:
        resp = await relay.request(get("/path?q=1", host="app.example:8080"))
    await backend.stop()
    assert resp.status == 301
    assert resp.get("Location") == "https://app.example/path?q=1"
    assert backend.connections == 0 and router.chosen == 0


# -- simulated latency, draining, descriptors ---------------------------------------------


@on_uvloop
async def test_simulated_latency_delays_request_and_response() -> None:
    backend = await Backend().start()
    router = router_for(backend, upstream_delay=0.2, client_delay=0.1)
    async with running_relay(router) as relay:
        reader, writer = await relay.connect()
        timings = []
        for _ in range(2):
            started = time.monotonic()
            writer.write(get())
            assert (await read_response(reader)).status == 200
            timings.append(time.monotonic() - started)
        writer.close()
    await backend.stop()
    assert 0.29 < timings[0] < 0.6  # upstream RTT + the client's connection setup
    assert 0.19 < timings[1] < 0.4  # upstream RTT only


@on_uvloop
async def test_drain_closes_idle_connections_and_lets_requests_finish() -> None:
    release = asyncio.Event()

    async def held(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if req.target == "/slow":
            await release.wait()
        return await answer_ok(b, req, r, w)

    backend = await Backend(held).start()
    async with running_relay(router_for(backend)) as relay:
        idle_reader, idle_writer = await relay.connect()
        idle_writer.write(get("/fast"))
        await read_response(idle_reader)
        busy_reader, busy_writer = await relay.connect()
        busy_writer.write(get("/slow"))
        await asyncio.sleep(0.1)
        drained = asyncio.ensure_future(relay.tracker.drain(5))
        assert await asyncio.wait_for(idle_reader.read(), 2) == b""  # idle: closed at once
        release.set()
        resp = await read_response(busy_reader)
        assert await asyncio.wait_for(drained, 2) == 0  # nothing had to be aborted
        idle_writer.close()
        busy_writer.close()
    await backend.stop()
    assert resp.status == 200 and resp.get("Connection") == "close"


@on_uvloop
async def test_no_descriptor_leak_on_any_path() -> None:
    warm_up = await Backend().start()  # the loop opens a spare fd at its first listen
    async with running_relay(router_for(warm_up)) as relay:
        await relay.request(get())
    await warm_up.stop()
    gc.collect()
    baseline = open_fds()
    good = await Backend().start()
    dying = await Backend(die_after_head).start()

    async def truncated(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01")
        return False

    cut = await Backend(truncated).start()
    settings = Settings(headers_read_timeout=0.2)
    routers = [
        router_for(good),
        router_for(dying, good),
        router_for(cut),
        StaticRouter([(LOCALHOST, free_port())], retries=0),
        StaticRouter([]),
    ]
    for router in routers:
        async with running_relay(router, settings) as relay:
            for _ in range(3):
                for raw in (get(), b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"):
                    with contextlib.suppress(asyncio.IncompleteReadError):
                        await relay.request(raw)  # a truncated answer is one of the paths
                await answer_and_eof(b"nonsense\r\n\r\n", relay.port)
                await answer_and_eof(b"GET / HTTP/1.1\r\n", relay.port)
                _, writer = await relay.connect()
                writer.write(get()[:10])
                writer.close()  # the client vanishes mid-head
                _, writer = await relay.connect()
                writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
                await asyncio.sleep(0.02)
                writer.close()  # ... or mid-body
            await asyncio.sleep(0.05)
            assert router.in_flight == 0, [m.port for m in router.machines]
    for backend in (good, dying, cut):
        await backend.stop()
    await asyncio.sleep(0.1)
    gc.collect()
    assert open_fds() <= baseline


@on_uvloop
async def test_close_idle_closes_only_connections_between_requests() -> None:
    release = asyncio.Event()

    async def held(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        if req.target == "/slow":
            await release.wait()
        return await answer_ok(b, req, r, w)

    backend = await Backend(held).start()
    async with running_relay(router_for(backend)) as relay:
        idle_reader, idle_writer = await relay.connect()
        idle_writer.write(get("/fast"))
        await read_response(idle_reader)
        busy_reader, busy_writer = await relay.connect()
        busy_writer.write(get("/slow"))
        await asyncio.sleep(0.1)
        assert len(relay.tracker) == 2
        assert relay.tracker.close_idle() == 1
        assert await asyncio.wait_for(idle_reader.read(), 2) == b""
        release.set()
        resp = await read_response(busy_reader)
        busy_writer.write(get("/again"))  # not draining: still keep-alive
        again = await read_response(busy_reader)
        idle_writer.close()
        busy_writer.close()
        await asyncio.sleep(0.05)
        assert len(relay.tracker) == 0
    await backend.stop()
    assert resp.status == 200 and again.status == 200


@on_uvloop
async def test_router_hears_connects_answers_and_bytes() -> None:
    backend = await Backend().start()
    router = router_for(backend)
    async with running_relay(router) as relay:
        resp = await relay.request(get("/r", extra="Fly-Force-Instance-Id: m0\r\n"))
        await asyncio.sleep(0.05)
    await backend.stop()
    assert resp.status == 200
    assert [machine for machine, _ in router.connects] == ["m0"]
    assert router.statuses == {200: 1}
    assert router.chosen == router.released == 1
    assert router.bytes_to_machine > len(get("/r")) and router.bytes_to_client > len(resp.body)
    assert router.last_hints is not None and router.last_hints.force_instance == b"m0"
    assert router.last_client is not None and router.last_client.local_port == relay.port


# -- what newer routers ask: the client's PoP, capacity queues, faults ---------------------


class PoPRouter(StaticRouter):
    """Says the client landed on ``syd`` (anycast is per client), not the listener's PoP."""

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        choice = super().choose(client, hints, exclude)
        return dataclasses.replace(choice, pop="syd")


@on_uvloop
async def test_fly_region_and_request_id_name_the_clients_pop() -> None:
    backend = await Backend().start()
    router = PoPRouter([(LOCALHOST, backend.port)])
    async with running_relay(router) as relay:
        resp = await relay.request(get())
    await backend.stop()
    assert backend.requests[0].all("Fly-Region") == ["syd"]
    request_id = resp.get("Fly-Request-Id")
    assert request_id is not None and request_id.endswith("-syd")
    assert router.opened_count == router.closed_count == 1


class OneSlotQueue:
    """A capacity queue the test opens by hand."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.waiting: list[Callable[[], None]] = []
        self.cancelled = 0

    def wait(self, callback: Callable[[], None]) -> object:
        self.waiting.append(callback)
        return callback

    def cancel(self, token: object) -> None:
        self.cancelled += 1


class BusyRouter(StaticRouter):
    """Every machine is at its hard limit until ``free`` is set."""

    def __init__(self, upstreams: list[tuple[str, int]], queue: OneSlotQueue) -> None:
        super().__init__(upstreams, app="busy")
        self.queue = queue
        self.free = False

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        if not self.free:
            return NoUpstream(503, "all machines at their hard limit", "busy", queue=self.queue)
        return super().choose(client, hints, exclude)


@on_uvloop
async def test_a_request_waits_in_the_capacity_queue_until_a_machine_is_free() -> None:
    backend = await Backend().start()
    queue = OneSlotQueue(timeout=5)
    router = BusyRouter([(LOCALHOST, backend.port)], queue)
    async with running_relay(router) as relay:
        pending = asyncio.ensure_future(relay.request(get()))
        await asyncio.sleep(0.1)
        assert not pending.done() and len(queue.waiting) == 1
        router.free = True
        queue.waiting.pop()()
        resp = await asyncio.wait_for(pending, 5)
    await backend.stop()
    assert resp.status == 200


@on_uvloop
async def test_a_queued_request_gets_503_at_the_queue_timeout() -> None:
    queue = OneSlotQueue(timeout=0.2)
    router = BusyRouter([], queue)
    async with running_relay(router) as relay:
        started = time.monotonic()
        resp = await relay.request(get())
        elapsed = time.monotonic() - started
    assert resp.status == 503 and resp.get("Retry-After") == "1"
    assert 0.15 < elapsed < 2 and queue.cancelled == 1


class FaultyRouter(StaticRouter):
    """The first machine is down (an injected fault)."""

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        choice = super().choose(client, hints, exclude)
        if isinstance(choice, Upstream) and choice.machine_id == "m0":
            down = Fault(id="f1", kind="down", scope="machine", target="m0")
            return dataclasses.replace(choice, faults=(down,))
        return choice


@on_uvloop
async def test_a_machine_down_by_fault_is_refused_and_the_next_one_answers() -> None:
    first = await Backend(name="first").start()
    second = await Backend(name="second").start()
    router = FaultyRouter([(LOCALHOST, first.port), (LOCALHOST, second.port)])
    async with running_relay(router) as relay:
        resp = await relay.request(get())
    await first.stop()
    await second.stop()
    assert resp.status == 200 and resp.get("X-Backend") == "second"
    assert router.connect_failures == [("m0", "refused")] and first.connections == 0


@on_uvloop
async def test_large_bodies_stream_through_both_ways() -> None:
    big = bytes(range(256)) * 16384  # 4 MiB

    async def echo_big(
        b: Backend, req: Message, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        body = await read_body(r, req)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(body) + len(big)))
        w.write(body)
        w.write(big)
        await w.drain()
        return True

    backend = await Backend(echo_big).start()
    async with running_relay(router_for(backend)) as relay:
        reader, writer = await relay.connect()
        upload = big[: 2 * 1024 * 1024]
        writer.write(b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(upload))
        writer.write(upload)
        resp = await asyncio.wait_for(read_response(reader), 20)
        chunked = (
            b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
        )
        writer.write(chunked + get("/after"))  # pipelined behind a chunked body
        second = await asyncio.wait_for(read_response(reader), 20)
        third = await asyncio.wait_for(read_response(reader), 20)
        writer.close()
    await backend.stop()
    assert resp.body == upload + big
    assert second.body == b"abc" + big
    assert third.body == b"" + big
