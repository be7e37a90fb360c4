"""Listener routers: the data plane's view of apps, implemented over the routing state.

One router per listener. ``AppRouter`` serves an app's dedicated address (its services
by public port); ``SharedRouter`` serves the shared IPv4, where the app is named by the
Host header or the TLS SNI. Both read the routing view current at each ``choose`` call;
what a choice carries that does not change per request (the port's policy) was worked
out when that view was built. Time is read from the injected ``clock`` (monotonic
seconds: slow start, outlier ejection, peak-EWMA), wall-clock time only for the traffic
log that people read.
"""

from __future__ import annotations

import logging
import time

from edge.config.model import PortSpec
from edge.core import jitter, outlier
from edge.core.clock import Clock
from edge.core.error_codes import capacity_code, no_candidate_code
from edge.core.faults import faults_for
from edge.core.latency import observe_rtt
from edge.core.routing import Endpoint, RouteRequest, ServiceRoutes, decide
from edge.core.strategies import why_not
from edge.dataplane.contract import (
    Choice,
    ClientInfo,
    EdgeAnswer,
    NoUpstream,
    RouteHints,
    Upstream,
)
from edge.runtime.client_routes import ClientRoutes
from edge.runtime.conn_gate import ConnectionGate
from edge.runtime.metrics import SHARED_APP
from edge.runtime.recorder import Recorder
from edge.runtime.replay_routing import (
    ReplayRecord,
    as_replay,
    port_policy,
    replay_app_service,
)
from edge.runtime.routing_state import RoutingState, RoutingView
from edge.runtime.traffic import Decision

UPSTREAMS_KEPT = 4096  # per listener: (machine, reason, client region, PoP) combinations
LOG = logging.getLogger("edge.outlier")
REPLAY_LOG = logging.getLogger("edge.replay")


