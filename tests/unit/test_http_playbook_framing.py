"""Playbook tests of the HTTP exchange (tests/playbook.py): request and response bodies,
backpressure, and the corners of message framing (HEAD, 204, 100-continue, CL+TE,
half-close).
"""

from __future__ import annotations

import pytest

from tests.playbook import Playbook, get


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
    assert not book.connecting  # the machine connection went back to the pool


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
    assert not book.connecting
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
    assert not book.connecting


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
