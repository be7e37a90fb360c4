"""What the store's SQL needs of a database connection, whichever engine is behind it.

The statements of ``sqlite_rows``, ``sqlite_writes`` and ``sqlite_deploy`` are plain SQL
with ``?`` placeholders, written once: ``sqlite3.Connection`` runs them as they are, and
``edge.store.postgres.PgConnection`` runs the same text on PostgreSQL. Keep new
statements to the SQL both engines share (no ``INSERT OR ...``, no SQLite functions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class SqlCursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConn(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> SqlCursor: ...
