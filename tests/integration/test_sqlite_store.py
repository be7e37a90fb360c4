"""The store contract on both backends (``db``: SQLite on a real file, PostgreSQL on a
private server): schema, persistence, the rules, concurrency. Tests of SQLite's own
failure modes take ``sqlite_store`` or ``make_store(tmp_path)``."""

from __future__ import annotations

import multiprocessing
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge.config.model import AppSpec, MachineSpec, ServiceSpec
from edge.config.regions import default_catalogue
from edge.core.ipam import IpamPolicy, IpAssignment, format_time
from edge.core.tokens import hash_token
from edge.errors import (
    BadRequest,
    Conflict,
    EdgeError,
    LimitExceeded,
    NotFound,
    PoolExhausted,
    StartupError,
    StoreUnavailable,
)
from edge.store import ADMIN, SYSTEM, Caller, SqliteStore, open_store
from edge.store.migrations import LATEST_VERSION
from edge.store.sqlite_errors import store_errors
from tests.integration.stores import StoreAt, open_location

REGIONS = default_catalogue().codes()
T0 = 1_795_946_400.0  # 2026-11-29T10:00:00Z
HOUR = 3600.0
PERSONAL = Caller.for_org("personal")


def make_store(state_dir: Path, **policy: Any) -> SqliteStore:
    return SqliteStore(state_dir / "edge.db", IpamPolicy(**policy), REGIONS)


def app_spec(name: str, org: str = "personal", region: str = "lhr", **extra: Any) -> AppSpec:
    data = {"app": name, "org": org, "primary_region": region, **extra}
    return AppSpec.model_validate(data, context={"regions": REGIONS})


def seed(store: SqliteStore, *orgs: str) -> None:
    for slug in orgs or ("personal",):
        store.create_org(slug, hash_token(f"token-{slug}"), by=SYSTEM, now=T0)


@pytest.fixture
def store(db: StoreAt) -> Iterator[SqliteStore]:
    opened = db.open()
    seed(opened, "personal", "acme")
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = make_store(tmp_path)
    seed(opened, "personal", "acme")
    yield opened
    opened.close()


def pragma(store: SqliteStore, name: str) -> object:
    with sqlite3.connect(store.path) as conn:
        if name == "journal_mode":
            return conn.execute(f"PRAGMA {name}").fetchone()[0]
    return store._conn().execute(f"PRAGMA {name}").fetchone()[0]


# --- schema --------------------------------------------------------------------------------


def test_an_empty_directory_gets_a_migrated_database(tmp_path: Path) -> None:
    store = open_store(tmp_path, IpamPolicy(), REGIONS)
    assert (tmp_path / "edge.db").exists()
    store.close()
    store = make_store(tmp_path)  # reopening applies nothing twice
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert versions == list(range(1, LATEST_VERSION + 1))
    assert {"orgs", "apps", "machines", "ip_assignments", "audit", "meta"} <= tables
    assert pragma(store, "journal_mode") == "wal"
    assert pragma(store, "synchronous") == 2  # FULL
    assert pragma(store, "foreign_keys") == 1
    store.close()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    make_store(tmp_path).close()
    with sqlite3.connect(tmp_path / "edge.db") as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'future', 0)", (LATEST_VERSION + 1,))
    with pytest.raises(StartupError, match="newer than this edge"):
        make_store(tmp_path)


# --- orgs and tokens -----------------------------------------------------------------------


def test_orgs_are_found_by_slug_and_token_hash(store: SqliteStore) -> None:
    assert [o.slug for o in store.list_orgs()] == ["acme", "personal"]
    assert store.get_org("acme").created_at == int(T0)
    assert store.org_by_token_hash(hash_token("token-acme")) == store.get_org("acme")
    assert store.org_by_token_hash(hash_token("wrong")) is None
    store.set_org_token_hash("acme", hash_token("new"), by=ADMIN)
    assert store.org_by_token_hash(hash_token("token-acme")) is None
    assert store.org_by_token_hash(hash_token("new")) == store.get_org("acme")
    with pytest.raises(NotFound):
        store.get_org("nobody")
    with pytest.raises(Conflict, match="'acme' already exists"):
        store.create_org("acme", hash_token("x"), by=ADMIN)
    with pytest.raises(BadRequest, match="not a valid org slug"):
        store.create_org("Bad Slug", hash_token("y"), by=ADMIN)


