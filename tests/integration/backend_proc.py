"""A backend machine as its own process, for failover tests: kill it, hang it, restart it.

    python backend_proc.py PORT NAME [--hang]

It answers every request with ``backend NAME``; ``/healthz`` answers ok. With --hang it
accepts connections and never answers (a hung machine).
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    name = b"?"

    def do_GET(self) -> None:
        body = b"backend " + self.name
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def hang(port: int) -> None:
    server = socket.create_server(("127.0.0.1", port), reuse_port=False)
    held = []
    while True:
        conn, _ = server.accept()
        held.append(conn)  # keep it open, say nothing


def main() -> int:
    port, name = int(sys.argv[1]), sys.argv[2]
    if "--hang" in sys.argv:
        hang(port)
        return 0
    Handler.name = name.encode()
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
