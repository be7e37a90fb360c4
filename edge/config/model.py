"""The configuration model: every section of ``edge.yaml`` and of an app file.

All objects are frozen pydantic models that forbid unknown keys, so a typo is an
error. Durations are seconds (``Duration``); in YAML they are written ``500ms``,
``2s``, ``1m`` (a bare number means milliseconds, as in the platform's fly.toml).
Region codes are checked against the catalogue handed in as validation context
(``{"regions": {...}}``); see ``edge.config.load``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.config.types import (
    Duration,
    HostPort,
    IPAddress,
    Network,
    Port,
    Seconds,
    split_host_port,
)

_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def _check_region(value: str, info: ValidationInfo) -> str:
    regions = (info.context or {}).get("regions")
    if regions is not None and value not in regions:
        raise ValueError(f"unknown region {value!r}; valid regions: {', '.join(sorted(regions))}")
    return value


def _check_name(value: str) -> str:
    if not _APP_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return value


def region_code(value: object) -> object:
    """Region codes are case-insensitive: ``LHR`` is ``lhr`` (config, API, CLI)."""
    return value.strip().lower() if isinstance(value, str) else value


RegionCode = Annotated[str, BeforeValidator(region_code), AfterValidator(_check_region)]
Name = Annotated[str, AfterValidator(_check_name)]


class Frozen(BaseModel):
    """Base of every config object: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- apps: services, ports, checks, machines -------------------------------------------

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


# --- the edge itself -------------------------------------------------------------------


class ClientNet(Frozen):
    cidr: Network
    region: RegionCode


class EdgeSpec(Frozen):
    """Points of presence and where clients are."""

    pops: tuple[RegionCode, ...] = Field(min_length=1)
    local_region: RegionCode
    clients: tuple[ClientNet, ...] = ()
    trust_client_region_header: bool = True
    simulate_latency: bool = False
    app_domain: str = "edge.test"  # an app answers on shared_v4 as <app>.<app_domain>
    # Client connections the data plane holds at most (every listener together); above
    # it accepting pauses until the count drops. None: derived from RLIMIT_NOFILE
    # (edge.core.limits.default_max_connections), leaving descriptors for the rest.
    max_connections: int | None = Field(default=None, ge=1)
    # How often the autostop loop looks for machines to stop (the platform: a few minutes).
    autostop_interval: Duration = 180.0
    # Process machines get their own loopback address from here (FLY_PRIVATE_IP).
    machine_network: Network = "127.78.0.0/16"

    @model_validator(mode="after")
    def _autostop_interval(self) -> EdgeSpec:
        if self.autostop_interval < 0.1:
            raise ValueError("autostop_interval must be at least 100ms")
        network = ipaddress.ip_network(self.machine_network)
        if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(_LOOPBACK):
            raise ValueError(
                f"machine_network must be inside 127.0.0.0/8, not {self.machine_network}"
            )
        return self


class RttOverride(Frozen):
    a: RegionCode
    b: RegionCode
    rtt: Duration


class JitterSpec(Frozen):
    """Extra delay drawn for each request (http) or connection (tcp) on a simulated path.

    ``lognormal``: the added delay's median is ``median`` and its log-space standard
    deviation ``sigma`` (p99 = median x e^(2.33 sigma): a long tail, as real paths have);
    ``normal``: mean ``mean`` and standard deviation ``stddev``, never below zero;
    ``none``: no jitter. ``seed`` makes the sequence repeatable (none: a new one per run).
    Only with ``edge.simulate_latency: true``.
    """

    distribution: Literal["none", "normal", "lognormal"] = "none"
    median: Duration | None = None
    sigma: float | None = Field(default=None, gt=0, le=5)
    mean: Duration | None = None
    stddev: Duration | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _fields_of_the_distribution(self) -> JitterSpec:
        needs = {"none": (), "normal": ("mean", "stddev"), "lognormal": ("median", "sigma")}
        wanted = needs[self.distribution]
        for name in ("median", "sigma", "mean", "stddev"):
            given = getattr(self, name) is not None
            if given and name not in wanted:
                raise ValueError(f"{name} is not a parameter of distribution {self.distribution}")
            if not given and name in wanted:
                raise ValueError(f"distribution {self.distribution} needs {name}")
        if self.distribution == "lognormal" and not (self.median or 0) > 0:
            raise ValueError("a lognormal jitter needs median above 0 (e.g. 2ms)")
        if self.distribution == "normal" and not (self.stddev or 0) > 0:
            raise ValueError("a normal jitter needs stddev above 0 (e.g. 1ms)")
        return self


