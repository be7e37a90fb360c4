"""Real backend servers for integration tests, run in a thread of the test process."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Recorder:
    """What a backend received: the first bytes of each connection."""

    first_bytes: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, data: bytes) -> None:
        with self.lock:
            self.first_bytes.append(data)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return
        self.server.recorder.add(data)
        body = b"backend " + self.server.name
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: bytes, recorder: Recorder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.recorder = recorder


@contextmanager
def recording_backend(name: str) -> Iterator[tuple[int, Recorder]]:
    """An HTTP/1.1 backend on 127.0.0.1 that records each connection's first bytes."""
    recorder = Recorder()
    server = _Server(name.encode(), recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], recorder
    finally:
        server.shutdown()
        server.server_close()
