"""Playbook tests of fly-replay in the HTTP exchange (tests/playbook.py): the replay
answer held, the request and its body delivered again, the timeout fallback and the
body wait on a fake clock.
"""

from __future__ import annotations

from tests.playbook import Playbook, get

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


def test_a_replay_answered_before_the_body_waits_for_the_rest_of_it() -> None:
    book = Playbook(machines=2, timeout=5.0)
    client = book.client()
    client.send(b"POST /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 6\r\n\r\nab")
    m0 = book.accept()
    m0.send(REPLAY_ANSWER % b"elsewhere=true")
    assert not book.connecting  # the body is not all here: nothing to resend yet
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
    assert not book.connecting
    assert book.in_flight == 0
