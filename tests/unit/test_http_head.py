"""Head scanning and rewriting, chunked framing and the edge's own answers (no sockets)."""

from __future__ import annotations

import contextlib

import httptools
import pytest

from edge.dataplane.contract import NoUpstream
from edge.dataplane.http_framing import (
    ChunkedFramer,
    edge_response,
    https_location,
    no_upstream_answer,
)
from edge.dataplane.http_head import RequestHeadScan, ResponseHeadScan
from edge.dataplane.http_rewrite import (
    RequestRewriter,
    cut_headers,
    cut_named,
    head_for_client,
    request_target,
)

TAIL = b"-iad\r\nVia: 1.1 edge\r\n\r\n"


def scan_request(head: bytes) -> RequestHeadScan:
    scan = RequestHeadScan()
    with contextlib.suppress(httptools.HttpParserUpgrade):  # upgrade heads parse all the same
        httptools.HttpRequestParser(scan).feed_data(head)
    scan.headers_done = True
    return scan


def scan_response(head: bytes) -> ResponseHeadScan:
    scan = ResponseHeadScan()
    httptools.HttpResponseParser(scan).feed_data(head)
    scan.headers_done = True
    return scan


def lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")


# -- requests -----------------------------------------------------------------------------


def test_request_scan_reads_hints_and_framing_in_any_case() -> None:
    scan = scan_request(
        b"POST /x HTTP/1.1\r\nHOST: App.Example\r\ncontent-length: 5\r\n"
        b"Fly-Prefer-Region: ams\r\nfly-force-instance-id: m1\r\nEdge-Client-Region: syd\r\n"
        b"Expect: 100-Continue\r\n\r\n"
    )
    assert scan.host == b"App.Example"
    assert scan.content_length == 5 and not scan.chunked
    assert (scan.prefer_region, scan.force_instance, scan.client_region) == (b"ams", b"m1", b"syd")
    assert scan.hinted and scan.expect_continue
    assert scan.cut == [b"Edge-Client-Region"]


