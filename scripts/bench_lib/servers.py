"""The backend and HAProxy configurations of shared/reference/bench-baseline.md.

Only what a one-off run on a scratch directory needs was added: file paths (pid, temp
directories) inside the work directory, and nginx's connection limit raised from 4096
to 20000 so the memory test's 8,000 idle connections reach the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

BACKEND_BODY = b"hello from backend\n"


def nginx_config(port: int, workdir: Path) -> str:
    temp = "\n".join(
        f"  {kind}_temp_path {workdir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {workdir}/nginx.pid;
events {{ worker_connections 20000; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{ return 200 "hello from backend\\n"; }}
  }}
}}
"""


def haproxy_config(http_port: int, tcp_port: int, backend_port: int, nbthread: int = 1) -> str:
    return f"""global
  nbthread {nbthread}
  maxconn 4000
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe_http
  mode http
  bind 127.0.0.1:{http_port}
  default_backend be_http
backend be_http
  mode http
  http-reuse always
  server s1 127.0.0.1:{backend_port}
frontend fe_tcp
  mode tcp
  bind 127.0.0.1:{tcp_port}
  default_backend be_tcp
backend be_tcp
  mode tcp
  server s1 127.0.0.1:{backend_port}
"""


_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BACKEND_BODY),
    BACKEND_BODY,
)
_RESPONSE_CLOSE = _RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)


class _Backend(asyncio.Protocol):
    """Answers every GET with the body above; honours Connection: close. Bodies: none."""

    def __init__(self) -> None:
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end].lower(), self.buf[end + 4 :]
            if b"\nconnection: close" in head:
                self.transport.write(_RESPONSE_CLOSE)
                self.transport.close()
                return
            self.transport.write(_RESPONSE)


def run_own_backend(port: int) -> None:
    """The fallback when nginx is missing (a weaker ceiling: Python, one process)."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Backend, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    with runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(serve())
