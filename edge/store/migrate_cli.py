"""``edge migrate``: bring a store's schema to this edge's version, or report it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.errors import StartupError
from edge.store import migrations as sqlite_migrations
from edge.store import pg_migrations


def migrate_store(url: str | None, state_dir: Path, *, check: bool) -> str:
    """One line saying what the schema is (and was): PostgreSQL at ``url``, else SQLite."""
    if url is not None:
        return _postgres(url, check=check)
    return _sqlite(state_dir / "edge.db", check=check)


def _postgres(url: str, *, check: bool) -> str:
    import psycopg

    from edge.store.postgres import first_line, redact

    where = redact(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            before = pg_migrations.current_version(conn)
            after = pg_migrations.migrate(conn, where, apply=not check)
    except psycopg.OperationalError as exc:
        raise StartupError(f"cannot reach {where}: {first_line(exc)}") from None
    return _report(where, before, after, pg_migrations.LATEST_VERSION, check=check)


def _sqlite(path: Path, *, check: bool) -> str:
    if check and not path.exists():
        return f"{path}: no database yet (schema 0 of {sqlite_migrations.LATEST_VERSION})"
    if not path.parent.is_dir():
        raise StartupError(f"state directory {path.parent} does not exist")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        before = sqlite_migrations.current_version(conn)
        if check:
            if before > sqlite_migrations.LATEST_VERSION:
                sqlite_migrations.migrate(conn, str(path))  # raises the clear refusal
            after = before
        else:
            after = sqlite_migrations.migrate(conn, str(path))
    finally:
        conn.close()
    return _report(str(path), before, after, sqlite_migrations.LATEST_VERSION, check=check)


def _report(where: str, before: int, after: int, latest: int, *, check: bool) -> str:
    if check:
        pending = latest - before
        return f"{where}: schema {before} of {latest}" + (
            f" ({pending} migration(s) pending: run `edge migrate`)" if pending > 0 else ""
        )
    if after == before:
        return f"{where}: schema {after}, up to date"
    return f"{where}: migrated from schema {before} to {after}"