def test_request_scan_resets_between_messages() -> None:
    scan = scan_request(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
    assert scan.rare and scan.xff == b"1.2.3.4"
    scan.reset()
    assert scan.host is None and scan.xff is None and scan.cut == [] and not scan.hinted


def test_connection_header_decides_keep_alive_and_names_lines_to_drop() -> None:
    scan = scan_request(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, Host\r\n\r\n")
    assert not scan.keeps_alive(http10=False)
    assert scan.named == {b"x-secret"}  # Host can't be dropped this way
    assert scan_request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keeps_alive(True)
    assert not scan_request(b"GET / HTTP/1.0\r\n\r\n").keeps_alive(True)
    assert scan_request(b"GET / HTTP/1.1\r\n\r\n").keeps_alive(False)


def test_rewritten_request_replaces_spoofable_headers_and_appends_the_edges() -> None:
    head = (
        b"GET /p HTTP/1.1\r\nHost: a\r\nFly-Client-IP: 6.6.6.6\r\nx-forwarded-for: 1.1.1.1\r\n"
        b"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\n"
        b"Upgrade: h2c\r\nX-Forwarded-Port: 443\r\nFly-Region: zzz\r\nX-Keep: 1\r\n\r\n"
    )
    out = RequestRewriter("10.0.0.9", 8080, False).head_for_machine(
        head, scan_request(head), upgrade=False, http10=False, pop="fra"
    )
    assert lines(out) == [
        b"GET /p HTTP/1.1",
        b"Host: a",
        b"X-Forwarded-Port: 443",
        b"X-Keep: 1",
        b"Fly-Client-IP: 10.0.0.9",
        b"X-Forwarded-For: 1.1.1.1, 10.0.0.9",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-SSL: off",
        b"Fly-Forwarded-Port: 8080",
        b"Fly-Region: fra",
        b"",
        b"",
    ]


def test_plain_request_costs_one_append() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    out = RequestRewriter("::1", 443, True).head_for_machine(
        head, scan_request(head), upgrade=False, http10=False, pop="iad"
    )
    assert out.startswith(head[:-2]) and out.endswith(b"\r\n\r\n")
    assert b"X-Forwarded-Proto: https\r\nX-Forwarded-SSL: on\r\n" in out
    assert b"X-Forwarded-Port: 443\r\nFly-Forwarded-Port: 443\r\n" in out


def test_upgrade_and_http10_requests_say_so_to_the_machine() -> None:
    rewriter = RequestRewriter("1.2.3.4", 80, False)
    ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    out = rewriter.head_for_machine(ws, scan_request(ws), upgrade=True, http10=False, pop="iad")
    assert b"Upgrade: websocket\r\n" in out and out.count(b"Connection:") == 1
    assert out.endswith(b"Connection: upgrade\r\n\r\n")
    old = b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"
    out = rewriter.head_for_machine(old, scan_request(old), upgrade=False, http10=True, pop="lhr")
    assert b"Fly-Region: lhr\r\n" in out  # the PoP of each request's client
    assert out.endswith(b"Connection: keep-alive\r\n\r\n")


def test_request_target() -> None:
    assert request_target(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n") == b"/a?b=1"


# -- responses ----------------------------------------------------------------------------


def test_response_scan_framing() -> None:
    assert scan_response(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n").content_length == 12
    chunked = scan_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n")
    assert chunked.chunked and chunked.transfer_coded
    gzip = scan_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert gzip.transfer_coded and not gzip.chunked  # delimited by close


def test_response_keeps_a_plain_keep_alive_line_only_when_the_edge_keeps_alive() -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    kept = head_for_client(head, scan_response(head), False, b"ID", TAIL, plain=True)
    assert kept == head[:-2] + b"Fly-Request-Id: ID" + TAIL
    close_tail = b"-iad\r\nVia: 1.1 edge\r\nConnection: close\r\n\r\n"
    closed = head_for_client(head, scan_response(head), False, b"ID", close_tail, plain=False)
    assert closed.count(b"Connection:") == 1 and b"Connection: close" in closed


def test_response_hop_by_hop_lines_are_cut() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\n"
        b"X-Internal: 1\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nContent-Length: 2\r\n\r\n"
    )
    out = head_for_client(head, scan_response(head), False, b"ID", TAIL, plain=True)
    assert lines(out) == [
        b"HTTP/1.1 200 OK",
        b"Content-Length: 2",
        b"Fly-Request-Id: ID-iad",
        b"Via: 1.1 edge",
        b"",
        b"",
    ]


def test_101_keeps_its_upgrade_line() -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    tail = b"-iad\r\nVia: 1.1 edge\r\nConnection: upgrade\r\n\r\n"
    scan = ResponseHeadScan()
    with pytest.raises(httptools.HttpParserUpgrade):
        httptools.HttpResponseParser(scan).feed_data(head)
    out = head_for_client(head, scan, True, b"ID", tail, plain=False)
    assert b"Upgrade: websocket\r\n" in out and out.count(b"Connection:") == 1


def test_cut_helpers() -> None:
    head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nA: 3\r\n\r\n"
    assert cut_headers(head, [b"A", b"A"]) == b"GET / HTTP/1.1\r\nB: 2\r\n\r\n"
    assert cut_named(head, {b"b"}) == b"GET / HTTP/1.1\r\nA: 1\r\nA: 3\r\n\r\n"


# -- framing and the edge's answers -------------------------------------------------------


BODY = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"


CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def framed(pieces: list[bytes]) -> tuple[list[int], RequestHeadScan]:
    """What ``ChunkedFramer.scan`` says for each piece, fed as the relay feeds them."""
    scan = RequestHeadScan()
    parser = httptools.HttpRequestParser(scan)
    parser.feed_data(CHUNKED_HEAD)
    scan.headers_done = True
    framer = ChunkedFramer()
    return [framer.scan(piece, 0, parser, scan) for piece in pieces], scan


def test_chunked_framer_finds_the_end_in_one_piece() -> None:
    results, scan = framed([BODY + b"GET / HTTP/1.1"])
    assert results == [len(BODY)]
    assert scan.message_done


@pytest.mark.parametrize("step", [1, 2, 3, 7, 2047, 2048, 2049])
def test_chunked_framer_finds_the_end_across_pieces(step: int) -> None:
    body = b"800\r\n" + b"x" * 2048 + b"\r\n" + BODY
    pieces = [body[i : i + step] for i in range(0, len(body), step)]
    results, _ = framed(pieces)
    assert results[:-1] == [-1] * (len(pieces) - 1)
    assert results[-1] == len(pieces[-1])


def test_chunked_framer_ignores_an_end_inside_chunk_data() -> None:
    body = b"a\r\n0\r\n\r\nGET /\r\n0\r\n\r\n"
    assert framed([body + b"GET / HTTP/1.1\r\n"])[0] == [len(body)]


@pytest.mark.parametrize(
    "bad", [b"zz\r\n", b"\r\n", b"0x5\r\nhello\r\n", b"1" * 20 + b"\r\n", b"1\na\n0\n\n"]
)
def test_chunked_framer_rejects_bad_bodies(bad: bytes) -> None:
    assert framed([bad])[0] == [-2]


def test_edge_response_is_complete_http() -> None:
    response = edge_response(503, "nope\n", b"Fly-Request-Id: X\r\n", True, b"Retry-After: 3\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Content-Length: 5" in head and b"Retry-After: 3" in head
    assert b"Connection: close" in head and body == b"nope\n"


def test_no_upstream_answers() -> None:
    text, extra = no_upstream_answer(NoUpstream(503, "all busy", app="shop", retry_after=4), b"h")
    assert "shop" in text and "all busy" in text and extra == b"Retry-After: 4\r\n"
    text, extra = no_upstream_answer(NoUpstream(404, "unknown host"), b"nowhere.example")
    assert "nowhere.example" in text and extra == b""


def test_https_location_drops_the_port() -> None:
    assert https_location(b"a.example:80", b"/p?q") == b"Location: https://a.example/p?q\r\n"
    assert https_location(b"[::1]:8080", b"/") == b"Location: https://[::1]/\r\n"
    assert https_location(b"a.example", b"*") == b"Location: https://a.example/\r\n"
