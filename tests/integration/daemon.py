"""Starting the real ``edge serve`` as a process for integration tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EdgeProcess:
    """A running daemon: its process, API URL, state directory and captured stderr."""

    proc: subprocess.Popen[bytes]
    api: str
    state_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.api}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get_json(self, path: str, token: str | None = None) -> Any:
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return str(response.read().decode())

    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def edge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", *args]


def start_edge(
    tmp_path: Path,
    config: Path | None = None,
    extra: Sequence[str] = (),
    state_dir: Path | None = None,
    wait: bool = True,
    api_port: int | None = None,
    wrapper: Sequence[str] = (),
) -> EdgeProcess:
    """Start ``edge serve`` on a free API port; wait until /healthz answers.

    ``wrapper`` goes before the command (``["prlimit", "--nofile=256:256", "--"]``)."""
    state_dir = state_dir or tmp_path / "state"
    api = f"127.0.0.1:{api_port or free_port()}"
    log_path = tmp_path / f"edge-{api.replace(':', '-')}.log"
    args = ["serve", "--state-dir", str(state_dir), "--api", api, *extra]
    if config is not None:
        args[1:1] = ["--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*wrapper, *edge_command(*args)], stderr=log, stdout=log, env=env, cwd=ROOT
        )
    edge = EdgeProcess(proc=proc, api=api, state_dir=state_dir, log_path=log_path, env=env)
    if wait:
        wait_healthy(edge)
    return edge


def wait_healthy(edge: EdgeProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if edge.proc.poll() is not None:
            raise RuntimeError(f"edge exited with {edge.proc.returncode}:\n{edge.log()}")
        try:
            edge.get_json("/healthz")
            return
        except OSError:
            time.sleep(0.05)
    edge.kill()
    raise RuntimeError(f"edge did not become healthy in {timeout}s:\n{edge.log()}")
