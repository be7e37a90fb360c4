"""Helpers run as their own processes, so their CPU does not share the test's GIL.

``python -m tests.hardening.load_proc sink``: an HTTP/1.1 keep-alive server on a free
port of 127.0.0.1 (printed on stdout) that answers every request ``200 ok`` after
reading its body (httptools, C speed). ``... upload HOST PORT HOSTNAME BYTES``: one
chunked upload of 1-byte chunks; prints its status code and the seconds it took.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import httptools

CHUNK = b"1\r\na\r\n"


class _Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.transport is not None:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def _sink() -> None:
    server = await asyncio.get_running_loop().create_server(_Sink, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def _upload(host: str, port: int, name: str, size: int) -> None:
    piece = CHUNK * (1_000_000 // len(CHUNK))
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=120) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" % name.encode()
        )
        sent = 0
        while sent < size:
            sock.sendall(piece)
            sent += len(piece)
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = answer[9:12].decode() or "0"
    print(status, f"{time.monotonic() - started:.3f}", flush=True)


def main() -> None:
    if sys.argv[1] == "sink":
        asyncio.run(_sink())
    else:
        _upload(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))


if __name__ == "__main__":
    main()
