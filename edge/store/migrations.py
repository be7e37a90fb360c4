"""The SQLite schema as ordered migrations, applied in one transaction at open.

Add a migration by appending to ``MIGRATIONS`` with the next version; never edit
one that has shipped. ``schema_version`` holds one row per applied migration.
Times are epoch seconds: whole seconds (INTEGER) for created_at, REAL elsewhere.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from edge.errors import StartupError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_V1 = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    "INSERT INTO meta (key, value) VALUES ('version', '0')",
    """CREATE TABLE orgs (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    )""",
    """CREATE TABLE apps (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        org_id INTEGER NOT NULL REFERENCES orgs (id),
        primary_region TEXT NOT NULL,
        services TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        destroyed_at REAL
    )""",
    "CREATE UNIQUE INDEX apps_live_name ON apps (name) WHERE destroyed_at IS NULL",
    "CREATE INDEX apps_org ON apps (org_id) WHERE destroyed_at IS NULL",
    """CREATE TABLE machines (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        app_id INTEGER NOT NULL REFERENCES apps (id),
        region TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('started', 'stopped')),
        address TEXT,
        ports TEXT NOT NULL,
        weight INTEGER NOT NULL,
        demo INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (app_id, id)
    )""",
    """CREATE TABLE ip_assignments (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('v4', 'shared_v4', 'v6', 'private_v6')),
        region TEXT NOT NULL,
        app_id INTEGER NOT NULL REFERENCES apps (id),
        org_id INTEGER NOT NULL REFERENCES orgs (id),
        is_primary INTEGER NOT NULL CHECK (is_primary IN (0, 1)),
        created_at INTEGER NOT NULL,
        released_at REAL
    )""",
    # A dedicated address is held by at most one app at a time ...
    """CREATE UNIQUE INDEX ip_active_address ON ip_assignments (address)
        WHERE released_at IS NULL AND type != 'shared_v4'""",
    # ... the shared one at most once per app, and each app has one primary.
    """CREATE UNIQUE INDEX ip_active_shared ON ip_assignments (app_id)
        WHERE released_at IS NULL AND type = 'shared_v4'""",
    """CREATE UNIQUE INDEX ip_active_primary ON ip_assignments (app_id)
        WHERE released_at IS NULL AND is_primary = 1""",
    "CREATE INDEX ip_active_app ON ip_assignments (app_id) WHERE released_at IS NULL",
    "CREATE INDEX ip_active_org ON ip_assignments (org_id) WHERE released_at IS NULL",
    "CREATE INDEX ip_released ON ip_assignments (address) WHERE released_at IS NOT NULL",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        org TEXT,
        app TEXT,
        target TEXT,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX audit_org ON audit (org, id)",
    "CREATE INDEX audit_app ON audit (app, id)",
)

# Process machines (a ``process`` JSON column: edge.config.model.ProcessSpec), the
# suspended state (autostop), and each machine's lifecycle events. SQLite cannot change
# a CHECK constraint in place, so the machines table is rebuilt.
_V2 = (
    """CREATE TABLE machines_v2 (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        app_id INTEGER NOT NULL REFERENCES apps (id),
        region TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('started', 'stopped', 'suspended')),
        address TEXT,
        ports TEXT NOT NULL,
        weight INTEGER NOT NULL,
        demo INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at REAL NOT NULL,
        process TEXT,
        UNIQUE (app_id, id)
    )""",
    """INSERT INTO machines_v2 (pk, id, app_id, region, state, address, ports, weight, demo,
        created_at, updated_at)
        SELECT pk, id, app_id, region, state, address, ports, weight, demo, created_at,
        updated_at FROM machines""",
    "DROP TABLE machines",
    "ALTER TABLE machines_v2 RENAME TO machines",
    """CREATE TABLE machine_events (
        id INTEGER PRIMARY KEY,
        app_id INTEGER NOT NULL REFERENCES apps (id),
        machine_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        exit_code INTEGER,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX machine_events_machine ON machine_events (app_id, machine_id, id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "orgs, apps, machines, ip_assignments, audit, meta", _V1),
    Migration(2, "process machines, the suspended state, machine events", _V2),
)

LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration; 0 for an empty database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Apply every pending migration in one transaction; the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). A database newer
    than this code is refused with StartupError rather than misread.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        version = current_version(conn)
        if version > LATEST_VERSION:
            raise StartupError(
                f"{path} has schema version {version}, newer than this edge knows "
                f"({LATEST_VERSION}); upgrade edge or use another state directory"
            )
        for migration in MIGRATIONS:
            if migration.version > version:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, time.time()),
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(version, LATEST_VERSION)