def test_the_admin_token_hash_is_stored(store: SqliteStore) -> None:
    assert store.admin_token_hash() is None
    store.set_admin_token_hash(hash_token("admin"), by=SYSTEM)
    assert store.admin_token_hash() == hash_token("admin")


# --- apps and their first IPs --------------------------------------------------------------


def test_a_new_app_gets_a_primary_v4_in_its_region(store: SqliteStore) -> None:
    created = store.create_app(app_spec("web"), by=PERSONAL, now=T0)
    assert created.ips == (
        IpAssignment("127.77.0.1", "v4", "lhr", "web", "personal", int(T0), False, True),
    )
    assert store.list_ips("web") == created.ips
    assert store.list_ips("web")[0].created == "2026-11-29T10:00:00Z"


def test_ipv6_adds_a_v6_and_no_public_ips_gives_none(store: SqliteStore) -> None:
    both = store.create_app(app_spec("web"), ipv6=True, by=ADMIN, now=T0)
    assert [(a.type, a.address, a.primary) for a in both.ips] == [
        ("v4", "127.77.0.1", True),
        ("v6", "fd77:e0::1", False),
    ]
    assert store.create_app(app_spec("quiet"), public_ips=False, by=ADMIN).ips == ()
    with pytest.raises(BadRequest):
        store.create_app(app_spec("odd"), public_ips=False, ipv6=True, by=ADMIN)


def test_app_names_orgs_and_scopes_are_checked(store: SqliteStore) -> None:
    store.create_app(app_spec("web"), by=ADMIN)
    with pytest.raises(Conflict, match="'web' already exists"):
        store.create_app(app_spec("web", org="acme"), by=ADMIN)
    with pytest.raises(NotFound, match="org 'nobody' not found"):
        store.create_app(app_spec("x", org="nobody"), by=ADMIN)
    with pytest.raises(NotFound, match="org 'acme' not found"):
        store.create_app(app_spec("x", org="acme"), by=PERSONAL)
    acme = Caller.for_org("acme")
    for call in (
        lambda: store.get_app("web", org="acme"),
        lambda: store.list_ips("web", org="acme"),
        lambda: store.allocate_ip("web", by=acme),
        lambda: store.release_ip("web", "127.77.0.1", by=acme),
        lambda: store.destroy_app("web", by=acme),
    ):
        with pytest.raises(NotFound, match="app 'web' not found"):
            call()
    assert [a.name for a in store.list_apps(org="acme")] == []
    assert [a.name for a in store.list_apps(org="personal")] == ["web"]


def test_a_failed_creation_leaves_nothing_behind(db: StoreAt) -> None:
    store = db.open(max_ips_per_org=1)
    seed(store)
    store.create_app(app_spec("one"), by=ADMIN)
    version = store.version()
    with pytest.raises(LimitExceeded):
        store.create_app(app_spec("two", machines=[{"region": "lhr", "demo": True}]), by=ADMIN)
    with pytest.raises(NotFound):
        store.get_app("two")
    assert store.version() == version
    assert [e.action for e in store.list_audit(app="two")] == []
    assert len(store.snapshot().machines) == 0
    store.close()


# --- persistence ---------------------------------------------------------------------------


SERVICE = {
    "internal_port": 8080,
    "ports": [{"port": 18080, "handlers": ["http"]}, {"port": 18443, "handlers": ["tls", "http"]}],
    "concurrency": {"type": "requests", "soft_limit": 20, "hard_limit": 25},
    "http_checks": [{"interval": "15s", "timeout": "2s", "path": "/health"}],
    "connect_timeout": "250ms",
    "slow_start": 0.00001,
}


