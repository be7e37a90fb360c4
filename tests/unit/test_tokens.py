"""API tokens: format, stored hash, constant-time comparison, the Authorization header."""

from __future__ import annotations

import pytest

from edge.core.tokens import bearer_token, format_token, hash_token, token_matches

ENTROPY = bytes(range(32))


def test_a_token_is_prefixed_url_safe_text() -> None:
    token = format_token(ENTROPY)
    assert token.startswith("edge_")
    assert len(token) == 5 + 43
    assert set(token[5:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_different_entropy_gives_different_tokens() -> None:
    assert format_token(ENTROPY) != format_token(bytes(32))


def test_too_little_entropy_is_refused() -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        format_token(bytes(16))


def test_the_stored_hash_is_sha256_and_never_the_token() -> None:
    token = format_token(ENTROPY)
    stored = hash_token(token)
    assert stored == hash_token(token)
    assert stored.startswith("sha256:")
    assert len(stored) == 7 + 64
    assert token not in stored


def test_only_the_right_token_matches() -> None:
    token = format_token(ENTROPY)
    stored = hash_token(token)
    assert token_matches(token, stored)
    assert not token_matches(token + "x", stored)
    assert not token_matches("", stored)
    assert not token_matches(token, "sha256:short")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer a b", None),
    ],
)
def test_the_bearer_token_is_read_from_the_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
