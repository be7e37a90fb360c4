"""The models of an app file (the platform's fly.toml, in YAML).

Services and their public ports (handlers, ``http_options``), concurrency, health
checks and outlier ejection; machines, and how edge runs a process machine
(``ProcessSpec``, ``RestartSpec``); ``AppSpec`` ties them together. ``edge.config.model``
re-exports every name here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from edge.config.model_base import Frozen, Name, RegionCode
from edge.config.types import Duration, IPAddress, Port, Seconds, split_host_port

Handler = Literal["http", "tls", "proxy_proto"]
_HANDLER_SETS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"http"}),
    frozenset({"tls", "http"}),
    frozenset({"tls"}),
    frozenset({"proxy_proto"}),
    frozenset({"tls", "proxy_proto"}),
)


class ProxyProtoOptions(Frozen):
    version: Literal["v1", "v2"] = "v1"


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Headers that frame the message or the connection: a policy may not set or remove them.
_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te", "trailer"}
)
HeaderValue = str | list[str] | Literal[False]


class ResponseOptions(Frozen):
    """``http_options.response``: headers set or removed on every response of the port."""

    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    pristine: bool = False  # the edge adds nothing: no Via, no Fly-Request-Id

    @model_validator(mode="after")
    def _headers_valid(self) -> ResponseOptions:
        for name, value in self.headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"headers: {name!r} is not a valid header name")
            if name.lower() in _FRAMING_HEADERS:
                raise ValueError(
                    f"headers: {name} frames the response and cannot be set or removed"
                )
            values = value if isinstance(value, list) else [] if value is False else [value]
            if any(("\r" in v or "\n" in v) for v in values):
                raise ValueError(
                    f"headers.{name}: give a string, a list of strings, or false to remove it"
                )
        return self


class ReplayCacheSpec(Frozen):
    """``http_options.replay_cache``: remember replays per session (a cookie or header)."""

    path_prefix: str = Field(pattern=r"^/")
    ttl_seconds: float = Field(ge=10, le=86400)
    type: Literal["cookie", "header"]
    name: str = Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class HttpOptions(Frozen):
    """A port's ``http_options``, as in the platform's fly.toml."""

    response: ResponseOptions = ResponseOptions()
    # Seconds (as in fly.toml) a keep-alive client connection may sit idle; default:
    # http.idle_timeout of edge.yaml.
    idle_timeout: float | None = Field(default=None, gt=0, le=86400)
    replay_cache: tuple[ReplayCacheSpec, ...] = ()


class PortSpec(Frozen):
    """One public port of a service and how its connections are handled."""

    port: Port
    handlers: tuple[Handler, ...] = ()
    force_https: bool = False
    proxy_proto_options: ProxyProtoOptions = ProxyProtoOptions()
    accept_proxy_proto: bool = False  # the listener reads a PROXY header from the client
    http_options: HttpOptions = HttpOptions()

    @model_validator(mode="after")
    def _handlers_make_sense(self) -> PortSpec:
        handlers = frozenset(self.handlers)
        if len(handlers) != len(self.handlers) or handlers not in _HANDLER_SETS:
            raise ValueError(
                f"handlers {list(self.handlers)} is not a supported combination; use [], [http], "
                "[tls, http], [tls], [proxy_proto] or [tls, proxy_proto]"
            )
        if self.force_https and "http" not in handlers:
            raise ValueError("force_https needs the http handler on this port")
        if self.http_options != HttpOptions() and "http" not in handlers:
            raise ValueError("http_options needs the http handler on this port")
        return self

    @property
    def is_http(self) -> bool:
        return "http" in self.handlers

    @property
    def is_tls(self) -> bool:
        return "tls" in self.handlers

    @property
    def sends_proxy_proto(self) -> bool:
        return "proxy_proto" in self.handlers


class ConcurrencySpec(Frozen):
    """The platform's load bands: below soft preferred, at hard never chosen."""

    type: Literal["connections", "requests"] = "connections"
    soft_limit: int = Field(default=20, ge=1)
    hard_limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _hard_not_below_soft(self) -> ConcurrencySpec:
        if self.hard_limit is not None and self.hard_limit < self.soft_limit:
            raise ValueError(
                f"hard_limit ({self.hard_limit}) must not be below soft_limit ({self.soft_limit})"
            )
        return self