class BaseRouter:
    """What every listener router shares: client geography, the decision, the reports."""

    app_label = SHARED_APP  # the app in connection metrics before a request names one

    def __init__(
        self,
        state: RoutingState,
        port: PortSpec,
        recorder: Recorder,
        gate: ConnectionGate | None = None,
        clock: Clock | None = None,  # None: the routing state's (health checks' too)
    ) -> None:
        self.state = state
        self.clock = state.clock if clock is None else clock
        self.recorder = recorder
        self.gate = gate  # the data plane's connection limit, shared by every listener
        self.port = port.port
        self.handler_label = "+".join(port.handlers) or "tcp"
        self.handlers: tuple[str, ...] = tuple(port.handlers)
        self.force_https = port.force_https
        self.proxy_proto = port.proxy_proto_options.version if port.sends_proxy_proto else None
        self.clients = ClientRoutes(state)
        # The configuration never changes while the daemon runs: read it once, not per request.
        self._simulate = state.config.edge.simulate_latency
        jitter_spec = state.config.latency.jitter
        self._jitter = jitter_spec if jitter_spec.distribution != "none" else None
        self.policy = port_policy(port, state.config.http)
        self._made: dict[tuple[str, int, str, str, str, str], Upstream] = {}
        self._made_for: RoutingView | None = None  # the view the made upstreams belong to

    def replayed(self, app: str, result: str, record: ReplayRecord | None) -> None:
        self.recorder.replay(app, result)
        if record is None:
            return
        self.state.replays.append(record)
        if result.startswith("refused_"):
            code = result.removeprefix("refused_")
            REPLAY_LOG.warning(
                "fly-replay of %s from %s refused: %s", app, record.source_machine, record.why,
                extra={"app": app, "machine": record.source_machine, "error_code": code},
            )  # fmt: skip

    def replay_target(
        self, client: ClientInfo, hints: RouteHints, exclude: frozenset[str]
    ) -> Choice:
        """A request replayed to another app (``fly-replay: app=...``): same org only."""
        choice = replay_app_service(self.state.snapshot, hints, self.port)
        if isinstance(choice, NoUpstream):
            return choice
        return self.route(choice, client, hints, exclude)

    @property
    def pop(self) -> str:
        """The PoP of clients with no other information: local clients' ingress."""
        return self.state.ingress(self.state.config.edge.local_region) or ""

    def client_region(self, client: ClientInfo, hints: RouteHints | None) -> str:
        return self.clients.region(client, hints)

    def opened(self, client: ClientInfo) -> tuple[str, str]:
        pop = self.state.ingress(self.client_region(client, None)) or "none"
        self.recorder.connection_opened(self.app_label, pop, self.port, self.handler_label)
        if self.gate is not None:
            self.gate.opened()
        return (self.app_label, pop)

    def closed(self, token: object) -> None:
        if isinstance(token, tuple):
            self.recorder.connection_closed(*token)
        if self.gate is not None:
            self.gate.closed()

    def route(
        self,
        service: ServiceRoutes,
        client: ClientInfo,
        hints: RouteHints | None,
        exclude: frozenset[str],
    ) -> Choice:
        state = self.state
        region = self.clients.region(client, hints)
        pop = state.ingress(region)
        app = service.app
        if pop is None:
            self.recorder.no_candidate(app, "none")
            return NoUpstream(503, "every point of presence is withdrawn", app)
        request = self.clients.request(pop, client, hints, exclude)
        decision = decide(service, request, state.model, self.clock(), state.rng)
        if hints is not None and hints.replay is not None:
            decision = as_replay(decision, hints.replay)
        endpoint = decision.endpoint
        if exclude:
            self.recorder.retry(app, "retried" if endpoint else "exhausted")
        if endpoint is None:
            return self._no_candidate(service, decision.detail, pop, hints, request)
        reason = decision.reason
        self._picked(service, endpoint, reason, region, pop)
        return self._upstream(service, endpoint, reason, region, pop)

    def _picked(
        self, service: ServiceRoutes, endpoint: Endpoint, reason: str, region: str, pop: str
    ) -> None:
        """Count the decision and take the machine's load slot (released by ``release``)."""
        app, state = service.app, self.state
        self.recorder.decision(app, pop, endpoint.region, reason)
        if reason == "panic":
            self.recorder.panic(app)
        state.traffic.record(
            Decision(time.time(), app, region, pop, endpoint.machine_id, endpoint.region, reason)
        )
        stats = endpoint.stats
        stats.active += 1
        stats.picks += 1
        if stats.active > service.spec.concurrency.soft_limit and state.autostart is not None:
            state.autostart.over_soft(service, pop)  # start another machine meanwhile

    def _upstream(
        self, service: ServiceRoutes, endpoint: Endpoint, reason: str, region: str, pop: str
    ) -> Upstream:
        """The choice as the relay takes it. Without faults or jitter it is the same value
        for the same (machine, reason, client region, PoP) until the view changes: made
        once (an ``Upstream`` is immutable; its ``Lease`` is what is per request)."""
        state = self.state
        if state.faults or self._jitter is not None:
            return self._new_upstream(service, endpoint, reason, region, pop)
        if state.view is not self._made_for:
            self._made.clear()
            self._made_for = state.view
        key = (service.app, service.spec.internal_port, endpoint.machine_id, reason, region, pop)
        made = self._made.get(key)
        if made is None:
            if len(self._made) >= UPSTREAMS_KEPT:
                self._made.clear()
            made = self._made[key] = self._new_upstream(service, endpoint, reason, region, pop)
        return made

    def _new_upstream(
        self, service: ServiceRoutes, endpoint: Endpoint, reason: str, region: str, pop: str
    ) -> Upstream:
        state, spec = self.state, service.spec
        faults = state.faults
        if faults:  # only while someone injects faults: the usual path skips this
            faults = faults_for(faults, service.app, endpoint.machine_id, endpoint.region, pop)
        client_delay = upstream_delay = 0.0
        if self._simulate:
            client_delay = state.model.rtt(region, pop)
            upstream_delay = state.model.rtt(pop, endpoint.region)
            if self._jitter is not None:  # this request's (or connection's) share of jitter
                upstream_delay += jitter.sample(self._jitter, state.jitter_rng)
        view = state.view
        return Upstream(
            host=endpoint.host,
            port=endpoint.port,
            machine_id=endpoint.machine_id,
            region=endpoint.region,
            app=service.app,
            reason=reason,
            ticket=endpoint,
            send_proxy_proto=self.proxy_proto,
            client_delay=client_delay,
            upstream_delay=upstream_delay,
            timeout=spec.timeout,
            connect_timeout=spec.connect_timeout,
            retries=spec.retries,
            pop=pop,
            faults=faults,
            policy=view.policies.get((service.app, self.port), view.no_policy),
        )

    def _no_candidate(
        self,
        service: ServiceRoutes,
        detail: str,
        pop: str,
        hints: RouteHints | None,
        request: RouteRequest,
    ) -> NoUpstream:
        spec = service.spec
        exclude = request.exclude
        reason = f"no machine of app {service.app} can take it: {detail}"
        starter = self.state.autostart
        if starter is not None and len(service.started) < len(service.endpoints):
            # A stopped machine could take it: start it (once for a burst) and wait.
            queue, why, start_code = starter.admit(service, pop)
            if queue is not None:
                return NoUpstream(503, why, service.app, code=start_code, pop=pop, queue=queue)
            if start_code is not None:  # its start failed a moment ago: say why, now
                self.recorder.no_candidate(service.app, pop)
                if hints is not None:
                    self.recorder.request(service.app, pop, 503, None)
                return NoUpstream(503, why, service.app, code=start_code, pop=pop)
            reason += f"; {why}"
        if spec.queue_timeout > 0 and at_capacity(service, exclude, self.clock()):
            # Every machine that could take it is at its hard limit: the caller may wait
            # for a released slot (the platform queues, then answers 503).
            queue = self.state.queue_for(service.app, spec)
            code = capacity_code(http=hints is not None)
            return NoUpstream(503, reason, service.app, code=code, pop=pop, queue=queue)
        self.recorder.no_candidate(service.app, pop)
        if hints is not None:
            self.recorder.request(service.app, pop, 503, None)
        forced = request.force_instance
        code = no_candidate_code(
            instance_missing=forced is not None and forced not in service.by_machine,
            retried=bool(exclude),
        )
        return NoUpstream(503, reason, service.app, code=code, wait=spec.no_candidate_wait, pop=pop)

    # --- reports from the data plane -----------------------------------------------------

    def connected(self, upstream: Upstream, seconds: float) -> None:
        stats = _endpoint(upstream).stats
        if "http" not in self.handlers:  # over HTTP the answer decides, not the connect
            outlier.record_success(stats)
        observe_rtt(stats, seconds, self.clock())
        self.recorder.connected(upstream.app, upstream.region, seconds)

    def connect_failed(self, upstream: Upstream, reason: str) -> None:
        if reason == "exhausted":  # the edge's own descriptors ran out: not the machine's doing
            if self.gate is not None:
                self.gate.exhaustion("connect")
            self.recorder.connect_failed(upstream.app, upstream.region, reason)
            return
        self._failed(upstream, reason)
        self.recorder.connect_failed(upstream.app, upstream.region, reason)

    def responded(self, upstream: Upstream, status: int, seconds: float) -> None:
        if status >= 500:
            self._failed(upstream, f"status {status}")
        else:
            outlier.record_success(_endpoint(upstream).stats)
        self.recorder.request(
            upstream.app, upstream.pop, status, seconds, upstream.machine_id, upstream.region
        )

    def _failed(self, upstream: Upstream, why: str) -> None:
        """Passive health: count a failure of the machine; eject it after enough in a row."""
        endpoint = _endpoint(upstream)
        app = self.state.snapshot.apps.get(endpoint.app)
        service = None if app is None else app.services.get(self.port)
        if service is None:
            return  # the app or its service is gone: nothing to eject it from
        spec = service.spec.outlier
        now = self.clock()
        ejection = outlier.record_failure(endpoint.stats, service.started_stats, spec, now)
        if ejection is not None:
            LOG.warning(
                "machine %s of %s ejected for %gs after %d failures in a row (last: %s)",
                *(endpoint.machine_id, endpoint.app, ejection.seconds),
                *(spec.consecutive_failures, why),
                extra={"app": endpoint.app, "machine": endpoint.machine_id},
            )

    def transferred(self, upstream: Upstream, to_machine: int, to_client: int) -> None:
        self.recorder.transferred(upstream.app, to_machine, to_client)

    def answered(self, client: ClientInfo, answer: EdgeAnswer) -> None:
        app, pop = answer.app or self.app_label, answer.pop or self.pop
        self.state.answers.record(self.recorder, client, answer, app, pop, self.port)

    def release(self, upstream: Upstream) -> None:
        endpoint = _endpoint(upstream)
        endpoint.stats.active -= 1
        if self.state.queues:  # only once a service has been saturated
            self._wake_waiter(endpoint.app)

    def _wake_waiter(self, app_name: str) -> None:
        app = self.state.snapshot.apps.get(app_name)
        service = None if app is None else app.services.get(self.port)
        if service is not None:
            queue = self.state.queues.get((app_name, service.spec.internal_port))
            if queue is not None and len(queue):
                queue.wake_one()


