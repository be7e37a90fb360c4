"""At the descriptor limit (lowered for the daemon by the test): the data plane stops
accepting at ``edge.max_connections``, machines stay passing, the control plane still
answers, and new connections are served again once the load goes."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

if shutil.which("prlimit") is None and not os.environ.get("CI"):
    pytest.skip("needs prlimit (util-linux)", allow_module_level=True)

from tests.hardening.conftest import EdgeFactory, Site, exchange, start_site, status_of, wait_for

NOFILE = 256  # the daemon's RLIMIT_NOFILE: edge.max_connections defaults to (256-64)//2 = 96
CLIENTS = 400


LOWER_NOFILE = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"]


@pytest.fixture
def small_site(edge_factory: EdgeFactory, tmp_path: Path) -> Iterator[Site]:
    with ExitStack() as stack:
        yield start_site(edge_factory, tmp_path, stack, head_timeout=60, wrapper=LOWER_NOFILE)


def test_at_the_fd_limit_machines_stay_passing_and_service_returns(small_site: Site) -> None:
    site = small_site
    assert site.status()["edge"]["max_connections"] == 96
    socks: list[socket.socket] = []
    try:
        for _ in range(CLIENTS):  # idle connections: each holds one of the edge's descriptors
            socks.append(socket.create_connection((site.ips["alpha"], site.http_port), timeout=5))
        wait_for(lambda: not site.status()["edge"]["accepting"], what="accepting to pause")
        edge_state = site.status()["edge"]
        assert 96 <= edge_state["connections"] < 110, edge_state
        # Several check intervals at the limit: the checks still have descriptors.
        until = time.monotonic() + 3
        while time.monotonic() < until:
            assert site.health()["beta-1"] == "passing"
            time.sleep(0.25)
        assert "too many open files" not in site.edge.log().lower()
    finally:
        for sock in socks:
            sock.close()
    ok = b"GET / HTTP/1.0\r\nHost: alpha.edge.test\r\n\r\n"
    wait_for(lambda: site.status()["edge"]["accepting"], what="accepting to resume")
    wait_for(lambda: status_of(exchange(site.ips["alpha"], site.http_port, ok)) == 200)
    assert site.health()["beta-1"] == "passing"


@pytest.fixture
def overcommitted_site(edge_factory: EdgeFactory, tmp_path: Path) -> Iterator[Site]:
    """``edge.max_connections`` set above what the descriptors allow."""
    with ExitStack() as stack:
        yield start_site(
            edge_factory,
            tmp_path,
            stack,
            head_timeout=60,
            wrapper=LOWER_NOFILE,
            edge={"max_connections": 1000},
        )


def test_running_out_of_fds_is_the_edges_state_not_the_machines(overcommitted_site: Site) -> None:
    """Before: every machine went critical with "too many open files" (the checker could
    not open sockets). Now such a check draws no verdict, and the edge reports it as its
    own state. (The API has no descriptor either meanwhile: the log tells.)"""
    site = overcommitted_site
    socks: list[socket.socket] = []
    try:
        for _ in range(CLIENTS):
            socks.append(socket.create_connection((site.ips["alpha"], site.http_port), timeout=5))
        wait_for(lambda: "ran out of file descriptors (health_check" in site.edge.log())
        time.sleep(2)  # several check intervals at the limit
    finally:
        for sock in socks:
            sock.close()
    ok = b"GET / HTTP/1.0\r\nHost: alpha.edge.test\r\n\r\n"
    wait_for(lambda: status_of(exchange(site.ips["alpha"], site.http_port, ok)) == 200)
    assert site.health()["beta-1"] == "passing"
    assert "beta-1 of beta is critical" not in site.edge.log()
    edge_state = site.status()["edge"]
    assert edge_state["fd_exhaustion"] > 0, edge_state
