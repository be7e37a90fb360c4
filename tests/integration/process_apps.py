"""Process machines for integration tests: a small Python server the tests write, and
app configurations whose machines run it."""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.api import Api
from tests.integration.daemon import EdgeProcess, free_port

SERVER = r"""
import http.server, json, os, signal, socketserver, sys, time

args = sys.argv[1:]
def option(name, default=None):
    return args[args.index(name) + 1] if name in args else default

print("booting", os.environ["FLY_MACHINE_ID"], flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
if "--ignore-sigint" in args:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
if option("--exit") is not None:
    print("exiting with", option("--exit"), flush=True)
    sys.exit(int(option("--exit")))
if "--no-listen" in args:
    while True:
        time.sleep(1)
time.sleep(float(option("--slow-start", "0")))

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        env = {k: v for k, v in os.environ.items()
               if k.startswith(("FLY_", "PORT", "PRIMARY_", "EXTRA"))}
        env["pid"] = os.getpid()
        env["cwd"] = os.getcwd()
        body = json.dumps(env).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *a):
        print("served", self.path, flush=True)

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

server = Server((os.environ["FLY_PRIVATE_IP"], int(os.environ["PORT"])), Handler)
exit_after = option("--exit-after")
if exit_after is not None:
    import threading
    threading.Timer(float(exit_after), lambda: os._exit(int(option("--code", "0")))).start()
server.serve_forever()
"""


def write_server(tmp_path: Path) -> Path:
    path = tmp_path / "server.py"
    path.write_text(SERVER)
    return path


def machine_network() -> str:
    """A /16 inside 127/8 for process machines, apart from the IP pools (100-250)."""
    return f"127.{random.randint(30, 99)}.0.0/16"


def process_machine(
    server: Path, machine_id: str, region: str, *args: str, **fields: Any
) -> dict[str, Any]:
    command = [sys.executable, str(server), *args]
    return {"id": machine_id, "region": region, "command": command, **fields}


def process_app(
    name: str, machines: list[dict[str, Any]], primary: str = "lhr", **service: Any
) -> tuple[dict[str, Any], int]:
    port = free_port()
    app = {
        "app": name,
        "primary_region": primary,
        "services": [
            {"internal_port": 8080, "ports": [{"port": port, "handlers": ["http"]}], **service}
        ],
        "machines": machines,
    }
    return app, port


def machine(api: Api, app: str, machine_id: str) -> dict[str, Any]:
    status, body = api.get(f"/v1/apps/{app}/machines/{machine_id}")
    assert status == 200, body
    return dict(body)


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 20.0, edge: EdgeProcess | None = None
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    log = edge.log()[-3000:] if edge is not None else ""
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{log}")


def wait_process_state(
    api: Api, app: str, machine_id: str, state: str, timeout: float = 20.0
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = machine(api, app, machine_id)
        return found if (found.get("process") or {}).get("state") == state else None

    return dict(wait_for(f"{machine_id} to be {state}", check, timeout))


def get(address: str, port: int, path: str = "/", timeout: float = 30.0) -> tuple[int, Any]:
    """One HTTP GET through the edge: (status, JSON body or text)."""
    url = f"http://{address}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def primary_ip(api: Api, app: str) -> str:
    status, body = api.get(f"/v1/apps/{app}/ip_assignments")
    assert status == 200, body
    return str(body["ips"][0]["ip"])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def metric(edge: EdgeProcess, prefix: str) -> float:
    """The sum of every sample whose line starts with ``prefix``."""
    total = 0.0
    for line in edge.get_text("/metrics").splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total
