"""A tiny HTTP client for tests: (status, JSON body) from the daemon's API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.integration.daemon import ROOT, EdgeProcess


@dataclass
class Api:
    base: str
    token: str | None

    @classmethod
    def admin(cls, edge: EdgeProcess) -> Api:
        return cls(edge.url, edge.token())

    def call(
        self, method: str, path: str, body: object = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                return response.status, json.loads(payload) if payload else None
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            return exc.code, json.loads(payload) if payload else None

    def get(self, path: str) -> tuple[int, Any]:
        return self.call("GET", path)

    def post(self, path: str, body: object = None) -> tuple[int, Any]:
        return self.call("POST", path, body if body is not None else {})

    def delete(self, path: str) -> tuple[int, Any]:
        return self.call("DELETE", path)


def edgectl(
    edge: EdgeProcess, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``edgectl`` against ``edge`` (token from the state dir by default)."""
    env = {**os.environ, "EDGE_API_URL": edge.url, "EDGE_STATE_DIR": str(edge.state_dir)}
    env.pop("EDGE_API_TOKEN", None)
    if token is not None:
        env["EDGE_API_TOKEN"] = token
    command = [sys.executable, "-c", "from edge.cli.edgectl import main; raise SystemExit(main())"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT
    )
