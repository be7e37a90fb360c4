"""The runtime's time, on a fake clock: the capacity queue's deadline, slow start's ramp
and outlier ejection expiry through the real router and routing state (no sockets, no
sleep: the clock moves only when the test advances it); and the router's choice as a
value made once per view."""

from __future__ import annotations

import random
from typing import Any

import pytest

from edge.config.model import EdgeConfig, ServiceSpec
from edge.config.regions import default_catalogue
from edge.core.apps import AppRecord, Machine
from edge.core.clock import FakeClock
from edge.core.faults import Fault
from edge.core.latency import LatencyModel
from edge.core.routing import EndpointStats
from edge.dataplane.contract import ClientInfo, NoUpstream, RouteHints, Upstream
from edge.runtime.capacity import WaitQueue
from edge.runtime.metrics import Metrics
from edge.runtime.recorder import Recorder
from edge.runtime.router import AppRouter
from edge.runtime.routing_state import RoutingState
from edge.store import StoreSnapshot

APP = "hello"
CLIENT = ClientInfo("127.0.0.1", 40000, "127.0.0.1", 80)


def machine(machine_id: str) -> Machine:
    return Machine(
        id=machine_id, app=APP, region="lhr", state="started", address="127.0.0.1:1",
        ports=(), weight=1, demo=False, created_at=0, updated_at=0.0,
    )  # fmt: skip


def routed(clock: FakeClock, **service: Any) -> tuple[AppRouter, RoutingState]:
    """A routing state on ``clock`` with one service of two machines in lhr, its router."""
    config = EdgeConfig.model_validate({"edge": {"pops": ["lhr"], "local_region": "lhr"}})
    model = LatencyModel.build(config.latency, default_catalogue())
    state = RoutingState(config, model, random.Random(7), clock=clock)
    spec = ServiceSpec.model_validate({"internal_port": 8080, "ports": [{"port": 80}], **service})
    app = AppRecord(APP, "personal", "lhr", 0, (spec,))
    state.rebuild(StoreSnapshot(1, (app,), (machine("m1"), machine("m2")), ()), {})
    return AppRouter(state, APP, spec.ports[0], Recorder(Metrics())), state


def stats(state: RoutingState, machine_id: str) -> EndpointStats:
    return state.endpoint_stats()[(APP, machine_id, 8080)]


def choose(router: AppRouter, force: str | None = None) -> Upstream | NoUpstream:
    hints = None if force is None else RouteHints(force_instance=force.encode())
    return router.choose(CLIENT, hints, frozenset())


def share_of(router: AppRouter, machine_id: str, picks: int = 2000) -> float:
    hits = 0
    for _ in range(picks):
        up = choose(router)
        assert isinstance(up, Upstream)
        hits += up.machine_id == machine_id
        router.release(up)
    return hits / picks


@pytest.mark.parametrize(
    ("waited", "remaining"), [(0.0, 2.0), (0.5, 1.5), (1.999, 0.001), (2.0, 0.0), (9.0, 0.0)]
)
def test_a_wait_in_the_capacity_queue_runs_out_by_the_queues_clock(
    waited: float, remaining: float
) -> None:
    clock = FakeClock()
    queue = WaitQueue(timeout=2.0, clock=clock)
    token = queue.wait(lambda: None)
    assert queue.deadline(token) == clock.now + 2.0
    clock.advance(waited)
    assert queue.remaining(token) == pytest.approx(remaining)


def test_the_routing_states_queues_use_its_clock() -> None:
    clock = FakeClock(50.0)
    router, _ = routed(clock, concurrency={"hard_limit": 1, "soft_limit": 1})
    taken = [choose(router), choose(router)]
    answer = choose(router)
    assert isinstance(answer, NoUpstream) and answer.queue is not None
    queue = answer.queue
    assert isinstance(queue, WaitQueue)
    token = queue.wait(lambda: None)
    clock.advance(1.0)
    assert queue.remaining(token) == pytest.approx(4.0)  # queue_timeout 5 s
    for up in taken:
        assert isinstance(up, Upstream)
        router.release(up)


# (seconds since m2 became ready, lowest and highest share of picks it gets): slow start
# ramps its weight from 10 % to 100 % over the 10 s window (strategies.slow_start_factor).
SLOW_START = [(0.0, 0.05, 0.15), (5.0, 0.30, 0.42), (10.0, 0.45, 0.55), (60.0, 0.45, 0.55)]


@pytest.mark.parametrize(("age", "low", "high"), SLOW_START)
def test_slow_start_ramps_by_the_routers_clock(age: float, low: float, high: float) -> None:
    clock = FakeClock()
    router, state = routed(clock, strategy="weighted_latency", slow_start="10s")
    stats(state, "m2").ready_since = clock.now  # as the health monitor stamps it
    clock.advance(age)
    assert low <= share_of(router, "m2") <= high


# (seconds after the ejection, is m1 chosen again): ejected for 30 s (the default spec)
EJECTION = [(0.0, False), (29.9, False), (30.0, True), (31.0, True)]


@pytest.mark.parametrize(("later", "back"), EJECTION)
def test_an_ejection_expires_by_the_routers_clock(later: float, back: bool) -> None:
    clock = FakeClock()
    router, state = routed(clock)
    up = choose(router, "m1")
    assert isinstance(up, Upstream)
    for _ in range(5):
        router.responded(up, 503, 0.01)
    router.release(up)
    assert stats(state, "m1").ejected_until == clock.now + 30.0
    clock.advance(later)
    assert isinstance(choose(router, "m1"), Upstream) is back


# --- the choice as a value: made once per (machine, reason, region, PoP) and view ------


def test_the_same_choice_is_one_value_until_the_view_changes() -> None:
    router, state = routed(FakeClock())
    first, second = choose(router, "m1"), choose(router, "m1")
    assert isinstance(first, Upstream) and first is second
    assert state.endpoint_stats()[(APP, "m1", 8080)].active == 2  # one load slot each
    assert choose(router, "m2") is not first
    spec = state.snapshot.apps[APP].services[80].spec
    app = AppRecord(APP, "personal", "lhr", 0, (spec,))
    state.rebuild(StoreSnapshot(2, (app,), (machine("m1"), machine("m2")), ()), {})
    again = choose(router, "m1")
    assert isinstance(again, Upstream) and again is not first and again == first


def test_with_faults_each_choice_is_made_afresh() -> None:
    router, state = routed(FakeClock())
    state.faults = (Fault("f1", "latency", "machine", "m1", app=APP, latency=0.005),)
    first, second = choose(router, "m1"), choose(router, "m1")
    assert isinstance(first, Upstream) and isinstance(second, Upstream)
    assert first is not second and first.faults == second.faults != ()
