"""The configuration model: every section of ``edge.yaml``.

The models of an app file (services, ports, checks, machines, process specs) live in
``edge.config.model_apps`` and the shared base (``Frozen``, ``RegionCode``, ``Name``) in
``edge.config.model_base``; this module re-exports them, so ``edge.config.model`` stays
the one place to import any config object from.

All objects are frozen pydantic models that forbid unknown keys, so a typo is an
error. Durations are seconds (``Duration``); in YAML they are written ``500ms``,
``2s``, ``1m`` (a bare number means milliseconds, as in the platform's fly.toml).
Region codes are checked against the catalogue handed in as validation context
(``{"regions": {...}}``); see ``edge.config.load``.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.config.model_apps import (
    AppSpec,
    AutoStop,
    CheckSpec,
    CheckTiming,
    Command,
    ConcurrencySpec,
    Handler,
    HeaderValue,
    HttpCheckSpec,
    HttpOptions,
    KillSignal,
    MachineSpec,
    OutlierSpec,
    PortSpec,
    ProcessSpec,
    ProxyProtoOptions,
    ReplayCacheSpec,
    ResponseOptions,
    RestartPolicy,
    RestartSpec,
    ServiceSpec,
    Strategy,
    TcpCheckSpec,
)
from edge.config.model_base import Frozen, Name, RegionCode, region_code
from edge.config.types import Duration, HostPort, IPAddress, Network

__all__ = [
    "STORE_SCHEMES",
    "ApiSpec",
    "AppSpec",
    "AutoStop",
    "CertificateSpec",
    "CheckSpec",
    "CheckTiming",
    "ClientNet",
    "Command",
    "ConcurrencySpec",
    "EdgeConfig",
    "EdgeSpec",
    "Frozen",
    "Handler",
    "HeaderValue",
    "HttpCheckSpec",
    "HttpOptions",
    "HttpSpec",
    "IpamSpec",
    "JitterSpec",
    "KillSignal",
    "LatencySpec",
    "MachineSpec",
    "MetricsSpec",
    "Name",
    "OrgSpec",
    "OutlierSpec",
    "PoolsSpec",
    "PortSpec",
    "ProcessSpec",
    "ProxyProtoOptions",
    "RegionCode",
    "ReplayCacheSpec",
    "ResponseOptions",
    "RestartPolicy",
    "RestartSpec",
    "RttOverride",
    "ServiceSpec",
    "StoreSpec",
    "Strategy",
    "TcpCheckSpec",
    "TlsSpec",
    "region_code",
]

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")

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
