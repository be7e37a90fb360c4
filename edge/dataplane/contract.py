"""The contract between the data plane and the rest of edge.

A listener's protocols call ``ListenerRouter.choose`` once per TCP connection (raw and
tls ports) or once per request (http ports, and again for each retry), and then report
exactly one ``release`` for every ``Upstream`` they were given, whatever happened.
Expected failures are values (``NoUpstream``), never exceptions.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

from edge.core.error_codes import ErrorCode
from edge.core.faults import Fault
from edge.core.replay import ReplayRoute
from edge.core.replay_cache import SessionCacheSpec

ProxyProtoVersion = Literal["v1", "v2"]
# A named alias, not a bare ``object`` annotation: mypyc resolves a compiled dataclass's
# field types through the module globals, where the builtin ``object`` is not found.
Ticket: TypeAlias = object


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is connected, fixed for the life of one accepted connection."""

    peer_ip: str
    peer_port: int
    local_ip: str
    local_port: int
    tls: bool = False
    sni: str | None = None
    # Set when the listener accepted a PROXY protocol header from the client.
    proxied: bool = False


@dataclass(frozen=True, slots=True)
class RouteHints:
    """What an HTTP request says about where it wants to go (raw bytes as parsed)."""

    host: bytes | None = None
    prefer_region: bytes | None = None
    force_region: bytes | None = None
    prefer_instance: bytes | None = None
    force_instance: bytes | None = None
    client_region: bytes | None = None  # the simulation header Edge-Client-Region
    # Set for a request an app replayed (fly-replay): route by it, not by the headers.
    # ``replay.app`` names the app (of the same org) to deliver it to.
    replay: ReplayRoute | None = None


@dataclass(frozen=True, slots=True)
class PortPolicy:
    """What a port's ``http_options`` and edge.yaml's ``http`` section ask of the relay."""

    set_lines: bytes = b""  # header lines ("Name: value\r\n") added to every response
    remove: frozenset[bytes] = frozenset()  # lowercased names cut from every response
    pristine: bool = False  # the edge adds nothing (no Via, no Fly-Request-Id)
    idle_timeout: float | None = None  # keep-alive idle limit; None: the listener's
    replay_buffer: int = 1024 * 1024  # request bodies kept for a fly-replay, bytes
    replay_caches: tuple[SessionCacheSpec, ...] = ()  # session-scoped replay caches

    @property
    def edits_response(self) -> bool:
        return bool(self.set_lines or self.remove or self.pristine)


DEFAULT_POLICY = PortPolicy()


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """One replay (or a refusal of one), for metrics and route explanations."""

    at: float  # unix time
    app: str  # the app that replayed
    source_machine: str
    source_region: str
    instruction: str  # what the app asked, as ``ReplayInstruction.describe`` writes it
    result: str  # replayed, cache_hit, fallback, refused_PA0x, failed
    target_app: str = ""
    target_machine: str = ""
    target_region: str = ""
    why: str = ""  # the routing rule that chose the target, or why it failed
    pop: str = ""


@dataclass(frozen=True, slots=True)
class Upstream:
    """The machine chosen for one connection or request."""

    host: str
    port: int
    machine_id: str
    region: str
    app: str
    reason: str  # the routing rule that chose it: nearest, prefer_region, retry, ...
    ticket: Ticket  # opaque to the data plane: handed back in every report
    send_proxy_proto: ProxyProtoVersion | None = None
    client_delay: float = 0.0  # simulated client <-> PoP round trip, seconds
    upstream_delay: float = 0.0  # simulated PoP <-> machine round trip, seconds
    timeout: float = 60.0  # how long to wait for the machine's answer (then 504)
    connect_timeout: float = 5.0
    # How many other machines may be tried after a failed connect: the policy of the
    # service that made this choice, read from the same snapshot.
    retries: int = 2
    pop: str = ""  # the PoP this client landed on (anycast); "" means router.pop
    # Injected faults acting on this connection to the machine (toxics and ``down``):
    # empty unless someone added faults (edgectl faults add).
    faults: tuple[Fault, ...] = ()
    policy: PortPolicy = DEFAULT_POLICY  # the app's http_options on this port


