"""Playbook tests of the HTTP exchange: bytes and events in, writes and commands out,
time on a fake clock (tests/playbook.py). The real relay, router, pool and machine
connections run; only the sockets and the loop are played by the test."""

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
    assert not book.connects  # no new connection: the pooled one is used
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
    assert not book.connects  # all three on the one machine connection
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
    assert not book.connects and book.in_flight == 0


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


def test_a_refused_connect_is_retried_on_the_other_machine() -> None:
    book = Playbook(machines=2, retries=1)
    client = book.client()
    client.send(get())
    first = book.refuse()
    assert first.machine_id == "m0"
    machine = book.accept()
    assert machine.machine_id == "m1"
    machine.respond(b"from m1")
    assert client.response().body == b"from m1"
    assert book.router.connect_failures == [("m0", "refused")]
    assert (book.router.chosen, book.router.released) == (2, 2)


@pytest.mark.parametrize(
    ("machines", "retries", "refusals", "code"),
    [
        (1, 0, 1, "PC01"),  # one try: the cause's own code
        (2, 1, 2, "PC07"),  # retried and failed again: retries exhausted
        (3, 2, 3, "PC07"),
    ],
)
def test_refused_connects_end_in_502_once_the_retries_are_used(
    machines: int, retries: int, refusals: int, code: str
) -> None:
    book = Playbook(machines=machines, retries=retries)
    client = book.client()
    client.send(get())
    tried = [book.refuse().machine_id for _ in range(refusals)]
    assert len(set(tried)) == refusals  # never the same machine twice
    assert not book.connects  # no further try
    response = client.response()
    assert response.status == 502
    assert response.header("edge-error-code") == code
    assert f"error code: {code}" in response.body.decode()
    assert "refused" in response.body.decode()
    assert not client.closed  # the edge's own answer keeps the connection
    assert book.in_flight == 0


def test_retries_beyond_the_machines_end_in_503_naming_the_last_cause() -> None:
    book = Playbook(machines=2, retries=2)
    client = book.client()
    client.send(get())
    book.refuse()
    book.refuse()
    response = client.response()
    assert response.status == 503
    assert response.header("edge-error-code") == "PR03"
    assert "the last connect failed: refused (PC01)" in response.body.decode()


def test_a_get_whose_pooled_connection_was_closed_is_resent_on_a_fresh_one() -> None:
    book = Playbook(machines=1)  # a retry elsewhere would find no machine: 503
    client = book.client()
    client.send(get("/one"))
    pooled = book.accept()
    assert pooled.request().first_line == "GET /one"
    pooled.respond()
    assert client.response().status == 200
    client.send(get("/two"))
    assert pooled.request().first_line == "GET /two"
    pooled.close()  # the machine had given up on the connection: not its fault
    fresh = book.accept()
    assert fresh.machine_id == pooled.machine_id  # the same machine, a new connection
    assert fresh.request().first_line == "GET /two"
    fresh.respond(b"again")
    assert client.response().body == b"again"
    assert book.router.connect_failures == []
    assert book.in_flight == 0


def test_the_resend_opens_a_new_connection_rather_than_another_pooled_one() -> None:
    """A machine that closed one pooled connection (restarted) closed the others too."""
    book = Playbook(machines=1)
    first, second = book.client(), book.client()
    first.send(get("/a"))
    second.send(get("/b"))
    a, b = book.accept(), book.accept()  # two connections to m0
    for machine, client in ((a, first), (b, second)):
        machine.request()
        machine.respond()
        client.response()
    assert book.pool.idle_count() == 2
    first.send(get("/c"))
    taken, other = (a, b) if a.requests() else (b, a)
    taken.close()
    assert other.requests() == []  # not the other pooled connection
    fresh = book.accept()
    assert fresh.request().first_line == "GET /c"


def test_a_get_lost_on_a_fresh_connection_goes_to_another_machine() -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(get())
    first = book.accept()
    first.close()
    second = book.accept()
    assert (first.machine_id, second.machine_id) == ("m0", "m1")
    second.respond(b"m1")
    assert client.response().body == b"m1"
    assert book.router.connect_failures == [("m0", "reset")]


def test_a_get_lost_after_part_of_the_answer_is_not_resent() -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.send(b"HTTP/1.1 200 OK\r\nContent-")  # a byte came: the machine saw it
    machine.close()
    assert not book.connects
    response = client.response()
    assert response.status == 502
    assert response.header("edge-error-code") == "PU02"


