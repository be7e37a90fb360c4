"""The API port cannot be held open: slow heads, slow bodies, floods and huge headers.

Against the real daemon with ``api.headers_read_timeout: 2s`` and ``body_read_timeout: 2s``:
300 slowloris connections (a header line every 0.3 s, never finishing) are all closed
within a bounded time while ``/healthz`` keeps answering; a flood of empty lines cannot
push the deadline; oversized or too many headers get 400 at once; a body that never
finishes gets 408.
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from tests.integration.daemon import EdgeProcess, start_edge
from tests.integration.edgeconf import write_edge_config

TIMEOUT = 2.0
SLOWLORIS = 300


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("control-timeouts")
    path = write_edge_config(tmp, [])
    config = yaml.safe_load(path.read_text())
    config["api"] = {"headers_read_timeout": f"{TIMEOUT}s", "body_read_timeout": f"{TIMEOUT}s"}
    path.write_text(yaml.safe_dump(config))
    process = start_edge(tmp, config=path)
    yield process
    process.kill()


def connect(edge: EdgeProcess) -> socket.socket:
    host, port = edge.api.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def read_all(sock: socket.socket, limit: float = 10.0) -> bytes:
    sock.settimeout(limit)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_slowloris_connections_are_all_closed_after_the_header_timeout(
    edge: EdgeProcess,
) -> None:
    socks = [connect(edge) for _ in range(SLOWLORIS)]
    started = time.monotonic()
    for sock in socks:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    open_socks = list(socks)
    healthz_ok = healthz_tries = 0
    while open_socks and time.monotonic() - started < TIMEOUT + 8:
        for sock in open_socks:
            # A closed socket (or a full buffer) raises: is_closed below tells which.
            with contextlib.suppress(OSError):
                sock.send(b"X-Slow: 1\r\n", socket.MSG_DONTWAIT)
        open_socks = [s for s in open_socks if not is_closed(s)]
        healthz_tries += 1
        with urllib.request.urlopen(edge.url + "/healthz", timeout=5) as answer:
            healthz_ok += answer.status == 200
        time.sleep(0.3)
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    assert not open_socks, f"{len(open_socks)} of {SLOWLORIS} still open after {elapsed:.1f}s"
    assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + 8  # not before the timeout, soon after it
    assert healthz_ok == healthz_tries >= 1  # the API kept answering meanwhile


def test_a_flood_of_empty_lines_does_not_move_the_deadline(edge: EdgeProcess) -> None:
    started = time.monotonic()
    with connect(edge) as sock:
        while time.monotonic() - started < TIMEOUT + 8:
            try:
                sock.sendall(b"\r\n" * 2000)
            except OSError:
                break  # closed by the edge
            if is_closed(sock):
                break
            time.sleep(0.1)
        else:
            pytest.fail("a connection sending only empty lines was never closed")
    assert time.monotonic() - started <= TIMEOUT + 8


def test_empty_lines_before_a_request_are_skipped(edge: EdgeProcess) -> None:
    with connect(edge) as sock:
        sock.sendall(
            b"\r\n" * 5000 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert read_all(sock).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Many: a\r\n" * 1000 + b"\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["one huge header", "1000 headers", "huge target"],
)
def test_oversized_heads_get_400_at_once(edge: EdgeProcess, head: bytes) -> None:
    started = time.monotonic()
    with connect(edge) as sock:
        with contextlib.suppress(ConnectionResetError):  # answered before all was sent
            sock.sendall(head)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    assert time.monotonic() - started < TIMEOUT
    assert "Traceback" not in edge.log()


def test_a_body_that_never_finishes_gets_408(edge: EdgeProcess) -> None:
    head = (
        b"POST /v1/apps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + edge.token().encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    started = time.monotonic()
    with connect(edge) as sock:
        sock.sendall(head)
        answer = read_all(sock, limit=TIMEOUT + 8)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"Connection: close" in answer
    assert TIMEOUT * 0.9 <= time.monotonic() - started <= TIMEOUT + 8


def test_an_idle_keep_alive_connection_is_closed_too(edge: EdgeProcess) -> None:
    with connect(edge) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = read_all(sock, limit=TIMEOUT + 8)  # the answer, then the close
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started <= TIMEOUT + 8
