"""Listeners, reconciled against the allocated IPs: what should be bound vs what is.

``desired_listeners`` says, from the store's active IPs and each app's services, which
(address, port) pairs must accept connections and how. ``ListenerSet.reconcile`` stops
what is no longer wanted first (freeing addresses), then binds what is new, and keeps
each listener's last error for the API and status instead of losing it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter

from edge.config.model import PortSpec
from edge.core.ipam import shared_v4_problem
from edge.runtime.tasks import spawn
from edge.store import StoreSnapshot

LOG = logging.getLogger("edge.listeners")
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; lets v6 pool addresses bind early
BACKLOG = 1024

Key = tuple[str, int]  # (address, port)


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """One listener that should exist. ``app`` None: the shared IPv4 (by Host/SNI)."""

    address: str
    port: PortSpec
    app: str | None
    ip_type: str

    @property
    def key(self) -> Key:
        return (self.address, self.port.port)


@dataclass(frozen=True, slots=True)
class DesiredListeners:
    specs: dict[Key, ListenerSpec]
    # Ports an app asked for that cannot be served (raw TCP on the shared IPv4, a
    # shared port whose handlers differ between apps): reported, never silently lost.
    refused: dict[Key, str] = field(default_factory=dict)


def desired_listeners(snapshot: StoreSnapshot) -> DesiredListeners:
    apps = {app.name: app for app in snapshot.apps}
    specs: dict[Key, ListenerSpec] = {}
    refused: dict[Key, str] = {}
    for ip in sorted(snapshot.ips, key=lambda a: (a.app, a.address)):
        app = apps.get(ip.app)
        if app is None:
            continue
        for service in app.services:
            if service.ips and ip.address not in service.ips:
                continue  # this service asked to be reached on other addresses only
            for port in service.ports:
                spec = ListenerSpec(ip.address, port, None if ip.shared else ip.app, ip.type)
                problem = _shared_problem(spec, specs.get(spec.key), ip.app)
                if problem:
                    refused[spec.key] = problem
                elif spec.key not in specs:
                    specs[spec.key] = spec
    return DesiredListeners(specs, refused)


def _shared_problem(spec: ListenerSpec, existing: ListenerSpec | None, app: str) -> str:
    if spec.app is not None:
        return ""
    if not (spec.port.is_http or spec.port.is_tls):  # refused up front since; kept for old state
        return shared_v4_problem(app, (spec.port.port,))
    if existing is not None and existing.port.handlers != spec.port.handlers:
        return (
            f"app {app}: port {spec.port.port} has handlers {list(spec.port.handlers)} but "
            f"the shared IPv4 serves it with {list(existing.port.handlers)}"
        )
    return ""


class Tracker(Protocol):
    def __len__(self) -> int: ...

    async def drain(self, timeout: float) -> int: ...


ServerFactory = Callable[[ListenerSpec], tuple[Callable[[], asyncio.Protocol], Any, Tracker]]


@dataclass(slots=True)
class Listener:
    spec: ListenerSpec
    server: asyncio.Server | None = None
    tracker: Tracker | None = None
    error: str | None = None
    # The listening socket itself: the server accepts on a duplicate of it, so closing
    # the server (accepting paused at edge.max_connections) keeps the port listening
    # and new connections wait in the kernel's queue.
    sock: socket.socket | None = None
    factory: Any = None
    ssl_context: Any = None

    def report(self) -> dict[str, Any]:
        return {
            "address": self.spec.address,
            "port": self.spec.port.port,
            "app": self.spec.app,
            "handlers": list(self.spec.port.handlers),
            "bound": self.sock is not None,
            "error": self.error,
            "connections": 0 if self.tracker is None else len(self.tracker),
        }


def bind_socket(address: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening socket; IPv6 binds with IP_FREEBIND (the address need not be routed yet).
    ``reuse_port``: several nodes or workers on this host accept on the same address
    (SO_REUSEPORT: the kernel spreads new connections between them)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind((address, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def describe(address: str, port: int, exc: OSError) -> str:
    causes = {
        errno.EADDRINUSE: "address already in use",
        errno.EADDRNOTAVAIL: "address not available on this machine (IPv4 pools must be local)",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"cannot listen on {where}: {causes.get(exc.errno or 0, exc.strerror or str(exc))}"


class ListenerSet:
    """The bound listeners of the daemon, brought in line with the desired set."""

    def __init__(
        self,
        make_server: ServerFactory,
        drain_timeout: float,
        errors: Counter | None = None,
        *,
        reuse_port: bool = False,
    ) -> None:
        self._make = make_server
        self.reuse_port = reuse_port
        self._errors = errors
        self._drain_timeout = drain_timeout
        self._live: dict[Key, Listener] = {}
        self._refused: dict[Key, str] = {}
        self._lock = asyncio.Lock()
        self._accepting = True

    async def reconcile(self, desired: DesiredListeners) -> None:
        async with self._lock:
            self._refused = dict(desired.refused)
            # A changed spec is rebound; a failed bind is tried again on every reconcile.
            stale = [
                key
                for key, live in self._live.items()
                if desired.specs.get(key) != live.spec or live.sock is None
            ]
            for key in stale:  # free addresses before binding new ones
                self._retire(self._live.pop(key))
            for key, spec in desired.specs.items():
                if key not in self._live:
                    self._live[key] = await self._start(spec)

    async def _start(self, spec: ListenerSpec) -> Listener:
        listener = Listener(spec)
        try:
            listener.factory, listener.ssl_context, listener.tracker = self._make(spec)
            listener.sock = bind_socket(spec.address, spec.port.port, reuse_port=self.reuse_port)
            if self._accepting:
                await self._serve(listener)
            LOG.info("listening", extra={"address": spec.address, "port": spec.port.port})
        except OSError as exc:
            if listener.sock is not None:
                listener.sock.close()
                listener.sock = None
            listener.error = describe(spec.address, spec.port.port, exc)
            if self._errors is not None:
                self._errors.labels(errno.errorcode.get(exc.errno or 0, "other").lower()).inc()
            LOG.warning("listener failed", extra={"error": listener.error})
        return listener

    async def _serve(self, listener: Listener) -> None:
        """Accept on a duplicate of the listening socket (see ``Listener.sock``)."""
        assert listener.sock is not None
        sock = listener.sock.dup()
        try:
            listener.server = await asyncio.get_running_loop().create_server(
                listener.factory, sock=sock, ssl=listener.ssl_context, backlog=BACKLOG
            )
        except BaseException:
            sock.close()
            raise

    def set_accepting(self, accepting: bool) -> None:
        """Pause or resume accepting on every listener (``ConnectionGate.on_change``)."""
        if accepting == self._accepting:
            return
        self._accepting = accepting
        if accepting:
            spawn(self._resume(), name="resume-accepting")
            return
        for listener in self._live.values():
            if listener.server is not None:
                listener.server.close()  # the duplicate; the port keeps listening
                listener.server = None

    async def _resume(self) -> None:
        async with self._lock:
            if not self._accepting:
                return
            for listener in self._live.values():
                if listener.server is None and listener.sock is not None:
                    try:
                        await self._serve(listener)
                    except OSError as exc:  # out of descriptors, say: the next resume retries
                        LOG.warning("cannot resume accepting: %s", exc)

    def _retire(self, listener: Listener) -> None:
        """Stop accepting at once; connections in flight finish within the drain timeout."""
        if listener.sock is not None:
            listener.sock.close()
            listener.sock = None
        if listener.server is not None:
            listener.server.close()
            LOG.info(
                "listener closed",
                extra={"address": listener.spec.address, "port": listener.spec.port.port},
            )
        if listener.tracker is not None:
            spawn(listener.tracker.drain(self._drain_timeout), name="drain-listener")

    def reports(self) -> list[dict[str, Any]]:
        rows = [listener.report() for listener in self._live.values()]
        rows += [
            {"address": a, "port": p, "bound": False, "error": why}
            for (a, p), why in self._refused.items()
        ]
        return rows

    def by_address(self, addresses: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        wanted = None if addresses is None else set(addresses)
        for row in self.reports():
            if wanted is None or row["address"] in wanted:
                out.setdefault(row["address"], []).append(row)
        return out

    def counts(self) -> Mapping[str, int]:
        families = {"ipv4": 0, "ipv6": 0}
        for listener in self._live.values():
            if listener.sock is not None:
                families["ipv6" if ":" in listener.spec.address else "ipv4"] += 1
        return families

    async def close(self) -> None:
        """Stop accepting everywhere, then drain every listener's connections together."""
        async with self._lock:
            listeners = list(self._live.values())
            self._live.clear()
        for listener in listeners:
            if listener.server is not None:
                listener.server.close()
            if listener.sock is not None:
                listener.sock.close()
                listener.sock = None
        drains = [x.tracker.drain(self._drain_timeout) for x in listeners if x.tracker]
        await asyncio.gather(*drains)