def test_a_pooled_connection_the_machine_closes_while_idle_is_not_used_again() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.respond()
    client.response()
    assert book.pool.idle_count() == 1
    machine.close()
    assert book.pool.idle_count() == 0  # it left the pool at once
    client.send(get())
    assert book.next_connect().machine_id == "m0"  # a new connection, not the dead one


def test_a_post_whose_machine_connection_is_lost_gets_502_and_is_never_resent() -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(b"POST /orders HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello")
    machine = book.accept()
    request = machine.request()
    assert (request.first_line, request.body) == ("POST /orders", b"hello")
    machine.close()
    assert not book.connects  # never sent twice: the machine may have acted on it
    response = client.response()
    assert response.status == 502
    assert response.header("edge-error-code") == "PU02"
    assert client.closed
    assert book.in_flight == 0


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 0\r\n\r\n",  # not idempotent
        b"PUT /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nabc",  # a body
        b"GET /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nabc",
        b"PATCH /x HTTP/1.1\r\nHost: app.example\r\n\r\n",
    ],
    ids=["POST-no-body", "PUT-body", "GET-body", "PATCH"],
)
def test_requests_that_are_not_replayable_get_502_when_their_machine_is_lost(
    request_bytes: bytes,
) -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(request_bytes)
    machine = book.accept()
    assert machine.request().first_line.endswith(" /x")
    machine.close()
    assert not book.connects
    assert client.response().status == 502


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS"])
def test_idempotent_bodiless_requests_go_elsewhere_when_their_machine_is_lost(method: str) -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(f"{method} /x HTTP/1.1\r\nHost: app.example\r\n\r\n".encode())
    book.accept().close()
    machine = book.accept()
    assert machine.request().first_line == f"{method} /x"
    machine.respond()
    assert client.response().status == 200


def test_when_the_fresh_resend_is_lost_too_the_request_goes_elsewhere() -> None:
    book = Playbook(machines=2)
    client = book.client()
    conns = {}
    for path in ("/1", "/2"):  # round robin: one pooled connection to each machine
        client.send(get(path))
        machine = book.accept()
        machine.request()
        machine.respond()
        client.response()
        conns[machine.machine_id] = machine
    client.send(get("/3"))  # m0 again, on its pooled connection
    assert conns["m0"].request().first_line == "GET /3"
    conns["m0"].close()
    fresh = book.accept()
    assert fresh.machine_id == "m0"
    fresh.close()  # lost on a fresh connection: now it is the machine's doing
    assert not book.connects  # m1's pooled connection takes it
    assert conns["m1"].request().first_line == "GET /3"
    conns["m1"].respond(b"m1")
    assert client.response().body == b"m1"
    assert book.router.connect_failures == [("m0", "reset")]


