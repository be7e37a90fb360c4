"""Which requests the HTTP relay accepts (edge.core.request_rules), as a table."""

from __future__ import annotations

import pytest

from edge.core.request_rules import Refusal, Retarget, host_name, judge_request, valid_host

OK = None


@pytest.mark.parametrize(
    ("line", "host", "host_lines", "sni", "expected"),
    [
        (b"GET / HTTP/1.1", b"a.example", 1, None, OK),
        (b"GET / HTTP/1.0", None, 0, None, OK),  # HTTP/1.0 needs no Host
        (b"GET /", None, 0, None, 400),  # HTTP/0.9
        (b"GET / HTTP/0.9", b"a.example", 1, None, 505),
        (b"GET / HTTP/2.0", b"a.example", 1, None, 505),
        (b"PRI * HTTP/2.0", None, 0, None, 505),
        (b"GET / HTTP/1.1", None, 0, None, 400),  # HTTP/1.1 needs a Host
        (b"GET / HTTP/1.1", b"a.example", 2, None, 400),  # two Host lines
        (b"GET / HTTP/1.1", b"a.example b.example", 1, None, 400),
        (b"GET / HTTP/1.1", b"a.example/x", 1, None, 400),
        (b"GET / HTTP/1.1", b"user@a.example", 1, None, 400),
        (b"GET / HTTP/1.1", b"", 1, None, 400),
        (b"GET / HTTP/1.1", b"a.example:8080", 1, None, OK),
        (b"GET / HTTP/1.1", b"[::1]:8080", 1, None, OK),
        (b"GET / HTTP/1.1", b"127.0.0.1", 1, None, OK),
        (b"GET / HTTP/1.1", b"a.example:x", 1, None, 400),
        (b"GET / HTTP/1.1", b"A.Example.:443", 1, "a.example", OK),  # SNI matches
        (b"GET / HTTP/1.1", b"b.example", 1, "a.example", 421),  # SNI names another
        (b"GET http://b.example/x HTTP/1.1", b"a.example", 1, "a.example", 421),
        (b"GET http:///x HTTP/1.1", b"a.example", 1, None, 400),
        (b"GET http://u@b.example/ HTTP/1.1", b"a.example", 1, None, 400),
        (b"OPTIONS * HTTP/1.1", b"a.example", 1, None, OK),
    ],
)
def test_request_verdicts(
    line: bytes, host: bytes | None, host_lines: int, sni: str | None, expected: int | None
) -> None:
    verdict = judge_request(line, host, host_lines, sni)
    if expected is None:
        assert verdict is None
    else:
        assert isinstance(verdict, Refusal) and verdict.status == expected, verdict


@pytest.mark.parametrize(
    ("line", "host", "line_out"),
    [
        (b"GET http://b.example/x?y HTTP/1.1", b"b.example", b"GET /x?y HTTP/1.1"),
        (b"GET HTTP://b.example:81 HTTP/1.1", b"b.example:81", b"GET / HTTP/1.1"),
        (b"POST https://b.example?q HTTP/1.0", b"b.example", b"POST /?q HTTP/1.0"),
    ],
)
def test_an_absolute_target_names_the_host(line: bytes, host: bytes, line_out: bytes) -> None:
    assert judge_request(line, b"a.example", 1, None) == Retarget(host, line_out)
    assert judge_request(line, None, 0, None) == Retarget(host, line_out)


def test_host_helpers() -> None:
    assert host_name(b"A.example.:80") == b"a.example"
    assert host_name(b"[::1]:80") == b"[::1]"
    assert not valid_host(b"a\x00b")
    assert valid_host(b"xn--bcher-kva.example")