class CheckTiming(Frozen):
    interval: Duration = 15.0
    timeout: Duration = 2.0
    grace_period: Duration = 1.0
    rise: int = Field(default=2, ge=1)
    fall: int = Field(default=3, ge=1)
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)  # fraction of interval

    @model_validator(mode="after")
    def _positive_interval(self) -> CheckTiming:
        if self.interval <= 0 or self.timeout <= 0:
            raise ValueError("interval and timeout must be greater than zero")
        return self


class TcpCheckSpec(CheckTiming):
    """Passes when a TCP connection to the machine's internal port opens in time."""


class HttpCheckSpec(CheckTiming):
    """Passes on a 2xx answer; redirects are not followed."""

    method: str = "GET"
    path: str = "/"
    protocol: Literal["http", "https"] = "http"
    tls_skip_verify: bool = False
    tls_server_name: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _path_is_absolute(self) -> HttpCheckSpec:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', not {self.path!r}")
        self.__dict__["method"] = self.method.upper()
        return self


CheckSpec = TcpCheckSpec | HttpCheckSpec


class OutlierSpec(Frozen):
    """Passive health: eject a machine after consecutive failures (Envoy's rule)."""

    consecutive_failures: int = Field(default=5, ge=1)
    base_ejection_time: Duration = 30.0
    max_ejection_time: Duration = 300.0
    max_ejection_percent: int = Field(default=10, ge=0, le=100)


Strategy = Literal["nearest", "weighted_latency", "least_connections", "p2c_peak_ewma", "maglev"]


def _auto_stop(value: object) -> object:
    # fly.toml's legacy booleans: true is stop, false is off.
    if value is True:
        return "stop"
    if value is False:
        return "off"
    return value


AutoStop = Annotated[Literal["off", "stop", "suspend"], BeforeValidator(_auto_stop)]


class ServiceSpec(Frozen):
    """Like the platform's ``[[services]]``: one internal port behind public ports."""

    internal_port: Port = 8080
    protocol: Literal["tcp"] = "tcp"
    ports: tuple[PortSpec, ...] = Field(min_length=1)
    concurrency: ConcurrencySpec = ConcurrencySpec()
    tcp_checks: tuple[TcpCheckSpec, ...] = ()
    http_checks: tuple[HttpCheckSpec, ...] = ()
    strategy: Strategy = "nearest"
    latency_weight: float = Field(default=1.0, gt=0)
    latency_exponent: float = Field(default=2.0, gt=0)  # k in weight / RTT^k
    connect_timeout: Duration = 5.0
    timeout: Duration = 60.0  # waiting for the machine's answer: then 504
    retries: int = Field(default=2, ge=0, le=10)
    retry_budget: float = Field(default=0.2, ge=0.0, le=1.0)
    queue_timeout: Duration = 5.0
    no_candidate_wait: Duration = 1.0
    outlier: OutlierSpec = OutlierSpec()
    panic_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    slow_start: Duration = 0.0
    # Addresses of the org this service is reached on (only these, when given); a
    # deploy moves each one to the app if another app of the org holds it.
    ips: tuple[IPAddress, ...] = ()
    # Scale to zero (the platform's autostop / autostart; edge.runtime.autoscale).
    auto_stop_machines: AutoStop = "off"
    auto_start_machines: bool = True
    min_machines_running: int = Field(default=0, ge=0)  # counted in the primary region only


KillSignal = Literal["SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGHUP"]
RestartPolicy = Literal["no", "on-failure", "always"]


_PLAIN_WORDS = re.compile(r"^[A-Za-z0-9_./=:,+@%-]+( [A-Za-z0-9_./=:,+@%-]+)*$")


def _command(value: object) -> object:
    # A string is plain words separated by single spaces (no shell: no quoting rules to
    # guess); anything else is written as a list, one item per argument.
    if isinstance(value, str):
        if not _PLAIN_WORDS.match(value):
            raise ValueError(
                f"a command string is plain words separated by single spaces, not {value!r}; "
                "write it as a list (one item per argument) for anything else"
            )
        return tuple(value.split(" "))
    return value