def test_everything_survives_a_reopen_exactly(db: StoreAt) -> None:
    store = db.open()
    seed(store)
    machines = [
        {"region": "lhr", "address": "127.0.0.1:9001"},
        {"region": "syd", "address": "127.0.0.1", "ports": {8080: 9002}, "weight": 2},
        {"id": "demo-iad", "region": "iad", "demo": True, "state": "stopped"},
    ]
    spec = app_spec("web", services=[SERVICE], machines=machines)
    store.create_app(spec, ipv6=True, by=ADMIN, now=T0)
    store.allocate_ip("web", "v4", "syd", by=ADMIN, now=T0 + 300.7)
    store.allocate_ip("web", "private_v6", by=ADMIN, now=T0 + 400)
    before = (store.list_ips("web"), store.list_machines("web"), store.get_app("web"))
    store.close()

    reopened = db.open()
    after = (reopened.list_ips("web"), reopened.list_machines("web"), reopened.get_app("web"))
    assert after == before
    assert [format_time(a.created_at) for a in after[0]] == [
        "2026-11-29T10:00:00Z",
        "2026-11-29T10:00:00Z",
        "2026-11-29T10:05:00Z",
        "2026-11-29T10:06:40Z",
    ]
    assert after[2].services == spec.services
    assert after[2].services[0].connect_timeout == 0.25
    assert [m.to_spec() for m in after[1]][2] == MachineSpec.model_validate(machines[2])
    assert after[1][1].ports == ((8080, 9002),)
    reopened.close()


# --- allocate and release ------------------------------------------------------------------


def test_allocate_in_a_region_then_release(store: SqliteStore) -> None:
    store.create_app(app_spec("web"), by=PERSONAL)
    got = store.allocate_ip("web", "v4", "fra", by=PERSONAL)
    assert (got.address, got.region, got.primary) == ("127.77.0.2", "fra", False)
    with pytest.raises(BadRequest, match="unknown region 'xyz'; valid regions: ams, arn"):
        store.allocate_ip("web", "v4", "xyz", by=PERSONAL)
    with pytest.raises(Conflict, match="only by destroying the app"):
        store.release_ip("web", "127.77.0.1", by=PERSONAL)
    with pytest.raises(NotFound, match="not assigned to app 'web'"):
        store.release_ip("web", "127.77.0.9", by=PERSONAL)
    with pytest.raises(BadRequest, match="invalid IP address"):
        store.release_ip("web", "127.77.0", by=PERSONAL)
    assert store.release_ip("web", "127.77.0.2", by=PERSONAL) == got
    assert [a.address for a in store.list_ips("web")] == ["127.77.0.1"]
    actions = [(e.action, e.target, e.actor) for e in store.list_audit(app="web")]
    assert actions[:2] == [
        ("ip.release", "127.77.0.2", "org:personal"),
        ("ip.allocate", "127.77.0.2", "org:personal"),
    ]


def test_a_released_address_is_not_handed_out_again(store: SqliteStore) -> None:
    store.create_app(app_spec("web"), by=ADMIN, now=T0)
    extra = store.allocate_ip("web", by=ADMIN, now=T0)
    store.release_ip("web", extra.address, by=ADMIN, now=T0 + 1)
    again = store.allocate_ip("web", by=ADMIN, now=T0 + 2)
    assert again.address != extra.address
    assert again.address == "127.77.0.3"


def test_reuse_waits_for_reuse_after_across_restarts(db: StoreAt) -> None:
    store = db.open(v4_pools=("10.9.0.0/29",))  # .1 - .6
    seed(store)
    store.create_app(app_spec("web"), by=ADMIN, now=T0)
    held = [store.allocate_ip("web", by=ADMIN, now=T0).address for _ in range(5)]
    assert held == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    store.release_ip("web", "10.9.0.4", by=ADMIN, now=T0 + 10)
    store.release_ip("web", "10.9.0.3", by=ADMIN, now=T0 + 20)
    with pytest.raises(PoolExhausted, match=r"ipam\.pools\.v4 \(10\.9\.0\.0/29\)"):
        store.allocate_ip("web", by=ADMIN, now=T0 + 30)
    store.close()

    store = db.open(v4_pools=("10.9.0.0/29",))
    with pytest.raises(PoolExhausted):
        store.allocate_ip("web", by=ADMIN, now=T0 + 10 + HOUR - 1)
    assert store.allocate_ip("web", by=ADMIN, now=T0 + 10 + HOUR).address == "10.9.0.4"
    assert store.allocate_ip("web", by=ADMIN, now=T0 + 2 * HOUR).address == "10.9.0.3"
    store.close()


