"""What only the PostgreSQL store does: its migrations, `edge migrate`, the change rows
and NOTIFY of every change, and failing clearly when the database is away."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest

from edge.cluster.pg import PrivateServer
from edge.core.ipam import IpamPolicy
from edge.core.tokens import hash_token
from edge.errors import StartupError, StoreUnavailable
from edge.store import SYSTEM
from edge.store.pg_migrations import LATEST_VERSION
from edge.store.postgres import CHANNEL, PostgresStore
from tests.integration.daemon import ROOT, free_port
from tests.integration.stores import REGIONS


def test_a_new_database_is_migrated_once_and_a_newer_one_refused(pg_url: str) -> None:
    PostgresStore(pg_url, IpamPolicy(), REGIONS).close()
    PostgresStore(pg_url, IpamPolicy(), REGIONS).close()  # nothing applied twice
    with psycopg.connect(pg_url, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == list(range(1, LATEST_VERSION + 1))
        conn.execute("INSERT INTO schema_version VALUES (%s, 'future', 0)", (LATEST_VERSION + 1,))
    with pytest.raises(StartupError, match=f"schema version {LATEST_VERSION + 1}, newer than"):
        PostgresStore(pg_url, IpamPolicy(), REGIONS)


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edge", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_edge_migrate_applies_reports_and_refuses(pg_url: str) -> None:
    checked = _edge("migrate", "--store", pg_url, "--check")
    assert checked.returncode == 0, checked.stderr
    assert f"schema 0 of {LATEST_VERSION} ({LATEST_VERSION} migration(s) pending" in checked.stdout
    done = _edge("migrate", "--store", pg_url)
    assert f"migrated from schema 0 to {LATEST_VERSION}" in done.stdout
    assert "up to date" in _edge("migrate", "--store", pg_url).stdout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    refused = _edge("migrate", "--store", pg_url)
    assert refused.returncode == 2
    assert "newer than this edge knows" in refused.stderr
    bad = _edge("migrate", "--store", "mysql://nowhere")
    assert bad.returncode == 2
    assert "must be a postgresql:// URL" in bad.stderr


def test_every_change_writes_a_change_row_and_notifies(pg_url: str) -> None:
    store = PostgresStore(pg_url, IpamPolicy(), REGIONS, node="a")
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        store.create_org("personal", hash_token("t"), by=SYSTEM)
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in notes] == [str(store.version())]
    assert [(c[0], c[2]) for c in store.changes_since(0)] == [(store.version(), "a")]
    store.close()


def test_no_server_is_a_clear_startup_error() -> None:
    url = f"postgresql://edge@127.0.0.1:{free_port()}/none"
    started = time.monotonic()
    with pytest.raises(StartupError, match="cannot reach the control plane database"):
        PostgresStore(url, IpamPolicy(), REGIONS, connect_timeout=1)
    assert time.monotonic() - started < 10


def test_a_stopped_server_is_a_503_and_then_works_again(
    pg_server: PrivateServer, pg_url: str
) -> None:
    store = PostgresStore(pg_url, IpamPolicy(), REGIONS, connect_timeout=1)
    store.create_org("personal", hash_token("t"), by=SYSTEM)
    pg_server.stop("immediate")
    try:
        with pytest.raises(StoreUnavailable, match="keeps serving from its last state") as err:
            store.create_org("acme", hash_token("u"), by=SYSTEM)
        assert err.value.http_status == 503
    finally:
        pg_server.start()
    store.create_org("acme", hash_token("u"), by=SYSTEM)  # the pool reconnected
    assert [o.slug for o in store.list_orgs()] == ["acme", "personal"]
    store.close()
