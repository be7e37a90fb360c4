"""ULIDs for ``Fly-Request-Id``: 48-bit millisecond time + 80 random bits, 26 characters.

The encoding is Crockford's base32 (no I, L, O, U). Eighty random bits are exactly
sixteen base32 characters, so the random part of many ids is made at once: one
``os.urandom`` call and one C-speed ``b32encode`` per batch, then a 16-character slice
per id. The time part (ten characters) changes at most once per millisecond and is
cached. An id costs a clock read, a slice and a concatenation.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Final

CROCKFORD: Final = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RFC4648: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_CROCKFORD: Final = bytes.maketrans(_RFC4648, CROCKFORD)
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
    """The sixteen-character random part for ten bytes (or 16*n characters for 10*n)."""
    if len(randomness) % 10:
        raise ValueError("randomness must be a multiple of 10 bytes")
    return base64.b32encode(randomness).translate(_TO_CROCKFORD)


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


class UlidSource:
    """Makes ULIDs cheaply: random bits in batches, the time part cached per millisecond."""

    __slots__ = ("_batch", "_chars", "_last_ms", "_pos", "_time_part")

    def __init__(self, batch: int = 512) -> None:
        self._batch = batch
        self._chars = b""
        self._pos = 0
        self._last_ms = -1
        self._time_part = b""

    def next(self) -> bytes:
        """A new 26-character ULID as ASCII bytes."""
        ms = time.time_ns() // 1_000_000
        if ms != self._last_ms:
            self._last_ms = ms
            self._time_part = encode_time(ms)
        pos = self._pos
        if pos >= len(self._chars):
            self._chars = encode_random(os.urandom(10 * self._batch))
            pos = 0
        self._pos = pos + _RANDOM_CHARS
        return self._time_part + self._chars[pos : pos + _RANDOM_CHARS]
