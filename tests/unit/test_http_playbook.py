"""Playbook tests of the HTTP exchange: bytes and events in, writes and commands out,
time on a fake clock (tests/playbook.py). The real relay, router, pool and machine
connections run; only the sockets and the loop are played by the test.

Here: keep-alive and pipelining, the timeouts (408, idle, 504), the headers the edge
adds, upgrades, TLS, drain. Next to it: _framing (bodies, backpressure, framing
corners), _retries (failed connects, lost connections, the capacity queue), _replay.
"""

from __future__ import annotations

import re

import pytest

from tests.playbook import Playbook, get

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}-iad$")


def test_a_get_is_relayed_and_the_next_one_reuses_the_machine_connection() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get("/one"))
    machine = book.accept()
    request = machine.request()
    assert request.first_line == "GET /one"
    assert request.header("host") == "app.example"
    assert book.in_flight == 1
    machine.respond(b"first")
    response = client.response()
    assert (response.status, response.body) == (200, b"first")
    assert response.header("connection") is None  # HTTP/1.1: keep-alive goes unsaid
    assert not client.closed
    assert book.in_flight == 0

    client.send(get("/two"))
    assert not book.connecting  # no new connection: the pooled one is used
    assert machine.request().first_line == "GET /two"
    machine.respond(b"second")
    assert client.response().body == b"second"
    assert len(book.machines) == 1
    assert (book.router.chosen, book.router.released) == (2, 2)
    assert not machine.closed


def test_the_request_to_the_machine_names_the_client_and_the_pop() -> None:
    book = Playbook(machines=1)
    client = book.client(peer_ip="127.0.0.42")
    client.send(get("/"))
    request = book.accept().request()
    assert request.header("fly-client-ip") == "127.0.0.42"
    assert request.header("x-forwarded-for") == "127.0.0.42"
    assert request.header("fly-region") == "iad"


def test_pipelined_requests_are_answered_in_order() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get("/a") + get("/b") + get("/c"))
    assert not client.reading  # early requests are held: no more is read meanwhile
    machine = book.accept()
    assert [r.first_line for r in machine.requests()] == ["GET /a"]  # one at a time
    machine.respond(b"A")
    assert [r.first_line for r in machine.requests()] == ["GET /b"]
    machine.respond(b"B")
    assert [r.first_line for r in machine.requests()] == ["GET /c"]
    machine.respond(b"C")
    assert [r.body for r in client.responses()] == [b"A", b"B", b"C"]
    assert client.reading
    assert not book.connecting  # all three on the one machine connection
    assert book.in_flight == 0


def test_a_head_incomplete_past_headers_read_timeout_gets_408() -> None:
    book = Playbook(machines=1, headers_read_timeout="2s")
    client = book.client()
    client.send(b"GET / HTTP/1.1\r\nHost: app.example\r\n")
    book.advance(1.9)
    assert client.responses() == [] and not client.closed
    book.advance(0.2)
    response = client.response()
    assert response.status == 408
    assert response.header("connection") == "close"
    assert response.header("edge-error-code") is None  # the platform has no code for it
    assert client.closed
    assert not book.connecting and book.in_flight == 0


def test_the_head_deadline_counts_from_its_first_byte_not_from_the_last() -> None:
    book = Playbook(machines=1, headers_read_timeout="2s")
    client = book.client()
    client.send(b"GET / HTTP/1.1\r\n")
    book.advance(1.5)
    client.send(b"Host: app.example\r\n")  # trickling (slowloris) does not extend it
    book.advance(0.6)
    assert client.response().status == 408


def test_a_client_that_sends_nothing_is_closed_without_an_answer() -> None:
    book = Playbook(machines=1, headers_read_timeout="2s")
    client = book.client()
    book.advance(2.0)
    assert client.closed
    assert client.transport.take() == b""


def test_an_idle_keep_alive_connection_closes_after_idle_timeout() -> None:
    book = Playbook(machines=1, headers_read_timeout="2s", idle_timeout="30s")
    client = book.client()
    client.send(get())
    book.accept().respond()
    assert client.response().status == 200
    book.advance(29.9)  # longer than the head timeout: idle is timed by idle_timeout
    assert not client.closed
    book.advance(0.2)
    assert client.closed
    assert client.transport.take() == b""  # closed quietly: nothing was lost


def test_a_machine_that_does_not_answer_in_time_gets_504() -> None:
    book = Playbook(machines=1, timeout=5.0)
    client = book.client()
    client.send(get())
    machine = book.accept()
    assert machine.request().first_line == "GET /"
    book.advance(4.9)
    assert client.responses() == []
    book.advance(0.2)
    response = client.response()
    assert response.status == 504
    assert response.header("connection") == "close"
    assert response.header("edge-error-code") is None
    assert machine.closed  # its late answer must not reach the next request
    assert client.closed
    assert book.router.statuses == {504: 1}
    assert book.in_flight == 0


@pytest.mark.parametrize(
    ("request_head", "connection", "stays_open"),
    [
        (b"GET / HTTP/1.0\r\nHost: app.example\r\n\r\n", "close", False),
        (
            b"GET / HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\n",
            "keep-alive",
            True,
        ),
        (b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n", None, True),
        (b"GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", "close", False),
    ],
    ids=["1.0", "1.0-keep-alive", "1.1", "1.1-close"],
)
def test_connection_header_of_the_answer(
    request_head: bytes, connection: str | None, stays_open: bool
) -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(request_head)
    machine = book.accept()
    machine.request()
    machine.respond()
    response = client.response()
    assert response.status == 200
    assert response.header("connection") == connection
    assert client.closed is not stays_open


def test_an_http10_request_is_sent_so_the_machine_connection_can_be_reused() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(b"GET / HTTP/1.0\r\nHost: app.example\r\n\r\n")
    assert book.accept().request().header("connection") == "keep-alive"


UPGRADE_REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
)