def test_the_org_limit_is_reached_exactly_at_100(store: SqliteStore) -> None:
    store.create_app(app_spec("web"), by=ADMIN)
    for _ in range(99):
        store.allocate_ip("web", by=ADMIN)
    with pytest.raises(LimitExceeded, match=r"org 'personal' has 100 IP assignments"):
        store.allocate_ip("web", "v6", by=ADMIN)
    assert len(store.list_ips("web")) == 100
    assert store.allocate_ip("web", "shared_v4", by=ADMIN).shared  # free, not counted
    store.create_app(app_spec("other", org="acme"), by=ADMIN)  # other orgs are unaffected


def test_a_moved_address_keeps_its_row_and_the_org_count(store: SqliteStore) -> None:
    store.create_app(app_spec("blue"), by=ADMIN, now=T0)
    store.create_app(app_spec("green"), by=ADMIN, now=T0)
    spare = store.allocate_ip("blue", region="syd", by=ADMIN, now=T0 + 1)
    version = store.version()
    moved = store.move_ip(spare.address, "blue", "green", by=PERSONAL, now=T0 + HOUR)
    assert moved == IpAssignment(
        spare.address, "v4", "syd", "green", "personal", spare.created_at, False, False
    )
    assert store.version() > version
    assert [a.address for a in store.list_ips("green")][1:] == [spare.address]
    assert spare.address not in [a.address for a in store.list_ips("blue")]
    entries = [e for e in store.list_audit(org="personal") if e.action == "ip.move"]
    assert [(e.app, e.actor, e.at) for e in entries] == [
        ("green", "org:personal", T0 + HOUR),
        ("blue", "org:personal", T0 + HOUR),
    ]
    for _ in range(97):  # 3 held: the org limit still counts the moved address once
        store.allocate_ip("green", by=ADMIN)
    with pytest.raises(LimitExceeded):
        store.allocate_ip("blue", by=ADMIN)


def test_a_move_is_refused_whole(store: SqliteStore) -> None:
    store.create_app(app_spec("blue"), by=ADMIN)
    store.create_app(app_spec("green"), by=ADMIN)
    store.create_app(app_spec("theirs", org="acme"), by=ADMIN)
    spare = store.allocate_ip("blue", by=ADMIN).address
    primary = store.list_ips("blue")[0].address
    version = store.version()
    with pytest.raises(Conflict, match="primary IP"):
        store.move_ip(primary, "blue", "green", by=ADMIN)
    with pytest.raises(NotFound, match="app 'theirs' not found"):
        store.move_ip(spare, "blue", "theirs", by=ADMIN)  # another org: as if absent
    with pytest.raises(NotFound, match="app 'theirs' not found"):
        store.move_ip(spare, "blue", "theirs", by=PERSONAL)
    with pytest.raises(NotFound, match="not assigned to app 'green'"):
        store.move_ip(spare, "green", "blue", by=ADMIN)
    with pytest.raises(BadRequest):
        store.move_ip("nope", "blue", "green", by=ADMIN)
    assert store.version() == version


def test_shared_v4_is_one_address_held_by_many_apps(store: SqliteStore) -> None:
    store.create_app(app_spec("a"), public_ips=False, by=ADMIN)
    store.create_app(app_spec("b", org="acme"), by=ADMIN)
    first = store.allocate_ip("a", "shared_v4", by=ADMIN)
    second = store.allocate_ip("b", "shared_v4", by=ADMIN)
    assert first.address == second.address == "127.77.255.254"
    assert (first.primary, second.primary) == (True, False)
    assert first.region == "global"
    with pytest.raises(Conflict):
        store.allocate_ip("b", "shared_v4", by=ADMIN)
    store.release_ip("b", "127.77.255.254", by=ADMIN)
    assert [a.app for a in store.list_active_ips() if a.shared] == ["a"]


def test_destroying_an_app_releases_all_its_ips(store: SqliteStore) -> None:
    created = store.create_app(
        app_spec("web", machines=[{"region": "lhr", "demo": True}]), ipv6=True, by=ADMIN, now=T0
    )
    store.allocate_ip("web", "shared_v4", by=ADMIN, now=T0)
    store.allocate_ip("web", "private_v6", by=ADMIN, now=T0)
    released = store.destroy_app("web", by=ADMIN, now=T0 + 5)
    assert {a.type for a in released} == {"v4", "v6", "shared_v4", "private_v6"}
    assert store.list_active_ips() == ()
    assert store.snapshot().machines == ()
    with pytest.raises(NotFound):
        store.list_ips("web")
    audit = Counter(e.action for e in store.list_audit(app="web"))
    assert audit == {
        "app.create": 1,
        "machine.add": 1,
        "ip.allocate": 4,
        "ip.release": 4,
        "app.destroy": 1,
    }
    again = store.create_app(app_spec("web"), by=ADMIN, now=T0 + 6)  # the name is free again
    assert again.ips[0].address not in {a.address for a in created.ips}


