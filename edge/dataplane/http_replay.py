"""fly-replay in the HTTP relay: keep the request, catch the answer, deliver it again.

``ReplaySide`` sits between ``ClientSide`` and ``HttpProxyProtocol``. While a request
is in flight its body is kept (up to ``PortPolicy.replay_buffer``, edge.yaml's
``http.replay_buffer``). When the machine's answer carries ``fly-replay`` (or is of the
JSON form's content type) nothing of it reaches the client: the answer is read to its
end (the JSON form's body is the instruction), the machine connection goes back to the
pool, and the original request goes through the router again with the app's
instruction as its route (``RouteHints.replay``). The rules (parsing, limits, targets,
fallbacks, the cache) are ``edge.core.replay`` and ``edge.core.replay_cache``.

A replay whose target cannot be reached (no candidate, every connect failed, or not
connected within the instruction's ``timeout``) goes back to the replaying machine
with ``fly-replay-failed`` when the instruction has a ``fallback``; without one the
client gets the error.
"""

from __future__ import annotations

import time
from typing import Final

from edge.core.error_codes import ErrorCode
from edge.core.relay_decisions import DeadlineKind
from edge.core.replay import (
    MAX_JSON_BODY,
    FailReason,
    InvalidReplay,
    ReplayInstruction,
    ReplayRoute,
    check_replay,
    fallback_route,
    parse_header,
    parse_json,
    replay_failed,
    replay_route,
    replay_src,
    with_cache_headers,
)
from edge.core.replay_cache import (
    CacheStatus,
    SessionCacheSpec,
    SessionValue,
    cacheable,
    invalidate,
    lookup,
    store,
)
from edge.dataplane.contract import NoUpstream, ReplayReport, RouteHints, Upstream
from edge.dataplane.deadlines import INF
from edge.dataplane.exchange import NO_BODY
from edge.dataplane.http_client_side import ClientSide
from edge.dataplane.http_heads_extra import (
    ReplaySignal,
    dechunk,
    edit_request,
    header_value,
    host_name,
    replay_signal,
    request_path,
    session_reader,
)
from edge.dataplane.upstream_conn import UpstreamConnection

_CACHE_CONTROL: Final = b"fly-replay-cache-control"
_REFUSALS: Final = frozenset({ErrorCode.PA04, ErrorCode.PA05})  # the target app: no fallback


class ReplayFlow:
    """What one request's replays so far have been."""

    __slots__ = (
        "cache_status",
        "count",
        "deadline_at",
        "fallback",
        "instruction",
        "source_app",
        "source_machine",
        "source_region",
        "started",
    )

    def __init__(self, source: Upstream, instruction: ReplayInstruction, now: float) -> None:
        self.count = 0
        self.instruction = instruction
        self.source_app = source.app
        self.source_machine = source.machine_id
        self.source_region = source.region
        self.started = now
        self.deadline_at = 0.0  # connect to the target by then, or fall back (0: no limit)
        self.fallback = False  # this is the fallback request: it cannot replay again
        self.cache_status: CacheStatus | None = None