class CapacityQueue(Protocol):
    """Where to wait when every machine is at its hard limit (see ``NoUpstream.queue``)."""

    @property
    def timeout(self) -> float:
        """How long to wait at most before answering 503 (http) or closing (tcp)."""
        ...

    def wait(self, callback: Callable[[], None]) -> object:
        """Call ``callback`` once when a slot may be free; returns a token for ``cancel``."""
        ...

    def cancel(self, token: object) -> None: ...


@dataclass(frozen=True, slots=True)
class NoUpstream:
    """No machine can take this connection or request."""

    status: int  # 503 (none available), 404 (unknown host on shared_v4), 421 ...
    reason: str  # short text for the response body and logs
    app: str | None = None
    code: ErrorCode | None = None  # the platform's error code (PR01 ...), None if it has none
    retry_after: int = 1
    wait: float = 0.0  # raw TCP: how long to hold the connection before closing
    pop: str = ""  # the PoP this client landed on; "" means router.pop
    # Set when every machine is at its hard limit: the caller may wait in this queue
    # (up to queue.timeout) and choose again when woken, instead of failing at once.
    queue: CapacityQueue | None = None


Choice = Upstream | NoUpstream


@dataclass(frozen=True, slots=True)
class EdgeAnswer:
    """An error answer the edge made itself, or a raw TCP connection it refused or closed."""

    status: int  # the HTTP status; 0 for a raw TCP connection (nothing to answer with)
    code: ErrorCode | None  # the platform's error code; None where the platform has none
    reason: str  # the body's text (one line), for the log
    app: str | None = None  # None: the listener's own app (none on the shared address)
    pop: str = ""  # the PoP the client landed on; "" means router.pop
    request_id: str = ""  # the Fly-Request-Id of the answer (HTTP)


class ListenerRouter(Protocol):
    """One per listener (address, port); the data plane's only view of the world."""

    @property
    def pop(self) -> str:
        """The PoP of clients with no other information (Fly-Region when "" elsewhere)."""
        ...

    @property
    def handlers(self) -> tuple[str, ...]:
        """The port's handlers: (), ("http",), ("tls", "http") ..."""
        ...

    @property
    def force_https(self) -> bool: ...

    @property
    def policy(self) -> PortPolicy:
        """The listener's port policy (idle timeout, replay buffer)."""
        ...

    def replayed(self, app: str, result: str, report: ReplayReport | None) -> None:
        """A machine of ``app`` answered fly-replay; ``result`` says what came of it."""
        ...

    def opened(self, client: ClientInfo) -> object:
        """A client connection was accepted; the answer is handed back to ``closed``."""
        ...

    def closed(self, token: object) -> None:
        """That client connection is gone (called exactly once after ``opened``)."""
        ...

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        """An upstream for a new connection (hints None) or request; never raises."""
        ...

    def connected(self, upstream: Upstream, seconds: float) -> None:
        """The TCP connection to the machine opened after ``seconds``."""
        ...

    def connect_failed(self, upstream: Upstream, reason: str) -> None:
        """Connecting failed: ``refused``, ``timeout``, ``reset``, ``unreachable`` or
        ``exhausted`` (the edge's own descriptors ran out: not held against the machine)."""
        ...

    def responded(self, upstream: Upstream, status: int, seconds: float) -> None:
        """An HTTP response head arrived (status) after ``seconds`` from the request."""
        ...

    def transferred(self, upstream: Upstream, to_machine: int, to_client: int) -> None:
        """Bytes relayed; called when a connection or request finishes."""
        ...

    def release(self, upstream: Upstream) -> None:
        """The connection or request is over: its load slot is free again."""
        ...

    def answered(self, client: ClientInfo, answer: EdgeAnswer) -> None:
        """The edge answered an error itself (or closed a raw connection): log and count it."""
        ...


def connect_failure(exc: BaseException) -> str:
    """The contract's name for why connecting to a machine failed (``connect_failed``);
    ``exhausted``: the edge itself is out of file descriptors (no fault of the machine)."""
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return "exhausted"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError):
        return "reset"
    return "unreachable"
