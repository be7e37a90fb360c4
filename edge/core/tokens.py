"""API tokens: their text form, the hash that is stored instead of them, the comparison.

Pure: the random bytes are an input (the shell passes ``secrets.token_bytes(32)``).
Only ``hash_token(token)`` is ever stored; a presented token is checked by hashing
it and comparing the hashes in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_PREFIX = "edge_"
MIN_ENTROPY_BYTES = 32
_HASH_PREFIX = "sha256:"


def format_token(entropy: bytes, prefix: str = TOKEN_PREFIX) -> str:
    """A token from ``entropy`` (at least 32 random bytes): ``edge_`` + URL-safe base64."""
    if len(entropy) < MIN_ENTROPY_BYTES:
        raise ValueError(f"a token needs at least {MIN_ENTROPY_BYTES} random bytes")
    return prefix + base64.urlsafe_b64encode(entropy).decode("ascii").rstrip("=")


def hash_token(token: str) -> str:
    """What is stored for ``token``: ``sha256:`` + the hex SHA-256 of its UTF-8 bytes.

    Tokens carry 256 bits of entropy, so a fast unsalted hash is enough: nothing can
    be guessed from it, and it can be looked up directly.
    """
    return _HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` is the one ``stored_hash`` was made from, in constant time."""
    return hmac.compare_digest(hash_token(token).encode("ascii"), stored_hash.encode("ascii"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token
