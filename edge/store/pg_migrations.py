"""The PostgreSQL schema as ordered migrations, as ``edge.store.migrations`` is for SQLite.

The tables and columns are SQLite's (the same statements run on both), in PostgreSQL's
types: BIGSERIAL ids, DOUBLE PRECISION times; flags stay 0/1 INTEGERs as in SQLite (the
store sends Python booleans as 0/1), so ``is_primary = 0`` means the same on both.
Add a migration by appending to ``MIGRATIONS`` with the next version (and the same
change to the SQLite list when it concerns both); never edit one that has shipped.
``migrate`` runs under an advisory lock, so nodes starting together apply each once.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from edge.errors import StartupError
from edge.store.migrations import Migration

MIGRATE_LOCK = 0x65646766  # held while migrating; distinct from the write lock

_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO meta (key, value) VALUES ('version', '0')",
    """CREATE TABLE orgs (
        id BIGSERIAL PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    )""",
    """CREATE TABLE apps (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        org_id BIGINT NOT NULL REFERENCES orgs (id),
        primary_region TEXT NOT NULL,
        services TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        destroyed_at DOUBLE PRECISION
    )""",
    "CREATE UNIQUE INDEX apps_live_name ON apps (name) WHERE destroyed_at IS NULL",
    "CREATE INDEX apps_org ON apps (org_id) WHERE destroyed_at IS NULL",
    """CREATE TABLE machines (
        pk BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        app_id BIGINT NOT NULL REFERENCES apps (id),
        region TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('started', 'stopped')),
        address TEXT,
        ports TEXT NOT NULL,
        weight BIGINT NOT NULL,
        demo INTEGER NOT NULL CHECK (demo IN (0, 1)),
        created_at BIGINT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        UNIQUE (app_id, id)
    )""",
    """CREATE TABLE ip_assignments (
        id BIGSERIAL PRIMARY KEY,
        address TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ('v4', 'shared_v4', 'v6', 'private_v6')),
        region TEXT NOT NULL,
        app_id BIGINT NOT NULL REFERENCES apps (id),
        org_id BIGINT NOT NULL REFERENCES orgs (id),
        is_primary INTEGER NOT NULL CHECK (is_primary IN (0, 1)),
        created_at BIGINT NOT NULL,
        released_at DOUBLE PRECISION
    )""",
    """CREATE UNIQUE INDEX ip_active_address ON ip_assignments (address)
        WHERE released_at IS NULL AND type != 'shared_v4'""",
    """CREATE UNIQUE INDEX ip_active_shared ON ip_assignments (app_id)
        WHERE released_at IS NULL AND type = 'shared_v4'""",
    """CREATE UNIQUE INDEX ip_active_primary ON ip_assignments (app_id)
        WHERE released_at IS NULL AND is_primary = 1""",
    "CREATE INDEX ip_active_app ON ip_assignments (app_id) WHERE released_at IS NULL",
    "CREATE INDEX ip_active_org ON ip_assignments (org_id) WHERE released_at IS NULL",
    "CREATE INDEX ip_released ON ip_assignments (address) WHERE released_at IS NOT NULL",
    """CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        org TEXT,
        app TEXT,
        target TEXT,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX audit_org ON audit (org, id)",
    "CREATE INDEX audit_app ON audit (app, id)",
    # The change feed: one row per committed change, its id the version it made.
    """CREATE TABLE changes (
        id BIGINT PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        node TEXT NOT NULL,
        actor TEXT NOT NULL
    )""",
)

# The nodes of the cluster and what they share: health verdicts and per-machine load.
_V2 = (
    """CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        pops TEXT NOT NULL,
        api TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        applied_version BIGINT NOT NULL,
        serving TEXT NOT NULL
    )""",
    """CREATE TABLE machine_health (
        node TEXT NOT NULL,
        app TEXT NOT NULL,
        machine_id TEXT NOT NULL,
        internal_port INTEGER NOT NULL,
        passing INTEGER NOT NULL,
        checked_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (node, app, machine_id, internal_port)
    )""",
    """CREATE TABLE machine_load (
        node TEXT NOT NULL,
        app TEXT NOT NULL,
        machine_id TEXT NOT NULL,
        internal_port INTEGER NOT NULL,
        concurrency INTEGER NOT NULL,
        published_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (node, app, machine_id, internal_port)
    )""",
)

# Process machines (a ``process`` JSON column), the suspended state (autostop) and each
# machine's lifecycle events: SQLite's migration 2 of the process-machines work, here in
# place (PostgreSQL changes a CHECK constraint without rebuilding the table).
_V3 = (
    "ALTER TABLE machines DROP CONSTRAINT IF EXISTS machines_state_check",
    """ALTER TABLE machines ADD CONSTRAINT machines_state_check
        CHECK (state IN ('started', 'stopped', 'suspended'))""",
    "ALTER TABLE machines ADD COLUMN IF NOT EXISTS process TEXT",
    """CREATE TABLE machine_events (
        id BIGSERIAL PRIMARY KEY,
        app_id BIGINT NOT NULL REFERENCES apps (id),
        machine_id TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL,
        exit_code INTEGER,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX machine_events_machine ON machine_events (app_id, machine_id, id)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "orgs, apps, machines, ip_assignments, audit, meta, changes", _V1),
    Migration(2, "nodes, machine_health, machine_load", _V2),
    Migration(3, "process machines, the suspended state, machine events", _V3),
)

LATEST_VERSION = MIGRATIONS[-1].version


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The highest applied migration; 0 for an empty database."""
    exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0) if row else 0


def check_not_newer(version: int, where: str) -> None:
    if version > LATEST_VERSION:
        raise StartupError(
            f"{where} has schema version {version}, newer than this edge knows "
            f"({LATEST_VERSION}); upgrade edge on this node, or point --store elsewhere"
        )


def migrate(conn: psycopg.Connection[Any], where: str, *, apply: bool = True) -> int:
    """Apply every pending migration in one transaction (``apply=False``: only check);
    the resulting version. A database newer than this code is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        version = current_version(conn)
        check_not_newer(version, where)
        if not apply or version == LATEST_VERSION:
            return version
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        for migration in MIGRATIONS:
            if migration.version > version:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (%s, %s, %s)",
                    (migration.version, migration.description, time.time()),
                )
    return LATEST_VERSION
