"""SQLite failures that are not edge's fault, told as ``StoreUnavailable`` (HTTP 503).

A write lock still held by someone else after ``busy_timeout``, a full disk, an I/O
error, a read-only or corrupt file: the request was fine and may work later, so the
API answers 503 with what happened and what to do, never a traceback. Anything else
(a constraint, an SQL mistake) is a bug of edge and is left as it is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.errors import StoreUnavailable

# SQLite's primary result codes (https://sqlite.org/rescode.html).
_PERM = 3
_BUSY = 5
_LOCKED = 6
_READONLY = 8
_IOERR = 10
_CORRUPT = 11
_FULL = 13
_CANTOPEN = 14
_PROTOCOL = 15
_NOTADB = 26


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def describe(exc: sqlite3.Error, path: Path, busy_timeout: float) -> str | None:
    """What to tell about ``exc`` on the database ``path``; None when it is edge's bug."""
    code = _primary_code(exc)
    if code in (_BUSY, _LOCKED, _PROTOCOL):
        return (
            f"the state database {path} is busy (locked by another process for "
            f"{busy_timeout:g} s); retry"
        )
    if code == _FULL:
        return f"cannot write the state database {path}: disk full; free some space and retry"
    if code == _IOERR:
        return f"cannot read or write the state database {path}: {exc}; check the disk and retry"
    if code in (_READONLY, _PERM):
        return f"cannot write the state database {path}: {exc}; check its permissions"
    if code == _CANTOPEN:
        return f"cannot open the state database {path}: {exc}; check the state directory"
    if code in (_CORRUPT, _NOTADB):
        return f"the state database {path} is damaged: {exc}; restore it from a backup"
    return None


@contextmanager
def store_errors(path: Path, busy_timeout: float) -> Iterator[None]:
    """Turn the SQLite failures that ``describe`` knows into ``StoreUnavailable``."""
    try:
        yield
    except sqlite3.Error as exc:
        message = describe(exc, path, busy_timeout)
        if message is None:
            raise
        raise StoreUnavailable(message) from exc