def _endpoint(upstream: Upstream) -> Endpoint:
    ticket = upstream.ticket
    assert isinstance(ticket, Endpoint)
    return ticket


class AppRouter(BaseRouter):
    """A dedicated address of one app: the service behind this public port."""

    def __init__(
        self,
        state: RoutingState,
        app: str,
        port: PortSpec,
        recorder: Recorder,
        gate: ConnectionGate | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(state, port, recorder, gate, clock)
        self.app = self.app_label = app
        self._key = (app, self.port)  # of its service in the routing view

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        if hints is not None and hints.replay is not None:
            return self.replay_target(client, hints, exclude)
        service = self.state.view.services.get(self._key)
        if service is None:
            if hints is not None:
                self.recorder.request(self.app, self.pop, 503, None)
            return NoUpstream(503, f"app {self.app} has no service on port {self.port}", self.app)
        return self.route(service, client, hints, exclude)


class SharedRouter(BaseRouter):
    """The shared IPv4 on one port: the app comes from the Host header or the SNI."""

    def app_for(self, client: ClientInfo, hints: RouteHints | None) -> str | None:
        name = hints.host if hints is not None and hints.host else None
        if name is None and client.sni:
            name = client.sni.encode()
        app = None if name is None else self.state.snapshot.host_to_app(name)
        return app if app in self.state.shared_apps else None

    def accepts_name(self, name: str) -> bool:
        """For the TLS handshake: does an app holding the shared address answer to it?"""
        return self.state.snapshot.host_to_app(name.encode()) in self.state.shared_apps

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        if hints is not None and hints.replay is not None:
            return self.replay_target(client, hints, exclude)
        app_name = self.app_for(client, hints)
        service = None if app_name is None else self.state.view.services.get((app_name, self.port))
        if service is None:
            if hints is not None:
                self.recorder.request(SHARED_APP, self.pop, 404, None)
            domain = self.state.config.edge.app_domain
            return NoUpstream(
                404,
                f"no app answers to this host name on the shared address; "
                f"apps are reached as <app>.{domain}",
            )
        return self.route(service, client, hints, exclude)


def at_capacity(service: ServiceRoutes, exclude: frozenset[str], now: float) -> bool:
    """No candidate only because machines that could take it are at their hard limit."""
    return any(why_not(ep, service, exclude, now) == "at hard limit" for ep in service.started)
