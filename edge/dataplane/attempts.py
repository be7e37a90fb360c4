"""One attempt controller for both relays: choose, queue, report, retry, release.

The raw TCP relay (once per connection) and the HTTP relay (once per request, again
for each retry and replay) reach a machine the same way, and this is that way:

- ``choose`` asks the listener's router, excluding the machines already tried, and
  takes the choice as a ``Lease`` on its load slot;
- a refusal that comes with a capacity queue is waited out (``wait_or_refuse``), up
  to one deadline counted from the first wait;
- a failed connect is reported, its lease released, and ``relay_decisions`` says
  whether to retry elsewhere (``failed``);
- ``Lease.release`` gives the slot back exactly once, whoever calls it how often.

How to open the connection differs (a raw socket, or the HTTP pool); everything about
which machine, how often and when to give up is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from edge.core.relay_decisions import (
    ConnectVerdict,
    NoCandidateVerdict,
    after_connect_failure,
    after_no_candidate,
    held_against_machine,
    queue_until,
)
from edge.dataplane.contract import (
    CapacityQueue,
    ClientInfo,
    ListenerRouter,
    NoUpstream,
    RouteHints,
    Upstream,
)

_NO_EXCLUDE: Final[frozenset[str]] = frozenset()


class Lease:
    """The load slot of one chosen machine: ``release`` frees it once, the first time."""

    __slots__ = ("_router", "held", "upstream")

    def __init__(self, router: ListenerRouter, upstream: Upstream) -> None:
        self._router = router
        self.upstream = upstream
        self.held = True

    def release(self, to_machine: int = -1, to_client: int = 0) -> None:
        """Free the slot; with ``to_machine`` >= 0 the bytes relayed are reported first."""
        if self.held:
            self.held = False
            if to_machine >= 0:
                self._router.transferred(self.upstream, to_machine, to_client)
            self._router.release(self.upstream)


class Attempts:
    """The tries of one connection (TCP) or one request (HTTP) at reaching a machine."""

    __slots__ = (
        "_router",
        "base",
        "client",
        "count",
        "exclude",
        "last_cause",
        "lease",
        "queue",
        "queue_deadline",
        "queue_token",
        "refusal",
    )

    def __init__(self, router: ListenerRouter, client: ClientInfo | None) -> None:
        self._router = router
        self.client = client
        self.lease: Lease | None = None  # the machine being tried or used
        self.count = 0  # choices made; only grows, so a stale callback can tell
        self.base = 0  # count when the current target was first chosen (replays)
        self.exclude = _NO_EXCLUDE  # machines tried and failed for this target
        self.last_cause = ""  # why the last connect failed (the contract's name)
        self.queue: CapacityQueue | None = None
        self.queue_token: object = None
        self.queue_deadline = 0.0  # when waiting for a free machine ends (0: not yet)
        self.refusal: NoUpstream | None = None  # the router's last "no"

    @property
    def tries(self) -> int:
        """Tries for the current target: the retry budget (``Upstream.retries``) counts these."""
        return self.count - self.base

    def restart(self) -> None:
        """A new request (HTTP keep-alive): a fresh budget, nothing excluded."""
        self.base = self.count
        self.exclude = _NO_EXCLUDE
        self.last_cause = ""
        self.queue_deadline = 0.0
        self.refusal = None

    def retarget(self) -> None:
        """A fly-replay sends the request to a new target: a fresh retry budget for it."""
        self.base = self.count
        self.exclude = _NO_EXCLUDE
        self.queue_deadline = 0.0

    def choose(self, hints: RouteHints | None) -> Upstream | NoUpstream:
        assert self.client is not None
        choice = self._router.choose(self.client, hints, self.exclude)
        if isinstance(choice, NoUpstream):
            return choice
        self.count += 1
        self.lease = Lease(self._router, choice)
        return choice

    def wait_or_refuse(self, refusal: NoUpstream, now: float, woken: Callable[[], None]) -> bool:
        """No machine can take it. True: waiting in the capacity queue (``woken`` is
        called when a slot may be free; choose again then); False: refuse now."""
        self.refusal = refusal
        queue = refusal.queue
        if queue is not None:
            self.queue_deadline = queue_until(self.queue_deadline, now, queue.timeout)
        deadline = self.queue_deadline
        verdict = after_no_candidate(can_queue=queue is not None, now=now, deadline=deadline)
        if verdict is NoCandidateVerdict.REFUSE or queue is None:
            return False
        self.queue = queue
        self.queue_token = queue.wait(woken)
        return True

    def woken(self) -> None:
        """The queue called back: the wait is over (the caller chooses again)."""
        self.queue = self.queue_token = None

    def leave_queue(self) -> None:
        queue, self.queue = self.queue, None
        if queue is not None:
            queue.cancel(self.queue_token)
            self.queue_token = None

    def connected(self, seconds: float) -> None:
        if self.lease is not None:
            self._router.connected(self.lease.upstream, seconds)

    def failed(self, reason: str) -> ConnectVerdict:
        """Connecting to the leased machine failed: report it, free the slot, decide."""
        lease, self.lease = self.lease, None
        assert lease is not None
        up = lease.upstream
        if held_against_machine(reason):
            self._router.connect_failed(up, reason)
        lease.release()
        self.last_cause = reason
        verdict = after_connect_failure(reason, self.tries, up.retries)
        if verdict is ConnectVerdict.RETRY:
            self.exclude = self.exclude | {up.machine_id}
        return verdict

    def lost(self, reason: str, to_machine: int, to_client: int) -> None:
        """The machine's connection was lost, and the request goes to another machine."""
        lease, self.lease = self.lease, None
        if lease is not None:
            self._router.connect_failed(lease.upstream, reason)
            lease.release(to_machine, to_client)
            self.exclude = self.exclude | {lease.upstream.machine_id}

    def release(self, to_machine: int = -1, to_client: int = 0) -> None:
        """The exchange with the leased machine is over (reporting bytes if given)."""
        lease, self.lease = self.lease, None
        if lease is not None:
            lease.release(to_machine, to_client)