# --- machines, versions, snapshots ---------------------------------------------------------


def test_machines_get_platform_like_ids(store: SqliteStore) -> None:
    store.create_app(app_spec("web"), by=ADMIN)
    added = store.add_machine("web", MachineSpec(region="syd", demo=True), by=ADMIN)
    assert len(added.id) == 14
    assert int(added.id, 16) >= 0
    stopped = store.set_machine_state("web", added.id, "stopped", by=ADMIN)
    assert stopped.state == "stopped"
    assert store.list_machines("web") == (stopped,)
    with pytest.raises(Conflict):
        store.add_machine("web", MachineSpec(id=added.id, region="lhr", demo=True), by=ADMIN)
    with pytest.raises(BadRequest):
        store.set_machine_state("web", added.id, "paused", by=ADMIN)  # type: ignore[arg-type]
    assert store.remove_machine("web", added.id, by=ADMIN) == stopped
    with pytest.raises(NotFound, match="has no machine"):
        store.remove_machine("web", added.id, by=ADMIN)


def test_services_can_be_replaced(store: SqliteStore) -> None:
    store.create_app(app_spec("web"), by=ADMIN)
    services = (ServiceSpec.model_validate(SERVICE),)
    assert store.update_services("web", services, by=ADMIN).services == services
    assert store.get_app("web").services == services


def test_the_version_moves_with_every_change_and_only_then(store: SqliteStore) -> None:
    start = store.version()
    store.create_app(app_spec("web"), by=ADMIN)
    after_create = store.version()
    store.allocate_ip("web", by=ADMIN)
    after_allocate = store.version()
    assert start < after_create < after_allocate
    with pytest.raises(Conflict):
        store.release_ip("web", "127.77.0.1", by=ADMIN)
    assert store.version() == after_allocate
    snap = store.snapshot()
    assert snap.version == after_allocate
    assert [a.name for a in snap.apps] == ["web"]
    assert snap.ips == store.list_active_ips()


# --- the database itself failing -----------------------------------------------------------


def test_a_write_lock_held_past_busy_timeout_is_a_503_that_says_so(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "edge.db", IpamPolicy(), REGIONS, busy_timeout=0.2)
    seed(store)
    store.create_app(app_spec("web"), by=ADMIN)
    version = store.version()
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.allocate_ip("web", by=ADMIN)
        assert [a.address for a in store.list_ips("web")] == ["127.77.0.1"]  # reads go on
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.http_status == 503
    assert caught.value.message == (
        f"the state database {store.path} is busy (locked by another process for 0.2 s); retry"
    )
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert store.version() == version
    assert store.allocate_ip("web", by=ADMIN).address == "127.77.0.2"  # fine once released
    store.close()


def test_a_full_disk_is_a_503_and_the_change_is_rolled_back(sqlite_store: SqliteStore) -> None:
    store = sqlite_store
    conn = store._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: "disk full"
    version = store.version()
    with pytest.raises(StoreUnavailable, match=r"edge\.db: disk full; free some space and retry"):
        for n in range(1000):
            store.create_app(app_spec(f"app-{n}"), by=ADMIN)
    created = len(store.list_apps())
    assert store.version() == version + created
    assert len(store.list_active_ips()) == created  # the failed one left no IP behind


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (10, "disk I/O error", "cannot read or write the state database /s/edge.db: disk I/O"),
        (266, "disk I/O error", "cannot read or write"),  # SQLITE_IOERR_READ
        (8, "attempt to write a readonly database", "check its permissions"),
        (14, "unable to open database file", "cannot open the state database /s/edge.db"),
        (11, "database disk image is malformed", "damaged: database disk image is malformed"),
        (6, "database table is locked", "is busy (locked by another process for 30 s)"),
    ],
)
def test_sqlite_failures_that_are_not_edges_are_described(
    code: int, text: str, expected: str
) -> None:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code
    with (
        pytest.raises(StoreUnavailable, match=re.escape(expected)),
        store_errors(Path("/s/edge.db"), 30.0),
    ):
        raise exc


