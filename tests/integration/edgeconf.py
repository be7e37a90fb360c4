"""Configurations for integration tests: unique address pools and free ports."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from tests.integration.daemon import free_port


def unique_pool() -> tuple[str, str]:
    """A /16 inside 127/8 that no demo daemon uses (127.77/16), and its shared address."""
    second = random.randint(100, 250)
    return f"127.{second}.0.0/16", f"127.{second}.255.254"


def demo_machines(app: str, regions: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"{app}-{region}", "region": region, "demo": True} for region in regions]


def write_edge_config(tmp_path: Path, apps: list[dict[str, Any]], **edge: Any) -> Path:
    pool, shared = unique_pool()
    config = {
        "edge": {
            "pops": ["lhr", "iad", "syd", "nrt"],
            "local_region": "lhr",
            "clients": [
                {"cidr": "127.1.0.0/16", "region": "syd"},
                {"cidr": "127.2.0.0/16", "region": "iad"},
            ],
            **edge,
        },
        "ipam": {"pools": {"v4": [pool]}, "shared_v4": shared},
        "drain_timeout": "5s",
        "apps": apps,
    }
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def http_app(name: str, regions: list[str], **service: Any) -> tuple[dict[str, Any], int, int]:
    """An app with an http port and a tls+http port on demo machines; returns the ports."""
    http_port, tls_port = free_port(), free_port()
    app = {
        "app": name,
        "primary_region": regions[0],
        "services": [
            {
                "internal_port": 8080,
                "ports": [
                    {"port": http_port, "handlers": ["http"]},
                    {"port": tls_port, "handlers": ["tls", "http"]},
                ],
                **service,
            }
        ],
        "machines": demo_machines(name, regions),
    }
    return app, http_port, tls_port
