"""ULIDs for Fly-Request-Id: format, time part, uniqueness, batches."""

from __future__ import annotations

import re
import time
from unittest import mock

import pytest

from edge.dataplane.request_id import (
    CROCKFORD,
    UlidSource,
    decode_time,
    encode_random,
    encode_time,
)

ULID = re.compile(rb"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")  # 128 bits: the first char is at most 7


def test_ulids_are_26_crockford_characters_with_the_current_time() -> None:
    source = UlidSource()
    before = time.time_ns() // 1_000_000
    ulid = source.next()
    after = time.time_ns() // 1_000_000
    assert ULID.match(ulid)
    assert before <= decode_time(ulid) <= after


def test_ulids_are_unique_across_batches() -> None:
    source = UlidSource(batch=8)  # refills every 8 ids
    ulids = [source.next() for _ in range(5000)]
    assert len(set(ulids)) == len(ulids)
    assert all(ULID.match(u) for u in ulids)


@pytest.mark.parametrize("ms", [0, 1, 31, 32, 1023, 1024, 2**20 - 1, 2**20, 1_795_916_224_473])
def test_time_part_round_trips(ms: int) -> None:
    assert decode_time(encode_time(ms)) == ms
    with mock.patch("time.time_ns", return_value=ms * 1_000_000):
        assert UlidSource().next()[:10] == encode_time(ms)


def test_known_encoding_and_bounds() -> None:
    assert encode_time(0) == b"0000000000"
    assert encode_time(2**48 - 1) == b"7ZZZZZZZZZ"
    assert encode_time(1_469_918_176_385) == b"01ARYZ6S41"  # the ULID spec's example
    with pytest.raises(ValueError):
        encode_time(2**48)
    with pytest.raises(ValueError):
        decode_time("01ARYZ6S4U")  # U is not in the alphabet


def test_random_characters_are_uniform_over_the_alphabet() -> None:
    chars = encode_random(bytes(range(256)) * 4)
    assert set(chars) == set(CROCKFORD)
    counts = {c: chars.count(c) for c in set(chars)}
    assert set(counts.values()) == {32}  # 1024 bytes, 32 symbols, 8 bytes map to each
