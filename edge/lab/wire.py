"""The lab's links: pairs of TAP devices joined by a delay line in one process.

Each link of the topology is two TAP devices, one moved into each end's namespace (or
left on the host, for the management bridge), and this process carries every Ethernet
frame from one to the other after the link's delay (``edge.lab.shape.schedule``):
delay, jitter, loss, a rate limit and partitions, changed at run time through a Unix
socket (``scripts/lab fault``). It does what ``tc netem`` on a veth pair would do; the
lab uses it because it needs no kernel module (kernels built without ``sch_netem``,
such as many VM and CI kernels, are common). The devices vanish with the process.

Run as ``python -m edge.lab.wire SPEC.json`` inside the lab's wire namespace; it writes
``ready`` into the spec's ``ready`` path once every device is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import random
import signal
import struct
import subprocess
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.lab.shape import Shape, schedule

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536
QUEUE_LIMIT = 20000  # frames in flight per direction; more are dropped (a full queue)
BATCH = 256  # frames read per wake-up, so one busy link cannot starve the others
EARLY = 0.0004  # seconds: wake up this much early, the loop's timers are ms-grained


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


@dataclass
class Direction:
    """Frames from ``src`` to ``dst`` through the link's current shape."""

    loop: asyncio.AbstractEventLoop
    src: int
    dst: int
    shape: Shape
    rng: random.Random
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None
    last_due: float = 0.0
    free_at: float = 0.0
    passed: int = 0
    dropped: int = 0

    def readable(self) -> None:
        now = self.loop.time()
        for _ in range(BATCH):
            try:
                frame = os.read(self.src, MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return
            decision = schedule(
                self.shape, now, len(frame), self.last_due, self.free_at,
                self.rng.random(), self.rng.random(),
            )  # fmt: skip
            if decision.drop or len(self.queue) >= QUEUE_LIMIT:
                self.dropped += 1
                continue
            self.queue.append((decision.due, frame))
            self.last_due, self.free_at = decision.due, decision.free_at
        self._arm()

    def _arm(self) -> None:
        if self.timer is None and self.queue:
            self.timer = self.loop.call_at(self.queue[0][0] - EARLY, self._flush)

    def _flush(self) -> None:
        self.timer = None
        horizon = self.loop.time() + EARLY
        while self.queue and self.queue[0][0] <= horizon:
            _, frame = self.queue.popleft()
            try:
                os.write(self.dst, frame)
                self.passed += 1
            except OSError:  # the device's queue is full, or it is going away
                self.dropped += 1
        self._arm()


@dataclass
class WireLink:
    name: str
    a2b: Direction
    b2a: Direction

    def state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a2b": {
                **asdict(self.a2b.shape),
                "passed": self.a2b.passed,
                "dropped": self.a2b.dropped,
            },
            "b2a": {
                **asdict(self.b2a.shape),
                "passed": self.b2a.passed,
                "dropped": self.b2a.dropped,
            },
        }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def place(tap: str, ns: str | None, ifname: str, host_pid: int) -> None:
    """Move a TAP device to its end's namespace under its name (the host's: as named)."""
    if ns is None:
        _ip("link", "set", "dev", tap, "netns", str(host_pid))  # the lab sets it up there
        return
    _ip("link", "set", "dev", tap, "netns", ns)
    _ip("-n", ns, "link", "set", "dev", tap, "name", ifname)
    _ip("-n", ns, "link", "set", "dev", ifname, "up")


class Wire:
    def __init__(self, spec: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.loop = loop
        self.links: dict[str, WireLink] = {}
        self.rng = random.Random()

    def build(self) -> None:
        host_pid = int(self.spec["host_pid"])
        for index, link in enumerate(self.spec["links"]):
            taps = tuple(
                end["ifname"] if end["ns"] is None else f"{self.spec['prefix']}-w{index}{side}"
                for side, end in (("a", link["a"]), ("b", link["b"]))
            )
            fds = (open_tap(taps[0]), open_tap(taps[1]))
            for tap, end in zip(taps, (link["a"], link["b"]), strict=True):
                place(tap, end["ns"], end["ifname"], host_pid)
            shape = Shape(delay=float(link["delay"]), jitter=float(link.get("jitter", 0.0)))
            a2b = Direction(self.loop, fds[0], fds[1], shape, self.rng)
            b2a = Direction(self.loop, fds[1], fds[0], shape, self.rng)
            self.loop.add_reader(fds[0], a2b.readable)
            self.loop.add_reader(fds[1], b2a.readable)
            self.links[link["name"]] = WireLink(link["name"], a2b, b2a)

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "get":
            return {"ok": True, "links": [link.state() for link in self.links.values()]}
        if op == "set":
            link = self.links.get(str(request.get("link")))
            if link is None:
                return {"ok": False, "error": f"no link {request.get('link')!r}"}
            shape = Shape(**request["shape"])
            directions = {"a2b": [link.a2b], "b2a": [link.b2a]}.get(
                str(request.get("direction", "both")), [link.a2b, link.b2a]
            )
            for direction in directions:
                direction.shape = shape
            return {"ok": True, "link": link.state()}
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def serve_control(self, path: Path) -> asyncio.AbstractServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                line = await asyncio.wait_for(reader.readline(), 5.0)
                try:
                    answer = self.command(json.loads(line))
                except (ValueError, TypeError, KeyError) as exc:
                    answer = {"ok": False, "error": f"bad request: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
            except (TimeoutError, ConnectionError):
                pass
            finally:
                writer.close()

        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = await asyncio.start_unix_server(handle, path=str(path), limit=1 << 20)
        os.chmod(path, 0o600)
        return server


def control(path: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request to a running wire process (blocking; used by scripts/lab)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


async def run(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    loop = asyncio.get_running_loop()
    wire = Wire(spec, loop)
    try:
        wire.build()
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        Path(spec["ready"]).write_text(f"failed: {detail}", encoding="utf-8")
        raise
    server = await wire.serve_control(Path(spec["control"]))
    Path(spec["ready"]).write_text(f"{os.getpid()}\n", encoding="utf-8")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m edge.lab.wire SPEC.json", file=sys.stderr)
        return 2
    import uvloop

    uvloop.run(run(Path(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
