"""The attempt controller (edge.dataplane.attempts) over the real StaticRouter: leases
freed once, failed connects reported and retried within the budget, the capacity queue
waited out from the first wait. No sockets, no event loop: times are plain numbers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from edge.core.relay_decisions import ConnectVerdict
from edge.dataplane.attempts import Attempts, Lease
from edge.dataplane.contract import ClientInfo, NoUpstream, RouteHints, Upstream
from edge.dataplane.simple_router import StaticRouter

CLIENT = ClientInfo("127.0.0.9", 40000, "127.0.0.1", 80)
HINTS = RouteHints(b"app.example")


class ListQueue:
    """A CapacityQueue: waiters kept in order; ``free_one`` wakes the first."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self.waiting: dict[object, Callable[[], None]] = {}
        self.cancelled: list[object] = []

    @property
    def timeout(self) -> float:
        return self._timeout

    def wait(self, callback: Callable[[], None]) -> object:
        token = object()
        self.waiting[token] = callback
        return token

    def cancel(self, token: object) -> None:
        self.cancelled.append(token)
        self.waiting.pop(token, None)

    def free_one(self) -> None:
        token = next(iter(self.waiting))
        self.waiting.pop(token)()


def router(machines: int = 3, retries: int = 2) -> StaticRouter:
    return StaticRouter([("127.0.0.1", 9000 + i) for i in range(machines)], retries=retries)


def chosen(attempts: Attempts) -> Upstream:
    choice = attempts.choose(HINTS)
    assert isinstance(choice, Upstream), choice
    return choice


# --- Lease -----------------------------------------------------------------------------------


def test_a_lease_released_twice_frees_its_slot_once() -> None:
    r = router()
    up = r.choose(CLIENT, None, frozenset())
    assert isinstance(up, Upstream)
    lease = Lease(r, up)
    assert lease.held and r.in_flight == 1
    lease.release()
    lease.release()
    assert not lease.held
    assert (r.chosen, r.released, r.in_flight) == (1, 1, 0)


def test_a_lease_reports_the_bytes_once_then_frees() -> None:
    r = router()
    up = r.choose(CLIENT, None, frozenset())
    assert isinstance(up, Upstream)
    lease = Lease(r, up)
    lease.release(120, 4000)
    lease.release(120, 4000)
    assert (r.bytes_to_machine, r.bytes_to_client, r.released) == (120, 4000, 1)


def test_a_lease_without_bytes_reports_none() -> None:
    r = router()
    up = r.choose(CLIENT, None, frozenset())
    assert isinstance(up, Upstream)
    Lease(r, up).release()
    assert (r.bytes_to_machine, r.bytes_to_client) == (0, 0)


def test_attempts_release_is_idempotent() -> None:
    r = router()
    attempts = Attempts(r, CLIENT)
    chosen(attempts)
    attempts.release(10, 20)
    attempts.release(10, 20)
    assert (r.chosen, r.released, r.bytes_to_machine) == (1, 1, 10)
    assert attempts.lease is None


# --- failed connects ---------------------------------------------------------------------------


def test_failed_excludes_the_machine_and_retries_until_the_budget_is_used() -> None:
    r = router(machines=4, retries=2)
    attempts = Attempts(r, CLIENT)
    tried = []
    verdicts = []
    for _ in range(3):
        tried.append(chosen(attempts).machine_id)
        verdicts.append(attempts.failed("refused"))
    # 1 + 2 retries: the third failure gives up (tries == retries + 1)
    assert verdicts == [ConnectVerdict.RETRY, ConnectVerdict.RETRY, ConnectVerdict.GIVE_UP]
    assert len(set(tried)) == 3  # never the same machine twice
    assert attempts.exclude == frozenset(tried[:2])  # the last one was not retried
    assert r.connect_failures == [(m, "refused") for m in tried]
    assert (r.chosen, r.released, r.in_flight) == (3, 3, 0)
    assert attempts.last_cause == "refused"
    assert attempts.tries == 3


