"""Property-based tests of the data plane's parsers: the head scanner, the chunked
framer and the PROXY protocol parser. Random and mutated inputs never raise anything
but the parser's own error, and chunked framing agrees with httptools fed byte by byte.
"""

from __future__ import annotations

import contextlib
import itertools

import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.core.request_rules import Refusal, Retarget, judge_request
from edge.dataplane.contract import ClientInfo
from edge.dataplane.http_framing import ChunkedFramer
from edge.dataplane.http_head import RequestHeadScan, ResponseHeadScan
from edge.dataplane.http_rewrite import RequestRewriter
from edge.dataplane.proxy_protocol import (
    NeedMore,
    ParsedProxy,
    ProxyError,
    build_v1,
    build_v2,
    parse_proxy_header,
)

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn, seed: st.SearchStrategy[bytes]) -> bytes:
    """``seed`` with a few bytes flipped, inserted, deleted or duplicated."""
    data = bytearray(draw(seed))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("flip", "insert", "delete", "repeat")))
        if op == "insert" or not data:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "flip":
            data[min(at, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            data[at:at] = data[max(0, at - 8) : at]
    return bytes(data)


# -- the head scanner ------------------------------------------------------------------

NAMES = st.sampled_from(
    [b"Host", b"host", b"HOST", b"Content-Length", b"Transfer-Encoding", b"Connection",
     b"Upgrade", b"Expect", b"Keep-Alive", b"TE", b"X-Forwarded-For", b"Fly-Region",
     b"Fly-Prefer-Region", b"Fly-Force-Instance-Id", b"Edge-Client-Region", b"X-Other"]
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from([b"a.example", b"0", b"12", b"chunked", b"close", b"keep-alive, x-a",
                     b"upgrade", b"100-continue", b"lhr", b"gzip, chunked"]),
    st.binary(max_size=12).filter(lambda v: b"\r" not in v and b"\n" not in v),
)  # fmt: skip


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS"]))
    target = draw(st.sampled_from([b"/", b"/a?b", b"http://b.example/x", b"*"]))
    version = draw(st.sampled_from([b" HTTP/1.1", b" HTTP/1.0", b"", b" HTTP/2.0"]))
    lines = [method + b" " + target + version]
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(NAMES) + b": " + draw(VALUES))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def scan_head(head: bytes) -> RequestHeadScan | None:
    """Scan and rewrite ``head`` as the relay does; None if the parser rejected it."""
    scan = RequestHeadScan()
    parser = httptools.HttpRequestParser(scan)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError:
        return None
    scan.headers_done = True
    end = head.find(b"\r\n\r\n") + 4
    if end >= 4:
        line = head[: head.find(b"\r\n")]
        verdict = judge_request(line, scan.host, 1 + scan.extra_hosts, None)
        assert verdict is None or isinstance(verdict, Refusal | Retarget)
        rewriter = RequestRewriter("127.0.0.1", 80, False)
        out = rewriter.head_for_machine(head[:end], scan, False, False, "lhr")
        assert out.endswith(b"\r\n\r\n")
    return scan


@BOUNDED
@given(mutated(request_heads()))
def test_the_head_scanner_raises_nothing_but_the_parsers_error(head: bytes) -> None:
    scan_head(head)


@BOUNDED
@given(st.binary(max_size=300))
def test_random_bytes_as_a_head(head: bytes) -> None:
    scan_head(head)


@BOUNDED
@given(mutated(st.builds(lambda h: h.replace(b"GET /", b"HTTP/1.1 200 OK", 1), request_heads())))
def test_the_response_scanner_raises_nothing_but_the_parsers_error(head: bytes) -> None:
    scan = ResponseHeadScan()
    parser = httptools.HttpResponseParser(scan)
    with contextlib.suppress(httptools.HttpParserError):
        parser.feed_data(head)


# -- the chunked framer ------------------------------------------------------------------

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        data = draw(st.binary(min_size=1, max_size=3000))
        size = draw(st.sampled_from(["%x", "%X", "0%x"])) % len(data)
        ext = draw(st.sampled_from([b"", b";a=b", b';q="x y"']))
        out.append(size.encode() + ext + b"\r\n" + data + b"\r\n")
    trailer = draw(st.sampled_from([b"", b"T: 1\r\n", b"A: b\r\nC: d\r\n"]))
    out.append(b"0\r\n" + trailer + b"\r\n")
    return b"".join(out)


def reference_end(body: bytes) -> int | None:
    """Where httptools, fed one byte at a time, finds the message's end (None: error or
    not within ``body``)."""
    scan = RequestHeadScan()
    parser = httptools.HttpRequestParser(scan)
    parser.feed_data(HEAD)
    scan.message_done = False
    for at in range(len(body)):
        try:
            parser.feed_data(body[at : at + 1])
        except httptools.HttpParserError:
            return None
        if scan.message_done:
            return at + 1
    return None


def framed_end(body: bytes, cuts: list[int]) -> int | None:
    """Where the framer finds the end, fed ``body`` in pieces cut at ``cuts``."""
    scan = RequestHeadScan()
    parser = httptools.HttpRequestParser(scan)
    parser.feed_data(HEAD)
    scan.headers_done = True
    framer = ChunkedFramer()
    bounds = [0, *sorted(set(cuts)), len(body)]
    for start, stop in itertools.pairwise(bounds):
        if start == stop:
            continue
        end = framer.scan(body[start:stop], 0, parser, scan)
        if end == -2:
            return None
        if end >= 0:
            return start + end
    return None


@BOUNDED
@given(chunked_bodies(), st.binary(max_size=40), st.lists(st.integers(0, 20000), max_size=5))
def test_chunked_framing_agrees_with_httptools(body: bytes, after: bytes, cuts: list[int]) -> None:
    stream = body + after
    assert reference_end(stream) == len(body)
    assert framed_end(stream, [c for c in cuts if c < len(stream)]) == len(body)


@BOUNDED
@given(mutated(chunked_bodies()), st.lists(st.integers(0, 20000), max_size=5))
def test_mutated_chunked_bodies_frame_as_httptools_does(body: bytes, cuts: list[int]) -> None:
    stream = body + b"GET / HTTP/1.1\r\n"
    expected = reference_end(stream)
    got = framed_end(stream, [c for c in cuts if c < len(stream)])
    assert got == expected


# -- the PROXY protocol parser -------------------------------------------------------------

CLIENTS = st.builds(
    ClientInfo,
    peer_ip=st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "2001:db8::7"]),
    peer_port=st.integers(1, 65535),
    local_ip=st.sampled_from(["127.0.0.2", "::1"]),
    local_port=st.integers(1, 65535),
)
PROXY_HEADERS = st.one_of(
    st.builds(build_v1, CLIENTS),
    st.builds(build_v2, CLIENTS),
    st.just(b"PROXY UNKNOWN\r\n"),
    st.just(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
)


def check_proxy(data: bytes) -> None:
    result = parse_proxy_header(data)
    assert isinstance(result, ParsedProxy | NeedMore | ProxyError)
    if isinstance(result, ParsedProxy):
        assert 0 < result.consumed <= len(data)


@BOUNDED
@given(st.tuples(PROXY_HEADERS, st.binary(max_size=20)).map(lambda t: t[0] + t[1]))
def test_proxy_headers_parse_whole_and_in_prefixes(data: bytes) -> None:
    for end in range(len(data) + 1):
        check_proxy(data[:end])


@BOUNDED
@given(mutated(PROXY_HEADERS))
def test_mutated_proxy_headers_are_values_never_exceptions(data: bytes) -> None:
    check_proxy(data)


@BOUNDED
@given(st.binary(max_size=300))
def test_random_bytes_as_a_proxy_header(data: bytes) -> None:
    check_proxy(data)
