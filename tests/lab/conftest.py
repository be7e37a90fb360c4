"""The anycast lab's fixtures: one three-PoP lab per module, under its own name prefix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

PREFIX = "elabt"  # not the interactive lab's "elab": a user's lab and the tests do not meet


def require_lab() -> None:
    """Skip without root or the tools, except under CI where that is a failure."""
    for tool in ("ip", "bird", "birdc", "ping", "curl"):
        require_tool(tool)
    message = ""
    if os.geteuid() != 0:
        message = "the anycast lab needs root (network namespaces, BIRD)"
    elif not os.path.exists("/dev/net/tun"):
        message = "the anycast lab's links need /dev/net/tun (the tun module)"
    if message:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {message}")
        pytest.skip(message)


@dataclass
class Lab:
    prefix: str
    state_base: Path
    _pops: list[dict[str, Any]] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "EDGE_LAB_PREFIX": self.prefix, "EDGE_LAB_DIR": str(self.state_base)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "edge.lab.cli", *args],
            capture_output=True, text=True, env=self.env, timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"scripts/lab {' '.join(args)}: {result.stderr}{result.stdout}")
        return result

    @property
    def pops(self) -> list[dict[str, Any]]:
        if self._pops is None:
            self._pops = self.status()["pops"]
        return self._pops

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.run("status", "--json").stdout)
        return data

    def exec(
        self, region: str, *argv: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.run("exec", region, "--", *argv, check=False, timeout=timeout)


@pytest.fixture
def lab_dir() -> Iterator[Path]:
    """A state directory the postgres user can enter (pytest's tmp dirs are 0700)."""
    with tempfile.TemporaryDirectory(prefix="edge-lab-", dir="/tmp") as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_lab()
    with tempfile.TemporaryDirectory(prefix="edge-lab-", dir="/tmp") as folder:
        os.chmod(folder, 0o755)
        lab = Lab(PREFIX, Path(folder))
        try:
            lab.run("up", "--pops", "lhr,iad,syd", "--clients", "lhr,iad,syd,nrt")
            yield lab
        finally:
            lab.run("down", check=False)