def test_the_excluded_machines_are_not_chosen_again() -> None:
    r = router(machines=2, retries=2)
    attempts = Attempts(r, CLIENT)
    chosen(attempts)
    assert attempts.failed("timeout") is ConnectVerdict.RETRY
    chosen(attempts)
    assert attempts.failed("timeout") is ConnectVerdict.RETRY
    refusal = attempts.choose(HINTS)  # both excluded: the router says no
    assert isinstance(refusal, NoUpstream)
    assert refusal.status == 503
    assert r.in_flight == 0


@pytest.mark.parametrize(
    ("retries", "verdicts"),
    [
        (0, [ConnectVerdict.GIVE_UP]),
        (1, [ConnectVerdict.RETRY, ConnectVerdict.GIVE_UP]),
    ],
)
def test_the_budget_is_the_services(retries: int, verdicts: list[ConnectVerdict]) -> None:
    r = router(machines=3, retries=retries)
    attempts = Attempts(r, CLIENT)
    got = []
    for _ in verdicts:
        chosen(attempts)
        got.append(attempts.failed("reset"))
    assert got == verdicts


def test_the_budget_travels_with_the_choice() -> None:
    """The retries of the Upstream that was chosen count, not any router-wide constant."""
    r = router(machines=3, retries=0)
    r.machines[0] = replace(r.machines[0], retries=1)
    attempts = Attempts(r, CLIENT)
    assert chosen(attempts).machine_id == "m0"
    assert attempts.failed("refused") is ConnectVerdict.RETRY
    assert chosen(attempts).machine_id == "m1"
    assert attempts.failed("refused") is ConnectVerdict.GIVE_UP


def test_exhausted_never_retries() -> None:
    r = router(machines=3, retries=2)
    attempts = Attempts(r, CLIENT)
    up = chosen(attempts)
    assert attempts.failed("exhausted") is ConnectVerdict.EDGE_EXHAUSTED
    assert attempts.exclude == frozenset()
    assert r.connect_failures == [(up.machine_id, "exhausted")]
    assert r.in_flight == 0


def test_cancelled_is_not_reported_against_the_machine() -> None:
    r = router(machines=3, retries=2)
    attempts = Attempts(r, CLIENT)
    chosen(attempts)
    assert attempts.failed("cancelled") is ConnectVerdict.GIVE_UP
    assert r.connect_failures == []
    assert attempts.exclude == frozenset()
    assert (r.chosen, r.released) == (1, 1)  # its slot is freed all the same


def test_restart_resets_the_budget() -> None:
    r = router(machines=4, retries=1)
    attempts = Attempts(r, CLIENT)
    chosen(attempts)
    assert attempts.failed("refused") is ConnectVerdict.RETRY
    chosen(attempts)
    attempts.release()
    assert attempts.tries == 2
    attempts.restart()  # the next request on a keep-alive connection
    assert attempts.tries == 0
    assert attempts.exclude == frozenset()
    assert attempts.last_cause == ""
    chosen(attempts)
    assert attempts.failed("refused") is ConnectVerdict.RETRY  # a full budget again
    assert attempts.count == 3  # only grows: a stale callback can tell
    assert r.in_flight == 0


def test_lost_reports_excludes_and_frees_with_the_bytes() -> None:
    r = router(machines=3)
    attempts = Attempts(r, CLIENT)
    up = chosen(attempts)
    attempts.lost("reset", 300, 0)
    attempts.lost("reset", 300, 0)  # nothing leased any more: nothing happens
    assert r.connect_failures == [(up.machine_id, "reset")]
    assert attempts.exclude == {up.machine_id}
    assert (r.chosen, r.released, r.bytes_to_machine) == (1, 1, 300)
    assert chosen(attempts).machine_id != up.machine_id