def test_a_101_upgrade_becomes_a_tunnel_both_ways() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(UPGRADE_REQUEST)
    machine = book.accept()
    request = machine.request()
    assert request.header("upgrade") == "websocket"
    machine.send(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    response = client.response()
    assert response.status == 101
    assert response.header("upgrade") == "websocket"
    assert response.header("connection") == "upgrade"
    client.send(b"\x81\x04ping")
    assert machine.received() == b"\x81\x04ping"
    machine.send(b"\x81\x04pong")
    assert client.tunnel_bytes() == b"\x81\x04pong"
    assert book.in_flight == 1  # the tunnel holds its machine
    machine.close()
    assert client.closed
    assert book.in_flight == 0


def test_an_upgrade_answered_without_101_closes_after_the_answer() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(UPGRADE_REQUEST)
    machine = book.accept()
    machine.respond(b"no", status=426)
    response = client.response()
    assert response.status == 426
    assert response.header("connection") == "close"
    assert client.closed


def test_responses_carry_fly_request_id_and_via() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.respond(headers=b"Via: 1.1 upstream-cache\r\n")
    response = client.response()
    request_id = response.header("fly-request-id")
    assert request_id is not None and ULID.match(request_id), request_id
    assert response.all("via") == ["1.1 upstream-cache", "1.1 edge"]
    client.send(get())
    machine.respond()
    assert client.response().header("fly-request-id") != request_id  # one per request


def test_the_edges_own_answers_carry_their_code_and_request_id() -> None:
    book = Playbook(machines=1, retries=0)
    client = book.client()
    client.send(get())
    book.refuse(reason="timeout")
    response = client.response()
    assert response.status == 502
    assert response.header("edge-error-code") == "PC05"
    assert ULID.match(response.header("fly-request-id") or "")
    assert response.header("via") == "1.1 edge"
    answer = book.router.answers[-1]
    assert (answer.status, answer.code) == (502, "PC05")
    assert answer.request_id == response.header("fly-request-id")


def test_a_machine_answer_has_no_edge_error_code() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    book.accept().respond(b"boom", status=500)
    response = client.response()
    assert response.status == 500
    assert response.header("edge-error-code") is None


def test_a_client_that_goes_away_mid_request_frees_the_machine() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    client.disconnect()
    assert machine.closed  # its answer would have nowhere to go
    assert book.in_flight == 0
    assert (book.router.opened_count, book.router.closed_count) == (1, 1)


def test_draining_closes_idle_connections_and_ends_keep_alive() -> None:
    book = Playbook(machines=1)
    idle, busy = book.client(), book.client()
    busy.send(get())
    machine = book.accept()
    book.start_draining()
    assert idle.closed
    assert not busy.closed  # its request is in flight: it finishes
    machine.respond()
    response = busy.response()
    assert response.status == 200
    assert response.header("connection") == "close"
    assert busy.closed


def test_a_tls_client_is_named_to_the_machine_as_https() -> None:
    book = Playbook(machines=1, force_https=True)
    client = book.client(tls=True)
    client.send(get())
    request = book.accept().request()
    assert request.header("x-forwarded-proto") == "https"
    assert request.header("x-forwarded-ssl") == "on"
    assert request.header("x-forwarded-port") == "443"


def test_a_plain_client_is_named_as_http() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    request = book.accept().request()
    assert request.header("x-forwarded-proto") == "http"
    assert request.header("x-forwarded-ssl") == "off"


def test_force_https_redirects_a_plain_client_without_a_machine() -> None:
    book = Playbook(machines=1, force_https=True)
    client = book.client()
    client.send(get("/path?q=1"))
    response = client.response()
    assert response.status == 301
    assert response.header("location") == "https://app.example/path?q=1"
    assert not book.connecting
    assert book.in_flight == 0


def test_a_pipelined_request_after_an_answer_of_the_edge_is_still_served() -> None:
    book = Playbook(machines=1, retries=0)
    client = book.client()
    client.send(get("/a") + get("/b"))
    book.refuse()
    assert [r.status for r in client.responses()] == [502]
    machine = book.accept()
    assert machine.request().first_line == "GET /b"
    machine.respond(b"b")
    assert client.response().body == b"b"


def test_a_pipelined_partial_head_is_timed_from_when_its_turn_comes() -> None:
    book = Playbook(machines=1, headers_read_timeout="2s")
    client = book.client()
    client.send(get("/a") + b"GET /b HTTP/1.1\r\nHo")
    book.advance(4.0)  # the connect takes its time: the held head is not timed yet
    machine = book.accept()
    machine.request()
    machine.respond(b"a")
    assert client.response().body == b"a"
    book.advance(1.9)
    assert client.responses() == []
    book.advance(0.2)
    assert client.response().status == 408


def test_no_timer_is_set_per_request() -> None:
    """Timeouts are deadlines swept once per tick: a hundred requests schedule no more
    timers on the loop than one does."""
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.respond()
    client.response()
    after_one = len(book.loop.timers)
    for _ in range(100):
        client.send(get())
        machine.respond()
        assert client.response().status == 200
    assert len(book.loop.timers) == after_one
    assert not book.loop.ready
