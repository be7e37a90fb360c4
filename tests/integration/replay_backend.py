"""A real HTTP backend for fly-replay tests: one server per machine, run in threads.

Each machine answers from what the request asks of it, so one daemon serves every
test: a request header ``X-Replay-On-<machine>: <fly-replay value>`` makes that machine
answer with the header form, ``X-Replay-Json-On-<machine>: <json>`` with the JSON form
(``X-Replay-Chunked: 1``: in chunks), ``X-Replay-Always: <value>`` makes every machine
replay (unless the request is a fallback), ``X-Replay-Cache-On-<machine>: <prefix>``
adds ``fly-replay-cache`` to the replay answer, ``X-Replay-Early-On-<machine>`` answers
before the request's body arrived. Otherwise a machine answers 200 with
JSON naming itself and echoing the request (headers as received, body length, hash).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _MachineServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        name = self.server.machine
        early = self.headers.get(f"x-replay-early-on-{name}")
        if early is not None:  # answer before reading the body, then close
            self.close_connection = True
            self._send(200, {"fly-replay": early, "Connection": "close"}, b"")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        failed = self.headers.get("fly-replay-failed")
        replay = self.headers.get(f"x-replay-on-{name}") or self.headers.get("x-replay-always")
        as_json = self.headers.get(f"x-replay-json-on-{name}")
        if failed is None and as_json is not None:
            content_type = {"Content-Type": "application/vnd.fly.replay+json"}
            if self.headers.get("x-replay-chunked"):
                self._send_chunked(content_type, as_json.encode())
            else:
                self._send(200, content_type, as_json.encode())
            return
        if failed is None and replay is not None:
            extra = {"fly-replay": replay}
            cache = self.headers.get(f"x-replay-cache-on-{name}")
            if cache:
                extra["fly-replay-cache"] = cache
                extra["fly-replay-cache-ttl-secs"] = "10"
            self._send(200, extra, b"replaying elsewhere")
            return
        answer = {
            "machine": name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        self._send(200, {"Content-Type": "application/json"}, json.dumps(answer).encode())

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", self.server.machine)
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, headers: dict[str, str], body: bytes) -> None:
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 5):
            piece = body[start : start + 5]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = _serve


class _MachineServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, machine: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.machine = machine


@contextmanager
def replay_backends(names: list[str]) -> Iterator[dict[str, int]]:
    """One backend per machine name; yields their ports."""
    servers = {name: _MachineServer(name) for name in names}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield {name: s.server_address[1] for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@contextmanager
def unreachable_port() -> Iterator[int]:
    """A loopback port where a connect neither succeeds nor is refused (a full backlog)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue: later SYNs are dropped, connects hang
            filler = socket.socket()
            filler.setblocking(False)
            with suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        yield listener.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
