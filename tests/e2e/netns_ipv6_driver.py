"""Run inside a fresh network namespace (see test_ipv6_netns.py): it prints one JSON line.

It routes the v6 pool to loopback (the one route a pool needs), starts the real daemon,
allocates a dedicated IPv6 to an app over the API and fetches a page through it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.api import Api
from tests.integration.daemon import start_edge
from tests.integration.edgeconf import http_app, write_edge_config

PREFIX = "fd77:e0::/64"


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "-6", "route", "add", "local", PREFIX, "dev", "lo"], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        app, port, _ = http_app("six", ["lhr"])
        config = write_edge_config(tmp_path, [app])
        edge = start_edge(tmp_path, config=config)
        try:
            status, body = Api.admin(edge).post("/v1/apps/six/ip_assignments", {"type": "v6"})
            address = body["ip"]
            url = f"http://[{address}]:{port}/hello"
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.loads(response.read())
            result = {
                "status": status,
                "address": address,
                "listeners": body["listeners"],
                "machine": answer["machine_id"],
                "client_ip": answer["headers"]["Fly-Client-IP"],
            }
        finally:
            edge.kill()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
