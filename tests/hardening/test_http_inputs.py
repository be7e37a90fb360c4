"""Hostile and odd HTTP inputs against the real daemon: what the edge answers, and what
reached a machine (each machine records every byte it gets)."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from tests.hardening.conftest import (
    HEAD_TIMEOUT,
    Site,
    exchange,
    read_all,
    status_of,
    tls_exchange,
    wait_for,
)

H = b"alpha.edge.test"


BAD_REQUESTS = [
    (b"GET /\r\n\r\n", 400),  # HTTP/0.9
    (b"GET /\r\nHost: alpha.edge.test\r\n\r\n", 400),  # version-less, with headers
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),  # the HTTP/2 preface
    (b"GET / HTTP/2.0\r\nHost: alpha.edge.test\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\nHost: alpha.edge.test\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: alpha.edge.test\r\nHost: beta.edge.test\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: beta.edge.test\r\nhost: alpha.edge.test\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without Host
    (b"GET / HTTP/1.1\r\nHost: alpha.edge.test/x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (b"GET http://u@alpha.edge.test/ HTTP/1.1\r\nHost: alpha.edge.test\r\n\r\n", 400),
    (b"GET http:///x HTTP/1.1\r\nHost: alpha.edge.test\r\n\r\n", 400),
]


def test_bad_requests_are_answered_by_the_edge_and_never_forwarded(site: Site) -> None:
    for request_bytes, status in BAD_REQUESTS:
        for address in (site.shared, site.ips["alpha"]):
            answer = exchange(address, site.http_port, request_bytes)
            assert status_of(answer) == status, (request_bytes, answer)
            head = answer.partition(b"\r\n\r\n")[0]
            assert head.lower().count(b"\r\nconnection: close") == 1, head
    assert site.forwarded() == b""


def test_http09_floods_do_not_eject_the_machine(site: Site) -> None:
    """Before: each was forwarded, the machine's HTTP/0.9-style answer counted as a 502,
    and after five the machine was ejected for everyone."""
    for _ in range(12):
        exchange(site.ips["alpha"], site.http_port, b"GET /\r\nX: y\r\n\r\n")
    answer = exchange(site.ips["alpha"], site.http_port, b"GET / HTTP/1.0\r\n\r\n")
    assert status_of(answer) == 200, answer
    machine = next(a for a in site.status()["apps"] if a["name"] == "alpha")["machines"][0]
    assert not machine["ejected"], machine


def test_an_absolute_target_is_routed_by_its_authority(site: Site) -> None:
    request = b"GET http://beta.edge.test/x?y HTTP/1.1\r\nHost: alpha.edge.test\r\n\r\n"
    answer = exchange(site.shared, site.http_port, request)
    assert status_of(answer) == 200
    assert answer.endswith(b"beta beta.edge.test /x?y"), answer
    got = site.from_clients("beta")
    assert got.startswith(b"GET /x?y HTTP/1.1\r\nHost: beta.edge.test\r\n"), got
    assert b"alpha.edge.test" not in got
    assert site.from_clients("alpha") == b""


def test_a_host_other_than_the_sni_is_misdirected(site: Site) -> None:
    other = b"GET / HTTP/1.1\r\nHost: beta.edge.test\r\nConnection: close\r\n\r\n"
    for address in (site.shared, site.ips["alpha"]):
        answer = tls_exchange(address, site.tls_port, "alpha.edge.test", other)
        assert status_of(answer) == 421, answer
    assert site.forwarded() == b""
    same = b"GET / HTTP/1.1\r\nHost: Alpha.edge.test:443\r\nConnection: close\r\n\r\n"
    answer = tls_exchange(site.shared, site.tls_port, "alpha.edge.test", same)
    assert status_of(answer) == 200 and answer.endswith(b"/"), answer


def test_the_edge_answers_head_without_a_body(site: Site) -> None:
    requests = b"HEAD / HTTP/1.1\r\nHost: nobody.edge.test\r\n\r\n" * 2
    answer = exchange(site.shared, site.http_port, requests)
    assert answer.count(b"HTTP/1.1 404") == 2, answer
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: " in first
    assert rest.startswith(b"HTTP/1.1 404"), rest  # nothing between the two heads


def test_empty_lines_before_a_request_are_allowed(site: Site) -> None:
    answer = exchange(
        site.shared, site.http_port, b"\r\n\r\n\r\nGET / HTTP/1.0\r\nHost: %s\r\n\r\n" % H
    )
    assert status_of(answer) == 200, answer


def test_a_flood_of_empty_lines_is_a_400_not_a_crash(site: Site) -> None:
    started = time.monotonic()
    answer = exchange(site.shared, site.http_port, b"\r\n" * 50_000)
    assert status_of(answer) == 400, answer
    assert time.monotonic() - started < HEAD_TIMEOUT
    assert "RecursionError" not in site.edge.log()


def test_empty_lines_do_not_reset_the_head_deadline(site: Site) -> None:
    """Before: ``\\r\\n\\r`` then ``\\n`` completed an empty head and reset the deadline."""
    with socket.create_connection((site.shared, site.http_port), timeout=10) as sock:
        started = time.monotonic()
        answer = b""
        for _ in range(int(4 * HEAD_TIMEOUT / 0.2)):
            try:
                sock.sendall(b"\r\n\r")
                time.sleep(0.1)
                sock.sendall(b"\n")
                time.sleep(0.1)
            except OSError:
                break
        sock.settimeout(2 * HEAD_TIMEOUT)
        answer = read_all(sock)
        assert status_of(answer) == 408, answer
        assert time.monotonic() - started < 3 * HEAD_TIMEOUT


def test_slowloris_on_the_data_plane_is_cut_at_the_head_deadline(site: Site) -> None:
    socks = [socket.create_connection((site.shared, site.http_port), timeout=5) for _ in range(50)]
    try:
        started = time.monotonic()
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: alpha.edge.test\r\n")
        deadline = started + 4 * HEAD_TIMEOUT
        while time.monotonic() < deadline:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.2)
        answers = []
        for sock in socks:
            sock.settimeout(1)
            answers.append(status_of(read_all(sock)))
        assert answers == [408] * len(socks)
    finally:
        for sock in socks:
            sock.close()
    assert site.forwarded() == b""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_pipelined_requests_the_edge_answers_wait_for_the_client_to_read(site: Site) -> None:
    """A client that pipelines 404s and never reads: the edge must stop reading it, as
    it does on the proxied path, instead of queueing every answer in memory."""
    request = b"GET / HTTP/1.1\r\nHost: nobody.edge.test\r\n\r\n"
    batch = request * 2000
    sent, before = 0, rss_kib(site.edge.proc.pid)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((site.shared, site.http_port))
        sock.setblocking(False)
        blocked_since, deadline = None, time.monotonic() + 20
        while time.monotonic() < deadline and sent < 60_000_000:
            try:
                sent += sock.send(batch)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 1.0:
                    break  # the edge stopped reading: what we wanted
                time.sleep(0.01)
        grown = rss_kib(site.edge.proc.pid) - before
        # Answers are ~6x the size of these requests: queueing them all would be 100s of MB.
        assert grown < 40_000, (sent, grown)
        assert sent < 30_000_000, sent
        assert site.edge.proc.poll() is None
    ok = b"GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % H
    wait_for(lambda: status_of(exchange(site.shared, site.http_port, ok)) == 200)
