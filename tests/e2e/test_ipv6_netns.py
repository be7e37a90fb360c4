"""IPv6 listeners, inside a network namespace this test creates (no host setup needed)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool

pytestmark = pytest.mark.e2e
DRIVER = Path(__file__).with_name("netns_ipv6_driver.py")


def test_allocated_ipv6_answers_inside_a_namespace() -> None:
    unshare = require_tool("unshare")
    require_tool("ip")
    # -n: a new network namespace; -r: map us to root inside it when we are not root.
    flags = ["-n"] if os.geteuid() == 0 else ["-rn"]
    result = subprocess.run(
        [unshare, *flags, sys.executable, str(DRIVER)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["status"] == 201
    assert ipaddress.ip_address(found["address"]) in ipaddress.ip_network("fd77:e0::/64")
    assert found["listeners"] and all(row["bound"] for row in found["listeners"])
    assert found["machine"] == "six-lhr"
    assert ipaddress.ip_address(found["client_ip"]).version == 6
