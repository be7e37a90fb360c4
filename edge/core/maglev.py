"""Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights.

Each backend walks its own permutation of the table's slots (an offset and a skip
derived from its name) and, in turns, claims the next slot of its permutation that
is still free. The table size is prime, so every permutation visits every slot.
Weights follow Envoy's and Katran's variant: a backend of weight w takes a turn in
w / max_weight of the rounds, so it ends up with a share of slots proportional to w.

A key is looked up by hashing it to a slot. When one backend of N is removed,
about 1/N of the keys move, plus a little more than a ring hash would move (the
price of the table's even spread).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.core.routing import Endpoint, ServiceRoutes

TABLE_SIZE = 65537  # prime; > 100 x the backends of an app keeps the spread within ~1%


def stable_hash(text: str, salt: bytes = b"") -> int:
    """A 64-bit hash that is the same in every process (``hash()`` is salted)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, salt=salt).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True, slots=True)
class MaglevTable:
    """Slot -> index into ``names``; empty when there are no backends."""

    names: tuple[str, ...]
    slots: array[int]
    size: int

    def lookup(self, key: str) -> int | None:
        """The backend index for ``key``, or None when the table is empty."""
        if not self.names:
            return None
        return self.slots[stable_hash(key) % self.size]

    def probe(self, key: str) -> Iterator[int]:
        """Distinct backend indices in table order from ``key``'s slot: fallbacks in order."""
        if not self.names:
            return
        start = stable_hash(key) % self.size
        seen: set[int] = set()
        for step in range(self.size):
            index = self.slots[(start + step) % self.size]
            if index not in seen:
                seen.add(index)
                yield index
                if len(seen) == len(self.names):
                    return

    def shares(self) -> list[int]:
        """Slots held by each backend (for tests and explanations)."""
        counts = [0] * len(self.names)
        for index in self.slots:
            counts[index] += 1
        return counts


def build_table(
    names: Sequence[str], weights: Sequence[int] | None = None, size: int = TABLE_SIZE
) -> MaglevTable:
    """The lookup table for backends ``names`` (unique) with positive integer ``weights``."""
    if weights is None:
        weights = [1] * len(names)
    if len(weights) != len(names) or any(w <= 0 for w in weights):
        raise ValueError("need one positive weight per backend")
    if not names:
        return MaglevTable((), array("I"), size)
    return MaglevTable(tuple(names), _populate(names, weights, size), size)


def _populate(names: Sequence[str], weights: Sequence[int], size: int) -> array[int]:
    # The next slot each backend will try, and how far it jumps after a taken slot.
    position = [stable_hash(name, b"offset") % size for name in names]
    skip = [stable_hash(name, b"skip") % (size - 1) + 1 for name in names]
    credit = [0] * len(names)
    top = max(weights)
    empty = len(names)  # a value no backend index has
    slots = array("I", [empty]) * size
    filled = 0
    while True:
        for i, weight in enumerate(weights):
            credit[i] += weight
            if credit[i] < top:
                continue
            credit[i] -= top
            slot = position[i]
            while slots[slot] != empty:
                slot += skip[i]
                if slot >= size:
                    slot -= size
            slots[slot] = i
            filled += 1
            if filled == size:
                return slots
            position[i] = slot


def pick_maglev_where(
    service: ServiceRoutes, key: str, accept: Callable[[Endpoint], bool]
) -> Endpoint | None:
    """The started endpoint ``key`` hashes to, or the first acceptable one after it."""
    started = service.started
    for index in service.maglev_table().probe(key):
        endpoint = started[index]
        if accept(endpoint):
            return endpoint
    return None


def pick_maglev(service: ServiceRoutes, key: str, candidates: Sequence[Endpoint]) -> Endpoint:
    """Like ``pick_maglev_where``, restricted to ``candidates`` (all started endpoints)."""
    ids = {ep.machine_id for ep in candidates}
    chosen = pick_maglev_where(service, key, lambda ep: ep.machine_id in ids)
    return chosen if chosen is not None else candidates[0]
