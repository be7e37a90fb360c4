"""ULIDs for ``Fly-Request-Id``: 48-bit millisecond time + 80 random bits, 26 characters.

The encoding is Crockford's base32 (no I, L, O, U). The random part of many ids is made
at once: one ``os.urandom`` call and one ``bytes.translate`` per batch, then a
16-character slice per id. The time part (ten characters) changes at most once per
millisecond and is cached. An id costs a clock read, a slice and a concatenation.
"""

from __future__ import annotations

import os
import time
from typing import Final

CROCKFORD: Final = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOW_FIVE_BITS: Final = bytes(CROCKFORD[byte & 31] for byte in range(256))
_RANDOM_CHARS: Final = 16  # 80 bits
_TIME_CHARS: Final = 10  # 50 bits, the top two always zero
_MAX_TIME: Final = (1 << 48) - 1


def encode_time(ms: int) -> bytes:
    """The ten-character time part of a ULID for ``ms`` milliseconds since the epoch."""
    if not 0 <= ms <= _MAX_TIME:
        raise ValueError(f"ULID time out of range: {ms}")
    out = bytearray(_TIME_CHARS)
    for i in range(_TIME_CHARS - 1, -1, -1):
        out[i] = CROCKFORD[ms & 31]
        ms >>= 5
    return bytes(out)


def encode_random(randomness: bytes) -> bytes:
    """Base32 characters from random bytes, one per byte (its low five bits).

    256 is a multiple of 32, so each character is uniform: 16 bytes give the 80 random
    bits of a ULID. Wasteful of entropy, but a single C call for a whole batch.
    """
    return randomness.translate(_LOW_FIVE_BITS)


def decode_time(ulid: bytes | str) -> int:
    """The millisecond timestamp of a ULID (its first ten characters)."""
    raw = ulid.encode("ascii") if isinstance(ulid, str) else ulid
    ms = 0
    for char in raw[:_TIME_CHARS].upper():
        digit = CROCKFORD.find(bytes((char,)))
        if digit < 0:
            raise ValueError(f"not a ULID: {ulid!r}")
        ms = (ms << 5) | digit
    return ms


_PAIRS: Final = [
    CROCKFORD[i >> 5 : (i >> 5) + 1] + CROCKFORD[i & 31 : (i & 31) + 1] for i in range(1024)
]


class UlidSource:
    """Makes ULIDs cheaply: random characters in batches, the time part cached."""

    __slots__ = ("_batch", "_chars", "_high", "_high_part", "_last_ms", "_pos", "_time_part")

    def __init__(self, batch: int = 1024) -> None:
        self._batch = batch
        self._chars = b""
        self._pos = 0
        self._last_ms = -1
        self._time_part = b""
        self._high = -1
        self._high_part = b""

    def next(self) -> bytes:
        """A new 26-character ULID as ASCII bytes."""
        ms = time.time_ns() // 1_000_000
        if ms != self._last_ms:
            self._last_ms = ms
            # The first six characters change every ~17 minutes, the last four every ms.
            if ms >> 20 != self._high:
                self._high = ms >> 20
                self._high_part = encode_time(ms)[:6]
            self._time_part = self._high_part + _PAIRS[(ms >> 10) & 1023] + _PAIRS[ms & 1023]
        pos = self._pos
        if pos >= len(self._chars):
            self._chars = encode_random(os.urandom(_RANDOM_CHARS * self._batch))
            pos = 0
        self._pos = pos + _RANDOM_CHARS
        return self._time_part + self._chars[pos : pos + _RANDOM_CHARS]