class LatencySpec(Frozen):
    """The RTT model: great-circle distance, light in fiber, route inflation, a floor.

    ``calibrated`` (the default) routes over the cabled areas of ``edge/data/routes.yaml``
    with their fitted inflations; ``great_circle`` uses ``route_inflation`` for every pair
    (``edge.core.latency``). ``per_hop_floor`` is paid once per cable hop and is the RTT
    within one region.
    """

    model: Literal["calibrated", "great_circle"] = "calibrated"
    fiber_km_per_ms: float = Field(default=200.0, gt=0)
    route_inflation: float = Field(default=1.24, ge=1.0)
    per_hop_floor: Duration = 0.006
    overrides: tuple[RttOverride, ...] = ()
    jitter: JitterSpec = JitterSpec()


class PoolsSpec(Frozen):
    v4: tuple[Network, ...] = ("127.77.0.0/16",)
    v6: tuple[Network, ...] = ("fd77:e0::/64",)
    private_v6: tuple[Network, ...] = ("fdaa:77::/64",)


class IpamSpec(Frozen):
    max_ips_per_org: int = Field(default=100, ge=1)
    reuse_after: Duration = 3600.0
    pools: PoolsSpec = PoolsSpec()
    shared_v4: IPAddress = "127.77.255.254"


class HttpSpec(Frozen):
    headers_read_timeout: Duration = 10.0
    max_header_bytes: int = Field(default=32768, ge=1024)
    idle_timeout: Duration = 60.0
    upstream_idle_timeout: Duration = 4.0
    # Request bodies up to this many bytes are kept while the machine answers, so a
    # fly-replay can deliver them again; a larger body is streamed and cannot be (PA01).
    replay_buffer: int = Field(default=1024 * 1024, ge=0, le=10 * 1024 * 1024)


class CertificateSpec(Frozen):
    """A certificate for the names it covers (``*.example.com`` covers one label below)."""

    names: tuple[str, ...] = Field(min_length=1)
    cert_file: str
    key_file: str


class TlsSpec(Frozen):
    """Certificates for tls ports; any other name gets a self-signed one, made at first
    use and kept in the state directory."""

    certificates: tuple[CertificateSpec, ...] = ()
    # Self-signed certificates are made only for names the edge serves (app hostnames on
    # the shared address); this caps how many are kept in STATE_DIR/tls.
    max_self_signed: int = Field(default=1000, ge=1)


class ApiSpec(Frozen):
    listen: HostPort = "127.0.0.1:4280"
    # A request head must arrive whole within this long of the connection opening or of
    # the previous answer (slowloris); idle keep-alive connections close after it too.
    headers_read_timeout: Duration = Field(default=10.0, gt=0)
    # A request body must arrive whole within this long of its head.
    body_read_timeout: Duration = Field(default=30.0, gt=0)


class MetricsSpec(Frozen):
    enabled: bool = True
    # /metrics names every org's apps and machines: with this set it answers only to the
    # admin token or the metrics token (STATE_DIR/metrics_token, made at start).
    require_token: bool = False


STORE_SCHEMES = ("postgresql://", "postgres://")


class StoreSpec(Frozen):
    """Where the state lives: None is STATE_DIR/edge.db (SQLite); a ``postgresql://``
    URL is a control plane shared by several nodes (``edge serve --store`` overrides)."""

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(STORE_SCHEMES):
            raise ValueError("must be a postgresql:// URL (or left out for SQLite in STATE_DIR)")
        return url


class OrgSpec(Frozen):
    slug: Name


class EdgeConfig(Frozen):
    """The whole of ``edge.yaml``."""

    edge: EdgeSpec
    latency: LatencySpec = LatencySpec()
    ipam: IpamSpec = IpamSpec()
    http: HttpSpec = HttpSpec()
    tls: TlsSpec = TlsSpec()
    api: ApiSpec = ApiSpec()
    metrics: MetricsSpec = MetricsSpec()
    store: StoreSpec = StoreSpec()
    drain_timeout: Duration = 10.0
    orgs: tuple[OrgSpec, ...] = ()
    apps: tuple[AppSpec, ...] = ()

    @model_validator(mode="after")
    def _names_unique(self) -> EdgeConfig:
        names = [a.app for a in self.apps]
        if len(names) != len(set(names)):
            raise ValueError("app names must be unique")
        return self
