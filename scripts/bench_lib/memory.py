"""The edge's memory and fds per idle proxied TCP connection.

The bench process itself is the client: plain non-blocking sockets, opened in batches so
the edge's accept backlog never overflows (a dropped SYN costs a 1 s retransmit).
"""

from __future__ import annotations

import os
import re
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench_lib.procs import raise_nofile


def proc_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else 0


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def open_idle(port: int, count: int, batch: int = 250) -> Iterator[list[socket.socket]]:
    """Open ``count`` connections in batches (non-blocking connects, then wait writable)."""
    for start in range(0, count, batch):
        socks: list[socket.socket] = []
        selector = selectors.DefaultSelector()
        for _ in range(min(batch, count - start)):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            selector.register(sock, selectors.EVENT_WRITE)
            socks.append(sock)
        pending = len(socks)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                selector.unregister(key.fileobj)
                pending -= 1
        selector.close()
        yield socks


def idle_connections(pid: int, port: int, count: int) -> dict[str, Any]:
    """Hold ``count`` idle connections through the edge (pid, raw TCP port); RSS and fds."""
    raise_nofile()  # this process holds them all: up to the hard limit (20,000 here)
    for warm in open_idle(port, min(200, count)):  # code paths and allocator pools warm
        time.sleep(0.3)
        for sock in warm:
            sock.close()
    time.sleep(1.0)  # let the edge finish closing them
    base_fds, base_rss = proc_fds(pid), proc_rss_kib(pid)
    held: list[socket.socket] = []
    for socks in open_idle(port, count):
        held += socks
        # Proxied means both halves exist: the edge holds 2 fds per client connection.
        want = base_fds + 2 * len(held)
        wait_until(lambda: proc_fds(pid) >= want, 20)  # noqa: B023 - used at once
    time.sleep(1.0)
    open_fds, open_rss = proc_fds(pid), proc_rss_kib(pid)
    for sock in held:
        sock.close()
    closed_at = time.monotonic()
    back = wait_until(lambda: proc_fds(pid) <= base_fds, 30)
    result = {
        "connections": count,
        "proxied": (open_fds - base_fds) // 2,
        "baseline_rss_kib": base_rss,
        "rss_kib_with_connections": open_rss,
        "kib_per_connection": round((open_rss - base_rss) / count, 2),
        "baseline_fds": base_fds,
        "fds_with_connections": open_fds,
        "fds_after_close": proc_fds(pid),
        "fds_back_to_baseline": back,
        "seconds_to_release": round(time.monotonic() - closed_at, 2),
        "rss_kib_after_close": proc_rss_kib(pid),
    }
    return result