def test_edges_own_sql_mistakes_are_not_disguised(sqlite_store: SqliteStore) -> None:
    store = sqlite_store
    conn = store._conn()
    with (
        pytest.raises(sqlite3.OperationalError, match="no such table"),
        store_errors(store.path, 30.0),
    ):
        conn.execute("SELECT * FROM missing_table")
    with pytest.raises(sqlite3.IntegrityError), store_errors(store.path, 30.0):
        conn.execute("INSERT INTO orgs (slug, token_hash, created_at) VALUES ('personal', 'x', 0)")


# --- concurrency ---------------------------------------------------------------------------

ORGS = ("personal", "acme")
APPS_PER_ORG = 3
ATTEMPTS = 300


def _jobs(count: int, offset: int = 0) -> list[tuple[str, str]]:
    types = ("v4", "v6", "private_v6", "v4", "shared_v4")
    out = []
    for i in range(offset, offset + count):
        org = ORGS[i % 2]
        out.append((f"{org}-{(i // 2) % APPS_PER_ORG}", types[(i // 7) % len(types)]))
    return out


def _attempt(store: SqliteStore, app: str, ip_type: str) -> str:
    try:
        return "ok:" + store.allocate_ip(app, ip_type, by=ADMIN).address  # type: ignore[arg-type]
    except LimitExceeded:
        return "limit"
    except EdgeError as exc:  # a second shared_v4 for one app: a Conflict
        return type(exc).__name__


def _concurrency_setup(db: StoreAt) -> SqliteStore:
    store = db.open()
    seed(store, *ORGS)
    for org in ORGS:
        for n in range(APPS_PER_ORG):
            store.create_app(app_spec(f"{org}-{n}", org=org), by=ADMIN)
    return store


def _check_concurrency_outcome(store: SqliteStore, outcomes: list[str]) -> None:
    active = store.list_active_ips()
    dedicated = [a.address for a in active if not a.shared]
    assert len(dedicated) == len(set(dedicated)), "an address was handed out twice"
    per_org = Counter(a.org for a in active if not a.shared)
    assert per_org == {"personal": 100, "acme": 100}  # every org reached its limit, no more
    ok = [o for o in outcomes if o.startswith("ok:")]
    assert len(ok) + 2 * APPS_PER_ORG == len(active)
    assert set(outcomes) - set(ok) <= {"limit", "Conflict"}
    assert "limit" in outcomes


def test_parallel_threads_never_share_an_address_nor_pass_the_limit(db: StoreAt) -> None:
    store = _concurrency_setup(db)
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(lambda job: _attempt(store, *job), _jobs(ATTEMPTS)))
    _check_concurrency_outcome(store, outcomes)
    store.close()


def _process_worker(args: tuple[str, int, int]) -> list[str]:
    location, count, offset = args
    store = open_location(location)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda job: _attempt(store, *job), _jobs(count, offset)))
    finally:
        store.close()


def test_parallel_processes_never_share_an_address_nor_pass_the_limit(db: StoreAt) -> None:
    store = _concurrency_setup(db)
    workers = 4
    per_worker = ATTEMPTS // workers
    args = [(db.location, per_worker, w * per_worker) for w in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        outcomes = [o for result in pool.map(_process_worker, args) for o in result]
    assert len(outcomes) == ATTEMPTS
    _check_concurrency_outcome(store, outcomes)
    store.close()


_KILLED_WRITER = """
import sys
from pathlib import Path
from edge.config.regions import default_catalogue
from edge.core.ipam import IpamPolicy
from edge.store import ADMIN
from tests.integration.stores import open_location

store = open_location(sys.argv[1])
while True:
    print(store.allocate_ip("web", "v6", by=ADMIN).address, flush=True)
"""


def test_answered_allocations_survive_sigkill(db: StoreAt) -> None:
    store = db.open()
    seed(store)
    store.create_app(app_spec("web"), public_ips=False, by=ADMIN)
    store.close()
    with subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, db.location],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        answered = [writer.stdout.readline().strip() for _ in range(40)]
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
    assert all(answered)
    reopened = db.open()
    held = {a.address for a in reopened.list_ips("web")}
    assert set(answered) <= held
    reopened.close()
