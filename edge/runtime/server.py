"""The daemon's lifecycle: startup -> run until a signal -> drain -> shutdown.

``EdgeDaemon`` owns every long-lived part (state directory, metrics, the API site,
and, as later parts land, the store, listeners and health runners). Startup
failures are ``StartupError``s that the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.api.app import ApiContext, build_api
from edge.config.model import EdgeConfig
from edge.config.types import split_host_port
from edge.core.regions import RegionCatalogue
from edge.errors import StartupError
from edge.runtime.metrics import Metrics
from edge.runtime.statedir import prepare_state_dir

LOG = logging.getLogger("edge")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``edge serve`` was asked, after defaults were applied."""

    config_path: Path | None
    state_dir: Path
    api_listen: str
    drain_timeout: float


def describe_bind_error(what: str, address: str, exc: OSError) -> str:
    causes = {
        errno.EADDRINUSE: "address already in use (is another edge running? pick another port)",
        errno.EADDRNOTAVAIL: "address not available on this machine",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }
    cause = causes.get(exc.errno or 0, exc.strerror or str(exc))
    return f"cannot listen on {address} ({what}): {cause}"


class EdgeDaemon:
    def __init__(
        self, config: EdgeConfig, options: ServeOptions, catalogue: RegionCatalogue
    ) -> None:
        self.config = config
        self.options = options
        self.catalogue = catalogue
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def status(self) -> dict[str, Any]:
        return {"state_dir": str(self.options.state_dir), "pops": list(self.config.edge.pops)}

    async def start(self) -> None:
        prepare_state_dir(self.options.state_dir)
        self.metrics.start_time.set(time.time())
        await self._start_api()
        LOG.info(
            "edge started",
            extra={"api": self.options.api_listen, "state_dir": str(self.options.state_dir)},
        )

    async def _start_api(self) -> None:
        context = ApiContext(metrics=self.metrics, status=self.status)
        self._runner = web.AppRunner(build_api(context), access_log=None)
        await self._runner.setup()
        host, port = split_host_port(self.options.api_listen)
        self._site = web.TCPSite(
            self._runner, host, port, shutdown_timeout=self.options.drain_timeout
        )
        try:
            await self._site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise StartupError(describe_bind_error("api", self.options.api_listen, exc)) from None

    def request_stop(self, signame: str) -> None:
        if not self.stopping.is_set():
            LOG.info("stopping", extra={"signal": signame})
            self.stopping.set()

    async def stop(self) -> None:
        """Stop accepting, let in-flight work finish within the drain timeout, close."""
        started = time.monotonic()
        if self._runner is not None:
            await self._runner.cleanup()
        LOG.info("edge stopped", extra={"drain_seconds": round(time.monotonic() - started, 3)})

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            await self.stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()