def test_retarget_gives_a_fly_replay_target_a_fresh_budget() -> None:
    r = router(machines=3, retries=1)
    attempts = Attempts(r, CLIENT)
    chosen(attempts)
    assert attempts.failed("refused") is ConnectVerdict.RETRY
    chosen(attempts)
    attempts.release()
    attempts.retarget()
    assert attempts.tries == 0
    assert attempts.exclude == frozenset()
    assert attempts.queue_deadline == 0.0
    chosen(attempts)
    assert attempts.failed("refused") is ConnectVerdict.RETRY


def test_connected_reports_the_leased_machine() -> None:
    r = router()
    attempts = Attempts(r, CLIENT)
    up = chosen(attempts)
    attempts.connected(0.25)
    assert r.connects == [(up.machine_id, 0.25)]
    attempts.release()
    attempts.connected(0.5)  # nothing leased: nothing reported
    assert len(r.connects) == 1


# --- the capacity queue ------------------------------------------------------------------------


def full(queue: ListQueue | None) -> NoUpstream:
    return NoUpstream(503, "every machine is at its hard limit", app="static", queue=queue)


def test_wait_or_refuse_waits_until_the_deadline_from_the_first_wait() -> None:
    attempts = Attempts(router(), CLIENT)
    queue = ListQueue(timeout=5.0)
    woken: list[int] = []
    assert attempts.wait_or_refuse(full(queue), 100.0, lambda: woken.append(1))
    assert attempts.queue_deadline == 105.0
    assert len(queue.waiting) == 1
    # woken, the slot is taken again: waits more, but the deadline does not move
    queue.free_one()
    assert woken == [1]
    attempts.woken()
    assert attempts.queue is None
    assert attempts.wait_or_refuse(full(queue), 104.0, lambda: None)
    assert attempts.queue_deadline == 105.0
    attempts.woken()
    # at the deadline: refused
    assert not attempts.wait_or_refuse(full(queue), 105.0, lambda: None)
    assert attempts.queue_deadline == 105.0
    assert attempts.refusal is not None and attempts.refusal.queue is queue


def test_wait_or_refuse_refuses_late_wakers() -> None:
    attempts = Attempts(router(), CLIENT)
    queue = ListQueue(timeout=1.0)
    assert attempts.wait_or_refuse(full(queue), 10.0, lambda: None)
    attempts.woken()
    assert not attempts.wait_or_refuse(full(queue), 12.0, lambda: None)
    assert len(queue.waiting) == 1  # the refused wait did not queue again


def test_wait_or_refuse_without_a_queue_refuses() -> None:
    attempts = Attempts(router(), CLIENT)
    refusal = full(None)
    assert not attempts.wait_or_refuse(refusal, 100.0, lambda: None)
    assert attempts.queue is None
    assert attempts.refusal is refusal


def test_restart_forgets_the_queue_deadline() -> None:
    attempts = Attempts(router(), CLIENT)
    queue = ListQueue(timeout=5.0)
    assert attempts.wait_or_refuse(full(queue), 100.0, lambda: None)
    attempts.woken()
    attempts.restart()
    assert attempts.wait_or_refuse(full(queue), 200.0, lambda: None)
    assert attempts.queue_deadline == 205.0


def test_leave_queue_cancels_the_wait() -> None:
    attempts = Attempts(router(), CLIENT)
    queue = ListQueue(timeout=5.0)
    assert attempts.wait_or_refuse(full(queue), 100.0, lambda: None)
    token = next(iter(queue.waiting))
    attempts.leave_queue()
    assert queue.cancelled == [token]
    assert queue.waiting == {}
    assert attempts.queue is None and attempts.queue_token is None
    attempts.leave_queue()  # not waiting: nothing to cancel
    assert queue.cancelled == [token]


def test_leave_queue_after_being_woken_cancels_nothing() -> None:
    attempts = Attempts(router(), CLIENT)
    queue = ListQueue(timeout=5.0)
    assert attempts.wait_or_refuse(full(queue), 100.0, attempts.woken)
    queue.free_one()
    attempts.leave_queue()
    assert queue.cancelled == []