Command = Annotated[tuple[str, ...], BeforeValidator(_command)]


class RestartSpec(Frozen):
    """What to do when a process machine exits (fly.toml's ``[[restart]]``)."""

    policy: RestartPolicy = "on-failure"
    max_retries: int = Field(default=10, ge=0, le=1000)


class ProcessSpec(Frozen):
    """How edge runs a process machine: stored as the machine's ``process``."""

    command: Command = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    kill_signal: KillSignal = "SIGINT"
    kill_timeout: Seconds = Field(default=5.0, le=300.0)
    start_timeout: Seconds = Field(default=10.0, gt=0.0, le=300.0)
    restart: RestartSpec = RestartSpec()
    process_group: str = "app"

    @model_validator(mode="after")
    def _env_names(self) -> ProcessSpec:
        for name in self.env:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"env: {name!r} is not a valid variable name")
        return self


class MachineSpec(Frozen):
    """An instance of an app: a demo machine served by the edge, an address, or a
    ``command`` that edge runs itself (a process machine)."""

    id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    region: RegionCode
    address: str | None = None
    ports: dict[Port, Port] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=1, le=1000)
    demo: bool = False
    state: Literal["started", "stopped"] = "started"
    command: Command | None = None
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    kill_signal: KillSignal = "SIGINT"
    kill_timeout: Seconds = Field(default=5.0, le=300.0)
    start_timeout: Seconds = Field(default=10.0, gt=0.0, le=300.0)
    restart: RestartSpec = RestartSpec()

    @model_validator(mode="after")
    def _address_or_demo(self) -> MachineSpec:
        kinds = [k for k, on in (("address", self.address is not None), ("demo", self.demo),
                                 ("command", self.command is not None)) if on]  # fmt: skip
        if len(kinds) != 1:
            both = f" (this one gives {' and '.join(kinds)})" if kinds else ""
            raise ValueError(
                "give either address (HOST:PORT or HOST), demo: true or command" + both
            )
        if self.command is None and (self.env or self.workdir):
            raise ValueError("env and workdir are for a machine with a command")
        if self.command is not None and self.ports:
            raise ValueError(
                "ports is for address and demo machines: a machine with a command listens on "
                "its own address at each service's internal_port ($PORT is the first)"
            )
        if self.command is not None and not self.command:
            raise ValueError("command must not be empty")
        for name in self.env:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"env: {name!r} is not a valid variable name")
        texts = [*(self.command or ()), *self.env.values(), self.workdir or ""]
        if any("\0" in text for text in texts):
            raise ValueError("command, env and workdir must not contain a NUL character")
        if self.address is not None and (
            not self.address
            or not self.address.isprintable()
            or any(c.isspace() for c in self.address)
        ):
            raise ValueError(f"address must be HOST:PORT or HOST, not {self.address!r}")
        if self.address is not None and ":" in self.address.strip("[]") and "]" not in self.address:
            split_host_port(self.address)  # a v4 host or name with a port: check it
        return self

    @property
    def process(self) -> ProcessSpec | None:
        """How to run it, for a machine with a ``command``."""
        if self.command is None:
            return None
        return ProcessSpec(
            command=self.command,
            env=self.env,
            workdir=self.workdir,
            kill_signal=self.kill_signal,
            kill_timeout=self.kill_timeout,
            start_timeout=self.start_timeout,
            restart=self.restart,
        )


class AppSpec(Frozen):
    """An app file (the platform's fly.toml, in YAML); also each entry of ``apps``."""

    app: Name
    org: Name = "personal"
    primary_region: RegionCode
    services: tuple[ServiceSpec, ...] = ()
    machines: tuple[MachineSpec, ...] = ()

    @model_validator(mode="after")
    def _ports_unique(self) -> AppSpec:
        seen: set[int] = set()
        for service in self.services:
            for port in service.ports:
                if port.port in seen:
                    raise ValueError(f"public port {port.port} is used by two services")
                seen.add(port.port)
        ids = [m.id for m in self.machines if m.id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("machine ids must be unique within an app")
        return self
