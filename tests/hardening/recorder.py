"""A backend that records every byte it receives, so "never forwarded" can be checked.

It speaks HTTP/1.1 keep-alive through httptools: each complete request is answered
``200`` with a body naming the backend, the Host and the target it saw (an HTTP/0.9
request gets the bare body, as servers such as Python's http.server answer it).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httptools

KEEP = 1 << 20  # bytes kept per connection for the tests to look at (the rest is counted)


@dataclass
class Received:
    """What one backend got: the first bytes of each connection, and the totals."""

    name: str
    connections: list[bytearray] = field(default_factory=list)
    total: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def everything(self) -> bytes:
        with self.lock:
            return b"".join(bytes(c) for c in self.connections)


class _Request:
    def __init__(self) -> None:
        self.url = b""
        self.host = b""
        self.done = 0
        self.parser: httptools.HttpRequestParser | None = None
        self.versions: list[str] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"host":
            self.host = value

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.versions.append(self.parser.get_http_version())

    def on_message_complete(self) -> None:
        self.done += 1


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        received = self.server.received
        kept = bytearray()
        with received.lock:
            received.connections.append(kept)
        request = _Request()
        parser = request.parser = httptools.HttpRequestParser(request)
        answered = 0
        try:
            while data := sock.recv(262144):
                with received.lock:
                    received.total += len(data)
                    if len(kept) < KEEP:
                        kept += data[: KEEP - len(kept)]
                parser.feed_data(data)
                while answered < request.done:
                    answered += 1
                    with received.lock:
                        received.requests += 1
                    body = b"%s %s %s" % (received.name.encode(), request.host, request.url)
                    request.url = b""
                    if request.versions[answered - 1] == "0.9":
                        sock.sendall(body)  # as servers answer HTTP/0.9: no status line
                        return
                    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                    sock.sendall(head + body)
        except (OSError, httptools.HttpParserError):
            return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, received: Received) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received = received


@contextmanager
def recording_backend(name: str) -> Iterator[tuple[int, Received]]:
    """A keep-alive HTTP/1.1 backend on 127.0.0.1 recording all it receives."""
    received = Received(name)
    server = _Server(received)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
