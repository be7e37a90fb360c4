"""Playbook tests of the HTTP exchange (tests/playbook.py): failed connects retried on
other machines, machine connections lost before an answer (resent or 502), and the
capacity queue (every machine at its hard limit) on a fake clock.
"""

from __future__ import annotations

import pytest

from tests.playbook import Playbook, get


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
    assert not book.connecting  # no further try
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
    assert not book.connecting
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
    assert not book.connecting  # never sent twice: the machine may have acted on it
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
    assert not book.connecting
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
    assert not book.connecting  # m1's pooled connection takes it
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
    assert not book.connecting
    assert client.response().status == 502


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


# --- the capacity queue (every machine at its hard limit) ------------------------------------


def test_a_queued_request_is_served_when_a_slot_frees() -> None:
    book = Playbook(machines=1, queue_timeout=5.0)
    book.saturable.full = True
    client = book.client()
    client.send(get())
    assert not book.connecting and client.responses() == []
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
    assert not book.connecting


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
    assert not book.connecting


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


# --- connect timeouts and idle expiry, on the loop's one deadline sweep -----------------------


def test_a_connect_that_does_not_complete_in_time_is_retried_elsewhere() -> None:
    book = Playbook(machines=2, retries=1, connect_timeout=5.0)
    client = book.client()
    client.send(get())
    first = book.next_connect()
    book.advance(4.9)
    assert first.pending
    book.advance(0.2)
    assert not first.pending  # given up by the pool at its deadline
    second = book.accept()
    assert second.machine_id == "m1"
    second.respond(b"m1")
    assert client.response().body == b"m1"
    assert book.router.connect_failures == [("m0", "timeout")]


def test_connects_that_time_out_everywhere_end_in_502_pc07() -> None:
    book = Playbook(machines=2, retries=1, connect_timeout=2.0)
    client = book.client()
    client.send(get())
    book.advance(2.1)
    book.advance(2.1)
    response = client.response()
    assert response.status == 502
    assert response.header("edge-error-code") == "PC07"
    assert "timeout" in response.body.decode()
    assert book.router.connect_failures == [("m0", "timeout"), ("m1", "timeout")]


def test_a_single_connect_timeout_is_pc05() -> None:
    book = Playbook(machines=1, retries=0, connect_timeout=2.0)
    client = book.client()
    client.send(get())
    book.advance(2.1)
    assert client.response().header("edge-error-code") == "PC05"


def test_an_idle_pooled_connection_expires_after_upstream_idle_timeout() -> None:
    book = Playbook(machines=1)  # http.upstream_idle_timeout: 4 s
    client = book.client()
    client.send(get())
    machine = book.accept()
    machine.respond()
    client.response()
    book.advance(3.9)
    assert not machine.closed and book.pool.idle_count() == 1
    book.advance(0.2)
    assert machine.closed
    assert book.pool.idle_count() == 0
    client.send(get())
    assert book.next_connect().machine_id == "m0"  # a new connection