class ReplaySide(ClientSide):
    """The replay half of the HTTP relay (see the module docstring)."""

    # -- hooks of HttpProxyProtocol ------------------------------------------------------------

    def _keep_request(self, head: bytes, hints: RouteHints | None, has_body: bool) -> None:
        """A new request: keep what a replay needs; the replay cache may route it."""
        ex = self._ex
        ex.orig_head = head
        ex.orig_hints = hints
        if has_body and self._router.policy.replay_buffer > 0:
            ex.body_buf = []
        if self._l.replay_cache.entries:
            self._route_from_cache(head, hints)

    def _keep_body(self, chunk: bytes) -> None:
        buf = self._ex.body_buf
        assert buf is not None
        self._ex.body_size += len(chunk)
        if self._ex.body_size > self._router.policy.replay_buffer:
            self._ex.body_buf = None  # streamed from now on: this request cannot be replayed
        else:
            buf.append(chunk)

    def _intercept(self, up: Upstream, status: int, head: bytes, body: bytes) -> bool:
        """A response head that may be a replay answer; True: it is, and it is held."""
        if status == 101 or status < 200:
            return False
        signal = replay_signal(head)
        if signal is None:
            return False
        self._ex.signal = signal
        self._ex.signal_body = bytearray(body if signal.json else b"")
        return True

    def _signal_data(self, data: bytes) -> None:
        if (
            self._ex.signal is not None
            and self._ex.signal.json
            and len(self._ex.signal_body) <= MAX_JSON_BODY
        ):
            self._ex.signal_body += data

    def _signal_end(self, conn: UpstreamConnection, reusable: bool) -> None:
        """The replay answer was read whole: give the connection back, then replay."""
        self._conn = None
        if self._up_full:  # that connection's back-pressure is not ours any more
            self._up_full = False
            self._update_reading()
        if reusable and self._ex.req_done:
            self._l.pool.put(conn)
        else:
            conn.close()
        lease = self._tries.lease
        signal, self._ex.signal = self._ex.signal, None
        assert lease is not None and signal is not None
        up = lease.upstream
        self._release()
        try:
            instruction = self._parse_signal(signal)
        except InvalidReplay as exc:
            self._refuse_replay(up.app, up, ErrorCode.PA03, 502, f"invalid fly-replay: {exc}")
            return
        self._replay(up, instruction)

    def _parse_signal(self, signal: ReplaySignal) -> ReplayInstruction:
        if signal.header is not None:
            instruction = parse_header(signal.header)
        else:
            body = bytes(self._ex.signal_body)
            if signal.chunked:
                try:
                    body = dechunk(body)
                except ValueError as exc:
                    raise InvalidReplay(f"the replay JSON body: {exc}") from None
            instruction = parse_json(body)
        return with_cache_headers(instruction, signal.cache, signal.cache_ttl)

    # -- replaying --------------------------------------------------------------------------

    def _replay(self, source: Upstream, instruction: ReplayInstruction) -> None:
        flow = self._ex.flow
        now = self._clock()
        body_kept = self._ex.body_buf is not None or self._ex.body_mode == NO_BODY
        refusal = check_replay(
            0 if flow is None else flow.count,
            body_kept,
            flow is not None and flow.fallback,
            self._router.policy.replay_buffer,
        )
        if refusal is not None:
            self._refuse_replay(source.app, source, refusal.code, refusal.status, refusal.text)
            return
        if not self._ex.req_done:  # the machine answered before the whole body arrived
            self._ex.replay_waiting = True
            self._ex.pending = (source, instruction)
            self._set_deadline(now + source.timeout, DeadlineKind.BODY)
            return
        if flow is None:
            flow = self._ex.flow = ReplayFlow(source, instruction, now)
        flow.count += 1
        flow.instruction = instruction
        flow.source_app, flow.source_machine = source.app, source.machine_id
        flow.source_region = source.region
        flow.cache_status = "bypass" if self._ex.cache_bypass else "miss"
        self._remember(source, instruction, now)
        if instruction.timeout is not None and instruction.fallback is not None:
            flow.deadline_at = now + instruction.timeout
        else:
            flow.deadline_at = 0.0
        src = replay_src(
            source.machine_id, source.region, time.time_ns() // 1000, instruction.state
        )
        added = b"fly-replay-src: " + src + b"\r\nfly-replay-cache-status: "
        added += flow.cache_status.encode() + b"\r\n"
        route = replay_route(instruction, source.machine_id, source.app)
        self._dispatch(route, instruction, added, "replayed")

    def _body_arrived(self) -> None:
        """The rest of the body came after the replay answer: replay now."""
        self._ex.replay_waiting = False
        pending, self._ex.pending = self._ex.pending, None
        if pending is not None:
            self._replay(*pending)

    def _dispatch(
        self, route: ReplayRoute, instruction: ReplayInstruction, added: bytes, result: str
    ) -> None:
        orig = self._ex.orig_hints
        self._ex.raw_head = edit_request(self._ex.orig_head, instruction.transform, added)
        self._ex.hints = RouteHints(
            host=None if orig is None else orig.host,
            client_region=None if orig is None else orig.client_region,
            replay=route,
        )
        self._ex.fwd_pop = ""
        self._tries.retarget()  # a new target: its own retry budget
        self._ex.resp_started = False
        buf = self._ex.body_buf
        self._ex.resend = b"".join(buf) if buf else None
        flow = self._ex.flow
        if flow is not None and flow.deadline_at:
            self._set_deadline(flow.deadline_at, DeadlineKind.REPLAY)
        else:
            self._set_deadline(INF, DeadlineKind.NONE)
        fallback = None if flow is None else flow.fallback
        self._choose()
        if flow is not None and self._ex.flow is flow and flow.fallback == fallback:
            self._report(result, route)  # else a fallback (or a new request) took over

    def _report(self, result: str, route: ReplayRoute) -> None:
        flow = self._ex.flow
        if flow is None:
            return
        up = None if self._tries.lease is None else self._tries.lease.upstream
        report = ReplayReport(
            at=time.time(),
            app=flow.source_app,
            source_machine=flow.source_machine,
            source_region=flow.source_region,
            instruction=flow.instruction.describe(),
            result=result,
            target_app=route.app,
            target_machine="" if up is None else up.machine_id,
            target_region="" if up is None else up.region,
            why=route.why if up is None else f"{route.why}; chosen by {up.reason}",
            pop="" if up is None else up.pop,
        )
        self._router.replayed(flow.source_app, result, report)

    def _refuse_replay(
        self, app: str, source: Upstream, code: ErrorCode, status: int, text: str
    ) -> None:
        flow = self._ex.flow
        instruction = "" if flow is None else flow.instruction.describe()
        self._report_refusal(app, source.machine_id, source.region, instruction, code, text)
        self._answer(status, f"edge: {text}\n", b"", code)

    def _report_refusal(
        self, app: str, machine: str, region: str, instruction: str, code: str, text: str
    ) -> None:
        result = f"refused_{code}"
        report = ReplayReport(time.time(), app, machine, region, instruction, result, why=text)
        self._router.replayed(app, result, report)

    # -- when the target cannot be reached ----------------------------------------------------

    def _replay_unreachable(self, reason: FailReason, refusal: NoUpstream | None) -> bool:
        """Fall back to the replaying machine if the instruction says so; True if it did."""
        flow = self._ex.flow
        if flow is None or flow.fallback or flow.count == 0:
            return False
        if refusal is not None and refusal.code in _REFUSALS:  # not a reachability problem
            self._report_refusal(
                flow.source_app, flow.source_machine, flow.source_region,
                flow.instruction.describe(), refusal.code, refusal.reason,
            )  # fmt: skip
            return False
        if reason == "no_candidate" and self._tries.exclude:
            reason = "retries_exhausted"  # it had candidates, and connecting failed
        route = fallback_route(flow.instruction, flow.source_machine, flow.source_app)
        if route is None:
            self._router.replayed(flow.source_app, "failed", None)
            return False
        elapsed_ms = int((self._clock() - flow.started) * 1000)
        target_app = flow.instruction.app or flow.source_app
        failed = replay_failed(
            flow.instruction, target_app, flow.source_machine, reason, elapsed_ms
        )
        flow.fallback = True
        flow.deadline_at = 0.0
        self._dispatch(
            route, flow.instruction, b"fly-replay-failed: " + failed + b"\r\n", "fallback"
        )
        return True

    def _replay_timed_out(self, now: float) -> bool:
        """The deadline passed: a replay's connect timeout, or a body that never came."""
        if self._ex.replay_waiting:
            self._ex.replay_waiting = False
            self._reject(408, "edge: the request body did not arrive in time\n")
            return True
        flow = self._ex.flow
        if flow is None or not flow.deadline_at or flow.deadline_at > now or self._conn is not None:
            return False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._tries.leave_queue()
        # A connect still under way is not waited for: releasing its lease makes it stale.
        self._release(report=False)
        return self._replay_unreachable("timeout", None)

    # -- the replay cache -------------------------------------------------------------------

    def _route_from_cache(self, head: bytes, hints: RouteHints | None) -> None:
        skip = header_value(head, _CACHE_CONTROL)
        if skip is not None and skip.lower() == b"skip":
            self._ex.cache_bypass = True
            return
        host = self._host_name()
        specs = self._session_specs()
        entry = lookup(
            self._l.replay_cache, host, request_path(head), self._session(head), specs,
            self._clock(),
        )  # fmt: skip
        if entry is None:
            return
        self._ex.raw_head = head[:-2] + b"fly-replay-cache-status: hit\r\n\r\n"
        self._ex.hints = RouteHints(
            host=None if hints is None else hints.host,
            client_region=None if hints is None else hints.client_region,
            replay=entry.route,
        )
        self._router.replayed(entry.route.source_app, "cache_hit", None)

    def _remember(self, source: Upstream, instruction: ReplayInstruction, now: float) -> None:
        path = request_path(self._ex.orig_head)
        specs = self._session_specs()
        if instruction.cache_invalidate:
            self._l.replay_cache = invalidate(
                self._l.replay_cache, self._host_name(), path, self._session(self._ex.orig_head),
                specs, now,
            )  # fmt: skip
        elif cacheable(instruction, path, specs):
            self._l.replay_cache = store(
                self._l.replay_cache, instruction, (self._host_name(), path),
                (source.machine_id, source.app), self._session(self._ex.orig_head), specs, now,
            )  # fmt: skip

    def _session_specs(self) -> tuple[SessionCacheSpec, ...]:
        # The listener's port: on the shared IPv4 the app is not known before routing.
        return self._router.policy.replay_caches

    def _host_name(self) -> str:
        return host_name(self._head.host)

    def _session(self, head: bytes) -> SessionValue:
        return session_reader(head)

    # -- provided by HttpProxyProtocol --------------------------------------------------------

    def _choose(self) -> None:
        raise NotImplementedError
