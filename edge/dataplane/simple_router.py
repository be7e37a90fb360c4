"""A minimal ``ListenerRouter`` over a fixed list of upstreams, and a standalone relay.

``StaticRouter`` picks machines round robin (no health, no load), counts what the data
plane reports, and is what the relay's tests and the benchmark harness route with::

    python -m edge.dataplane.simple_router --listen 127.0.0.1:8090 --mode http \\
        --upstream 127.0.0.1:8081

runs one uvloop listener with the HTTP relay (``--mode tcp``: the raw TCP relay).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence

from edge.core.error_codes import no_candidate_code
from edge.dataplane.contract import (
    DEFAULT_POLICY,
    Choice,
    ClientInfo,
    EdgeAnswer,
    NoUpstream,
    ReplayReport,
    RouteHints,
    Upstream,
)

_ANSWERS_KEPT = 1000


class StaticRouter:
    """Round robin over fixed (host, port) machines; hosts optionally restricted."""

    def __init__(
        self,
        upstreams: Sequence[tuple[str, int]],
        *,
        pop: str = "iad",
        app: str = "static",
        handlers: tuple[str, ...] = ("http",),
        force_https: bool = False,
        retries: int = 2,
        hosts: frozenset[bytes] | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        client_delay: float = 0.0,
        upstream_delay: float = 0.0,
        retry_after: int = 1,
    ) -> None:
        self.pop = pop
        self.handlers = handlers
        self.force_https = force_https
        self.app = app
        self.hosts = hosts  # None: any Host; else others get 404 (a shared IPv4)
        self.retry_after = retry_after
        self.machines = [
            Upstream(
                host=host,
                port=port,
                machine_id=f"m{i}",
                region=pop,
                app=app,
                reason="round_robin",
                ticket=i,
                client_delay=client_delay,
                upstream_delay=upstream_delay,
                timeout=timeout,
                connect_timeout=connect_timeout,
                retries=retries,
            )
            for i, (host, port) in enumerate(upstreams)
        ]
        self._next = 0
        # What the data plane reported.
        self.chosen = 0
        self.released = 0
        self.opened_count = 0
        self.closed_count = 0
        self.connects: list[tuple[str, float]] = []
        self.connect_failures: list[tuple[str, str]] = []
        self.statuses: dict[int, int] = {}
        self.bytes_to_machine = 0
        self.bytes_to_client = 0
        self.last_hints: RouteHints | None = None
        self.last_client: ClientInfo | None = None
        self.policy = DEFAULT_POLICY
        self.replays: list[tuple[str, str]] = []  # (app, result) of every replay reported
        self.answers: list[EdgeAnswer] = []  # the edge's own error answers (the first 1000)

    @property
    def in_flight(self) -> int:
        """Upstreams handed out and not released yet."""
        return self.chosen - self.released

    def choose(
        self, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> Choice:
        self.last_hints = hints
        self.last_client = client
        if self.hosts is not None and (hints is None or hints.host not in self.hosts):
            return NoUpstream(404, "unknown host", retry_after=self.retry_after)
        count = len(self.machines)
        if count and not exclude:
            machine = self.machines[self._next % count]
            self._next += 1
            self.chosen += 1
            return machine
        for _ in range(count):
            machine = self.machines[self._next % count]
            self._next += 1
            if machine.machine_id not in exclude:
                self.chosen += 1
                return machine
        code = no_candidate_code(instance_missing=False, retried=bool(exclude))
        return NoUpstream(
            503, "no machine can take it", app=self.app, code=code, retry_after=self.retry_after
        )

    def connected(self, upstream: Upstream, seconds: float) -> None:
        if len(self.connects) < 10_000:  # bounded: a benchmark opens few, tests fewer
            self.connects.append((upstream.machine_id, seconds))

    def connect_failed(self, upstream: Upstream, reason: str) -> None:
        self.connect_failures.append((upstream.machine_id, reason))

    def responded(self, upstream: Upstream, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def transferred(self, upstream: Upstream, to_machine: int, to_client: int) -> None:
        self.bytes_to_machine += to_machine
        self.bytes_to_client += to_client

    def release(self, upstream: Upstream) -> None:
        self.released += 1

    def replayed(self, app: str, result: str, report: ReplayReport | None) -> None:
        self.replays.append((app, result))

    def answered(self, client: ClientInfo, answer: EdgeAnswer) -> None:
        if len(self.answers) < _ANSWERS_KEPT:
            self.answers.append(answer)

    def opened(self, client: ClientInfo) -> object:
        self.opened_count += 1
        return None

    def closed(self, token: object) -> None:
        self.closed_count += 1


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _protocol_factory(
    mode: str, router: StaticRouter, loop: asyncio.AbstractEventLoop
) -> Callable[[], asyncio.Protocol] | str:
    """The listener's protocol factory, or why there is none."""
    if mode == "tcp":
        try:
            from edge.dataplane.tcp_proxy import make_tcp_protocol_factory
        except ImportError as exc:
            return f"--mode tcp needs edge.dataplane.tcp_proxy.make_tcp_protocol_factory ({exc})"
        return make_tcp_protocol_factory(router, loop)
    from edge.config.model import HttpSpec
    from edge.dataplane.http_proxy import make_http_protocol_factory
    from edge.dataplane.upstream_pool import UpstreamPool

    settings = HttpSpec()
    pool = UpstreamPool(loop, settings.upstream_idle_timeout)
    return make_http_protocol_factory(router, settings, pool, loop)


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    router = StaticRouter([_host_port(u) for u in args.upstream], pop=args.pop)
    factory = _protocol_factory(args.mode, router, loop)
    if isinstance(factory, str):
        print(f"Error: {factory}", file=sys.stderr)
        return 2
    host, port = _host_port(args.listen)
    server = await loop.create_server(factory, host, port, reuse_address=True, backlog=4096)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    print(f"edge relay ({args.mode}) on {args.listen} -> {', '.join(args.upstream)}", flush=True)
    await stop
    server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge.dataplane.simple_router",
        description="A standalone edge relay with a fixed round-robin router (benchmarks).",
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept clients on")
    parser.add_argument("--mode", choices=("http", "tcp"), default="http")
    parser.add_argument(
        "--upstream", action="append", required=True, help="HOST:PORT of a machine (repeat)"
    )
    parser.add_argument("--pop", default="iad", help="the PoP name in Fly-Region/request ids")
    args = parser.parse_args(argv)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