def test_a_post_on_a_pooled_connection_is_not_resent_either() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    pooled = book.accept()
    pooled.respond()
    client.response()
    client.send(b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 2\r\n\r\nhi")
    pooled.close()
    assert not book.connects
    assert client.response().status == 502


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


def test_a_connect_that_completes_after_the_client_left_is_pooled() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    connect = book.next_connect()
    client.disconnect()
    assert book.in_flight == 0
    machine = book.accept(connect)
    assert not machine.closed
    assert book.pool.idle_count() == 1


# --- the capacity queue (every machine at its hard limit) -----------------------------------


def test_a_queued_request_is_served_when_a_slot_frees() -> None:
    book = Playbook(machines=1, queue_timeout=5.0)
    book.saturable.full = True
    client = book.client()
    client.send(get())
    assert not book.connects and client.responses() == []
    assert len(book.saturable.queue) == 1
    book.advance(3.0)
    book.saturable.free_a_slot()
    machine = book.accept()
    machine.respond(b"served")
    assert client.response().body == b"served"


def test_a_queued_request_gets_503_when_no_slot_frees_in_time() -> None:
    book = Playbook(machines=1, queue_timeout=5.0)
    book.saturable.full = True
    client = book.client()
    client.send(get())
    book.advance(4.9)
    assert client.responses() == []
    book.advance(0.2)
    response = client.response()
    assert response.status == 503
    assert response.header("edge-error-code") == "PL02"
    assert response.header("retry-after") == "1"
    assert len(book.saturable.queue) == 0  # it left the queue
    assert not book.connects


def test_being_woken_to_a_taken_slot_does_not_extend_the_wait() -> None:
    book = Playbook(machines=1, queue_timeout=5.0)
    book.saturable.full = True
    client = book.client()
    client.send(get())
    book.advance(4.0)
    book.saturable.queue.wake_one()  # woken, but still full: waits again
    assert client.responses() == [] and len(book.saturable.queue) == 1
    book.advance(1.1)  # 5.1 s after the first wait
    assert client.response().status == 503


def test_a_client_that_leaves_the_queue_cancels_its_wait() -> None:
    book = Playbook(machines=1, queue_timeout=5.0)
    book.saturable.full = True
    client = book.client()
    client.send(get())
    client.disconnect()
    assert len(book.saturable.queue) == 0
    book.saturable.free_a_slot()
    assert not book.connects


def test_the_next_request_on_the_connection_waits_afresh() -> None:
    book = Playbook(machines=1, queue_timeout=5.0)
    book.saturable.full = True
    client = book.client()
    client.send(get())
    book.advance(4.0)
    book.saturable.free_a_slot()
    machine = book.accept()
    machine.respond()
    client.response()
    book.saturable.full = True
    client.send(get())
    book.advance(4.0)  # 8 s after the first request's wait began: a new wait
    assert client.responses() == []
    book.advance(1.1)
    assert client.response().status == 503


# --- bodies, backpressure, drain ------------------------------------------------------------------


def test_a_chunked_response_is_relayed_untouched_and_the_connection_kept() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    assert client.responses() == []  # not complete yet
    machine.send(b"6\r\n world\r\n0\r\n\r\n")
    response = client.response()
    assert response.body == b"hello world"
    assert response.header("transfer-encoding") == "chunked"
    assert not client.closed
    client.send(get("/next"))
    assert not book.connects  # the machine connection went back to the pool


def test_a_response_without_length_ends_when_the_machine_closes() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.send(b"HTTP/1.1 200 OK\r\n\r\nstream")
    machine.send(b"ing")
    machine.close()
    assert client.transport.written.endswith(b"\r\n\r\nstreaming")
    assert b"Connection: close" in client.transport.written
    assert client.closed
    assert book.in_flight == 0


def test_a_request_body_streams_to_the_machine_as_it_comes() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(b"POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 10\r\n\r\nhel")
    machine = book.accept()
    assert machine.requests() == []  # the head and part of the body: not a whole request
    client.send(b"lo")
    client.send(b"world")
    request = machine.request()
    assert request.body == b"helloworld"
    machine.respond(b"stored")
    assert client.response().body == b"stored"
    assert not client.closed


def test_an_answer_before_the_body_is_all_sent_closes_the_connection() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(b"POST /up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\nabc")
    machine = book.accept()
    machine.respond(b"too large", status=413)
    assert client.response().status == 413
    assert client.closed  # the rest of the body can't be told apart from a next request


def test_a_client_that_stops_reading_pauses_the_machine() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    client.stops_reading()
    assert not machine.transport.reading
    client.reads_again()
    assert machine.transport.reading
    machine.send(b"defghij")
    assert client.response().body == b"abcdefghij"


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


# --- TLS and force_https ------------------------------------------------------------------------


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
    assert not book.connects
    assert book.in_flight == 0


# --- fly-replay ----------------------------------------------------------------------------

REPLAY_ANSWER = b"HTTP/1.1 204 No Content\r\nfly-replay: %s\r\n\r\n"


def test_a_fly_replay_answer_is_held_and_the_request_goes_again_with_its_body() -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(b"POST /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\n\r\nbody")
    m0 = book.accept()
    assert m0.request().body == b"body"
    m0.send(REPLAY_ANSWER % b"elsewhere=true")
    assert client.transport.take() == b""  # the client never sees the replay answer
    m1 = book.accept()
    assert m1.machine_id == "m1"
    replayed = m1.request()
    assert (replayed.first_line, replayed.body) == ("POST /x", b"body")
    source = replayed.header("fly-replay-src") or ""
    assert source.startswith("instance=m0;region=iad;")
    m1.respond(b"from m1")
    response = client.response()
    assert (response.status, response.body) == (200, b"from m1")
    assert response.header("fly-replay") is None
    assert book.router.replays == [("static", "replayed")]
    assert book.in_flight == 0


def test_a_replay_target_not_reached_in_time_falls_back_to_the_replaying_machine() -> None:
    book = Playbook(machines=2)
    client = book.client()
    client.send(get("/x"))
    m0 = book.accept()
    m0.request()
    m0.send(REPLAY_ANSWER % b"region=ord;timeout=2s;fallback=force_self")
    assert book.next_connect().machine_id == "m1"  # it never completes
    book.advance(1.9)
    assert m0.requests() == []
    book.advance(0.2)
    fallback = m0.request()  # on m0's pooled connection
    failed = fallback.header("fly-replay-failed") or ""
    assert "reason=timeout" in failed and "replay_source=m0" in failed
    elapsed = int(failed.rpartition("elapsed_ms=")[2])
    assert 2000 <= elapsed <= 2100  # the injected clock (a tick late at most), not the wall's
    m0.respond(b"handled here")
    assert client.response().body == b"handled here"
    assert book.router.replays == [("static", "replayed"), ("static", "fallback")]


def test_a_fallback_request_cannot_be_replayed_again() -> None:
    book = Playbook(machines=2, retries=0)
    client = book.client()
    client.send(get("/x"))
    m0 = book.accept()
    m0.request()
    m0.send(REPLAY_ANSWER % b"elsewhere=true;fallback=force_self")
    book.refuse()  # m1 cannot be reached: back to m0
    assert m0.request().header("fly-replay-failed") is not None
    m0.send(REPLAY_ANSWER % b"elsewhere=true")
    response = client.response()
    assert response.status == 502
    assert response.header("edge-error-code") == "PA03"


# --- message framing corner cases -------------------------------------------------------------


def test_a_head_answer_has_no_body_and_the_connection_goes_on() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(b"HEAD / HTTP/1.1\r\nHost: app.example\r\n\r\n")
    machine = book.accept()
    assert machine.request().first_line == "HEAD /"
    machine.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")  # the size a GET would get
    out = client.transport.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n")
    assert out.endswith(b"\r\n\r\n")  # and nothing after the head
    client.send(get("/after"))
    assert not book.connects
    assert machine.request().first_line == "GET /after"
    machine.respond(b"x")
    assert client.response().body == b"x"


def test_a_204_keeps_the_connection() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.request()
    machine.send(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert client.response().status == 204
    client.send(get("/next"))
    assert machine.request().first_line == "GET /next"


@pytest.mark.parametrize(("version", "relayed"), [("1.1", True), ("1.0", False)])
def test_a_100_continue_is_relayed_to_http11_clients_only(version: str, relayed: bool) -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(
        f"POST /p HTTP/{version}\r\nHost: app.example\r\nContent-Length: 2\r\n"
        "Expect: 100-continue\r\n\r\n".encode()
    )
    machine = book.accept()
    machine.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert client.transport.take() == (b"HTTP/1.1 100 Continue\r\n\r\n" if relayed else b"")
    client.send(b"hi")
    assert machine.request().body == b"hi"
    machine.respond(b"done")
    assert client.response().body == b"done"


def test_content_length_with_transfer_encoding_is_refused_before_any_machine() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(
        b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert client.response().status == 400
    assert client.closed
    assert not book.connects


def test_a_client_that_half_closes_after_its_request_gets_the_answer_then_the_end() -> None:
    book = Playbook(machines=1)
    client = book.client()
    client.send(get())
    client.send_eof()
    assert not client.closed  # the request is whole: it is answered first
    machine = book.accept()
    machine.respond(b"bye")
    assert client.response().body == b"bye"
    assert client.closed


def test_a_replay_answered_before_the_body_waits_for_the_rest_of_it() -> None:
    book = Playbook(machines=2, timeout=5.0)
    client = book.client()
    client.send(b"POST /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 6\r\n\r\nab")
    m0 = book.accept()
    m0.send(REPLAY_ANSWER % b"elsewhere=true")
    assert not book.connects  # the body is not all here: nothing to resend yet
    client.send(b"cdef")
    m1 = book.accept()
    assert m1.request().body == b"abcdef"


def test_a_replay_whose_body_never_comes_gets_408_after_the_timeout() -> None:
    book = Playbook(machines=2, timeout=5.0)
    client = book.client()
    client.send(b"POST /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 6\r\n\r\nab")
    m0 = book.accept()
    m0.send(REPLAY_ANSWER % b"elsewhere=true")
    book.advance(4.9)
    assert client.responses() == []
    book.advance(0.2)
    response = client.response()
    assert response.status == 408
    assert client.closed
    assert not book.connects
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
    book.advance(10.0)  # the machine takes its time: the held head is not timed yet
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
