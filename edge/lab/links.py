"""The lab's links, made one of two ways, and their shapes changed at run time.

``wire`` (the default): TAP pairs joined by the delay line process (``edge.lab.wire``);
it needs only ``/dev/net/tun``. ``netem``: veth pairs with a ``tc netem`` qdisc on each
end, for kernels built with ``sch_netem`` (``netem_available`` says). Both carry the same
``Shape`` (``edge.lab.shape``): delay from the latency model, then the faults of
``scripts/lab fault``. The current shape of every link is kept in ``links.json`` in the
state directory, the one place ``fault`` reads and writes.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Literal

from edge.lab.netns import LabError, in_ns, ip, run, spawn, wait_for
from edge.lab.shape import Shape, netem_args
from edge.lab.topology import Link, Topology
from edge.lab.wire import control

Backend = Literal["wire", "netem"]
BACKENDS: tuple[Backend, ...] = ("wire", "netem")


def netem_available(scratch_ns: str) -> bool:
    """Whether this kernel has ``sch_netem``: tried on a scratch veth in ``scratch_ns``."""
    ip("link", "add", "name", "nx0", "type", "veth", "peer", "name", "nx1", ns=scratch_ns)
    try:
        result = in_ns(scratch_ns, "tc", "qdisc", "add", "dev", "nx0", "root", "netem",
                       "delay", "1ms", check=False)  # fmt: skip
        return result.returncode == 0
    finally:
        ip("link", "del", "nx0", ns=scratch_ns, check=False)


def make_links(topology: Topology, state: Path, backend: Backend) -> None:
    if backend == "netem":
        if not netem_available(topology.wire_ns):
            raise LabError(
                "--links netem: this kernel has no sch_netem (CONFIG_NET_SCH_NETEM); "
                "use --links wire, the delay line, which needs only /dev/net/tun"
            )
        for link in topology.links:
            _veth(link)
    else:
        _start_wire(topology, state)
    shapes = {link.name: Shape(delay=link.delay, jitter=link.jitter) for link in topology.links}
    save_shapes(state, backend, shapes)
    if backend == "netem":
        for link in topology.links:
            _tc(link, shapes[link.name], "add")


def _veth(link: Link) -> None:
    a = ["name", link.a.ifname] + (["netns", link.a.ns] if link.a.ns else [])
    b = ["name", link.b.ifname] + (["netns", link.b.ns] if link.b.ns else [])
    ip("link", "add", *a, "type", "veth", "peer", *b)
    for end in (link.a, link.b):
        ip("link", "set", end.ifname, "up", ns=end.ns)


def _tc(link: Link, shape: Shape, verb: str) -> None:
    for end in (link.a, link.b):
        command = ["tc", "qdisc", verb, "dev", end.ifname, "root", "netem", *netem_args(shape)]
        if end.ns is None:
            run(*command)
        else:
            in_ns(end.ns, *command)


def _start_wire(topology: Topology, state: Path) -> None:
    links = [
        {"name": link.name,
         "a": {"ns": link.a.ns, "ifname": link.a.ifname},
         "b": {"ns": link.b.ns, "ifname": link.b.ifname},
         "delay": link.delay, "jitter": link.jitter}
        for link in topology.links
    ]  # fmt: skip
    spec = {
        "prefix": topology.prefix, "host_pid": os.getpid(), "links": links,
        "control": str(state / "wire.sock"), "ready": str(state / "wire.ready"),
    }  # fmt: skip
    (state / "wire.json").write_text(json.dumps(spec), encoding="utf-8")
    spawn(topology.wire_ns, [sys.executable, "-m", "edge.lab.wire", str(state / "wire.json")],
          state / "logs" / "wire.log")  # fmt: skip
    ready = state / "wire.ready"
    wait_for("the lab's links (see logs/wire.log)", ready.exists, 30)
    text = ready.read_text(encoding="utf-8")
    if text.startswith("failed"):
        raise LabError(f"cannot make the lab's links: {text.removeprefix('failed: ').strip()}")


def save_shapes(state: Path, backend: Backend, shapes: dict[str, Shape]) -> None:
    data = {"backend": backend, "links": {name: asdict(s) for name, s in shapes.items()}}
    tmp = state / ".links.json.tmp"
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(state / "links.json")


def load_shapes(state: Path) -> tuple[Backend, dict[str, Shape]]:
    try:
        data = json.loads((state / "links.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise LabError("the lab's links are not up (no links.json); run scripts/lab up") from None
    names = {f.name for f in fields(Shape)}
    shapes = {
        name: Shape(**{k: v for k, v in shape.items() if k in names})
        for name, shape in data["links"].items()
    }
    return data["backend"], shapes


def set_shape(topology: Topology, state: Path, name: str, shape: Shape) -> None:
    """Apply ``shape`` to both directions of link ``name`` and remember it."""
    backend, shapes = load_shapes(state)
    if backend == "netem":
        _tc(topology.link(name), shape, "change")
    else:
        answer = control(state / "wire.sock", {"op": "set", "link": name, "shape": asdict(shape)})
        if not answer.get("ok"):
            raise LabError(f"the delay line refused: {answer.get('error')}")
    shapes[name] = shape
    save_shapes(state, backend, shapes)
