"""``deploy_app`` on both backends (``db``: SQLite, PostgreSQL): create or update an app
from its file, atomically."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge.config.model import AppSpec
from edge.config.regions import default_catalogue
from edge.core.ipam import IpamPolicy
from edge.core.tokens import hash_token
from edge.errors import BadRequest, Conflict, LimitExceeded, NotFound, StoreUnavailable
from edge.store import ADMIN, SYSTEM, Caller, DeployResult, SqliteStore, sqlite_deploy
from tests.integration.stores import StoreAt

REGIONS = default_catalogue().codes()
T0 = 1_795_946_400.0
PERSONAL = Caller.for_org("personal")
ACME = Caller.for_org("acme")
MACHINES: list[dict[str, Any]] = [
    {"region": "lhr", "address": "127.0.0.1:9001"},
    {"region": "syd", "address": "127.0.0.1:9002", "weight": 2},
    {"region": "iad", "demo": True},
]
SERVICE = {"internal_port": 8080, "ports": [{"port": 18080, "handlers": ["http"]}]}


def app_file(
    machines: list[dict[str, Any]] | None = None, *, checked: bool = True, **extra: Any
) -> AppSpec:
    """The app file of ``web``; ``checked=False`` skips the region check of the loader."""
    data = {"app": "web", "primary_region": "lhr", "services": [SERVICE], **extra}
    data["machines"] = MACHINES if machines is None else machines
    return AppSpec.model_validate(data, context={"regions": REGIONS} if checked else None)


def seeded(store: SqliteStore) -> SqliteStore:
    for slug in ("personal", "acme"):
        store.create_org(slug, hash_token(f"token-{slug}"), by=SYSTEM, now=T0)
    return store


def make_store(tmp_path: Path, **options: Any) -> SqliteStore:
    policy = IpamPolicy(**options.pop("policy", {}))
    return seeded(SqliteStore(tmp_path / "edge.db", policy, REGIONS, **options))


@pytest.fixture
def store(db: StoreAt) -> Iterator[SqliteStore]:
    opened = seeded(db.open())
    yield opened
    opened.close()


def ids(result: DeployResult) -> list[str]:
    return [m.id for m in result.machines]


def state_of(store: SqliteStore) -> tuple[object, ...]:
    """Everything a deploy may touch, to compare before and after."""
    return (
        store.version(),
        store.get_app("web"),
        store.list_machines("web"),
        store.list_ips("web"),
        store.list_audit(),
    )


# --- creating ------------------------------------------------------------------------------


def test_deploying_a_new_app_creates_it_like_create_app(store: SqliteStore) -> None:
    result = store.deploy_app(app_file(), by=PERSONAL, now=T0)
    assert (result.created, result.changed, result.app_updated) == (True, True, False)
    assert result.app == store.get_app("web")
    assert result.app.services[0].ports[0].port == 18080
    assert [(a.type, a.address, a.primary) for a in result.ips] == [("v4", "127.77.0.1", True)]
    assert result.machines == store.list_machines("web")
    assert list(result.added) == ids(result) and len(set(result.added)) == 3
    assert (result.updated, result.removed) == ((), ())
    actions = Counter(e.action for e in store.list_audit(app="web"))
    assert actions == {"app.create": 1, "machine.add": 3, "ip.allocate": 1}
    assert {e.actor for e in store.list_audit(app="web")} == {"org:personal"}


def test_a_new_app_without_public_ips_gets_none(store: SqliteStore) -> None:
    result = store.deploy_app(app_file([]), by=ADMIN, public_ips=False)
    assert (result.created, result.ips, result.machines) == (True, (), ())
    assert store.list_ips("web") == ()


def test_a_destroyed_app_is_created_again(store: SqliteStore) -> None:
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    store.destroy_app("web", by=ADMIN, now=T0 + 1)
    again = store.deploy_app(app_file(), by=ADMIN, now=T0 + 2)
    assert again.created
    assert again.app.created_at == int(T0 + 2)


# --- updating ------------------------------------------------------------------------------


def test_redeploying_the_same_file_changes_nothing_at_all(store: SqliteStore) -> None:
    first = store.deploy_app(app_file(), by=ADMIN, now=T0)
    before = state_of(store)
    again = store.deploy_app(app_file(), by=ADMIN, now=T0 + 60)
    assert (again.created, again.changed, again.app_updated) == (False, False, False)
    assert (again.added, again.updated, again.removed, again.ips) == ((), (), (), ())
    assert ids(again) == ids(first)
    assert again.machines == first.machines  # not even updated_at moved
    assert state_of(store) == before  # no version bump, no audit entry


def test_the_same_file_survives_a_restart_unchanged(db: StoreAt) -> None:
    store = seeded(db.open())
    first = store.deploy_app(app_file(), by=SYSTEM, now=T0)
    store.close()
    reopened = db.open()
    again = reopened.deploy_app(app_file(), by=SYSTEM, now=T0 + 3600)
    assert not again.changed
    assert again.machines == first.machines
    reopened.close()


def test_a_changed_weight_updates_the_machine_in_place(store: SqliteStore) -> None:
    first = store.deploy_app(app_file(), by=ADMIN, now=T0)
    version = store.version()
    machines = [dict(MACHINES[0], weight=5), *MACHINES[1:]]
    result = store.deploy_app(app_file(machines), by=ADMIN, now=T0 + 60)
    lhr = first.machines[0]
    assert (result.added, result.updated, result.removed) == ((), (lhr.id,), ())
    assert ids(result) == ids(first)
    updated = result.machines[0]
    assert (updated.weight, updated.created_at, updated.updated_at) == (5, lhr.created_at, T0 + 60)
    assert result.machines[1:] == first.machines[1:]
    assert store.version() > version
    latest = store.list_audit(app="web", limit=1)[0]
    assert (latest.action, latest.target, latest.detail) == (
        "machine.update",
        lhr.id,
        "weight 1 -> 5",
    )


def test_a_machine_left_out_of_the_file_is_removed(store: SqliteStore) -> None:
    first = store.deploy_app(app_file(), by=ADMIN, now=T0)
    result = store.deploy_app(app_file(MACHINES[:2]), by=ADMIN, now=T0 + 60)
    gone = first.machines[2].id
    assert (result.added, result.updated, result.removed) == ((), (), (gone,))
    assert ids(result) == ids(first)[:2]
    latest = store.list_audit(app="web", limit=1)[0]
    assert (latest.action, latest.target) == ("machine.remove", gone)


def test_a_machine_added_to_the_file_is_added_and_the_others_untouched(
    store: SqliteStore,
) -> None:
    first = store.deploy_app(app_file(), by=ADMIN, now=T0)
    more = [*MACHINES, {"region": "nrt", "demo": True}]
    result = store.deploy_app(app_file(more), by=ADMIN, now=T0 + 60)
    assert (len(result.added), result.updated, result.removed) == (1, (), ())
    assert ids(result) == [*ids(first), result.added[0]]
    assert result.machines[:3] == first.machines
    assert result.machines[3].region == "nrt"


def test_moving_a_machine_replaces_it(store: SqliteStore) -> None:
    first = store.deploy_app(app_file(), by=ADMIN, now=T0)
    moved = [{"region": "lhr", "address": "127.0.0.1:9011"}, *MACHINES[1:]]
    result = store.deploy_app(app_file(moved), by=ADMIN, now=T0 + 60)
    assert result.removed == (first.machines[0].id,)
    assert len(result.added) == 1 and result.added[0] not in ids(first)


def test_machines_with_explicit_ids_are_matched_by_id(store: SqliteStore) -> None:
    named: list[dict[str, Any]] = [
        {"id": "web-lhr", "region": "lhr", "address": "127.0.0.1:9001"},
        {"id": "web-syd", "region": "syd", "demo": True},
    ]
    first = store.deploy_app(app_file(named), by=ADMIN, now=T0)
    assert ids(first) == ["web-lhr", "web-syd"]
    changed: list[dict[str, Any]] = [
        {"id": "web-lhr", "region": "fra", "address": "127.0.0.1:9005"},
        {"id": "web-iad", "region": "iad", "demo": True},
    ]
    result = store.deploy_app(app_file(changed), by=ADMIN, now=T0 + 60)
    assert (result.added, result.updated, result.removed) == (
        ("web-iad",),
        ("web-lhr",),
        ("web-syd",),
    )
    moved = result.machines[0]
    assert (moved.id, moved.region, moved.address) == ("web-lhr", "fra", "127.0.0.1:9005")
    detail = next(e.detail for e in store.list_audit(app="web") if e.action == "machine.update")
    assert detail == "region lhr -> fra, address 127.0.0.1:9001 -> 127.0.0.1:9005"


def test_the_file_sets_the_state_of_its_machines(store: SqliteStore) -> None:
    first = store.deploy_app(app_file(), by=ADMIN, now=T0)
    store.set_machine_state("web", first.machines[0].id, "stopped", by=ADMIN)
    result = store.deploy_app(app_file(), by=ADMIN, now=T0 + 60)
    assert result.updated == (first.machines[0].id,)
    assert result.machines[0].state == "started"


def test_services_and_primary_region_are_updated(store: SqliteStore) -> None:
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    service = dict(SERVICE, ports=[{"port": 18443, "handlers": ["tls", "http"]}])
    result = store.deploy_app(
        app_file(services=[service], primary_region="fra"), by=ADMIN, now=T0 + 60
    )
    assert (result.app_updated, result.changed, result.added, result.removed) == (
        True,
        True,
        (),
        (),
    )
    app = store.get_app("web")
    assert (app.primary_region, app.services[0].ports[0].port) == ("fra", 18443)
    assert result.app == app
    assert store.list_ips("web")[0].region == "lhr"  # assigned addresses keep their region
    details = [e.detail for e in store.list_audit(app="web", limit=2)]
    assert details == ["set 1 service(s)", "moved the primary region from lhr to fra"]


# --- orgs ----------------------------------------------------------------------------------


def test_an_app_of_another_org_is_not_found_for_an_org_caller(store: SqliteStore) -> None:
    store.deploy_app(app_file(), by=PERSONAL, now=T0)
    before = state_of(store)
    with pytest.raises(NotFound, match="app 'web' not found"):
        store.deploy_app(app_file(org="acme"), by=ACME)
    with pytest.raises(NotFound, match="app 'web' not found"):
        store.deploy_app(app_file(), by=ACME)
    with pytest.raises(NotFound, match="org 'acme' not found"):
        store.deploy_app(app_file(org="acme"), by=PERSONAL)
    assert state_of(store) == before


def test_an_admin_deploying_to_another_org_gets_a_conflict_naming_both(
    store: SqliteStore,
) -> None:
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    before = state_of(store)
    with pytest.raises(Conflict, match="app 'web' belongs to org 'personal', not 'acme'"):
        store.deploy_app(app_file(org="acme"), by=ADMIN)
    assert state_of(store) == before


def test_an_org_caller_creates_only_in_its_own_org(store: SqliteStore) -> None:
    with pytest.raises(NotFound, match="org 'personal' not found"):
        store.deploy_app(app_file(), by=ACME)
    assert store.deploy_app(app_file(org="acme"), by=ACME).app.org == "acme"


# --- failures change nothing ---------------------------------------------------------------


def test_a_bad_region_in_a_machine_is_a_bad_request_and_the_app_is_unchanged(
    store: SqliteStore,
) -> None:
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    before = state_of(store)
    bad = [dict(MACHINES[0], weight=9), MACHINES[1], {"region": "xyz", "demo": True}]
    with pytest.raises(BadRequest, match="unknown region 'xyz'"):
        store.deploy_app(app_file(bad, checked=False), by=ADMIN, now=T0 + 60)
    with pytest.raises(BadRequest, match="unknown region 'xyz'"):
        store.deploy_app(app_file(checked=False, primary_region="xyz"), by=ADMIN, now=T0 + 60)
    assert state_of(store) == before


def test_a_failure_midway_rolls_every_step_back(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    before = state_of(store)

    def broken_insert(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the disk went away")

    # Removing, updating and the services are written before the new machine fails.
    monkeypatch.setattr(sqlite_deploy, "insert_machine", broken_insert)
    changed = [dict(MACHINES[0], weight=9), {"region": "nrt", "demo": True}]
    with pytest.raises(RuntimeError):
        store.deploy_app(app_file(changed, services=[]), by=ADMIN, now=T0 + 60)
    assert state_of(store) == before


def test_a_failed_creation_leaves_no_app_behind(db: StoreAt) -> None:
    store = seeded(db.open(max_ips_per_org=1))
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    version = store.version()
    with pytest.raises(LimitExceeded):
        store.deploy_app(app_file(app="other"), by=ADMIN, now=T0)
    with pytest.raises(NotFound):
        store.get_app("other")
    assert store.version() == version
    assert store.list_audit(app="other") == ()
    assert len(store.snapshot().machines) == 3
    store.close()


def test_a_busy_database_is_a_503_and_changes_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path, busy_timeout=0.1)
    store.deploy_app(app_file(), by=ADMIN, now=T0)
    before = state_of(store)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match=r"is busy .* for 0\.1 s\); retry") as caught:
            store.deploy_app(app_file(MACHINES[:1]), by=ADMIN)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caught.value.http_status == 503
    assert state_of(store) == before
    assert store.deploy_app(app_file(MACHINES[:1]), by=ADMIN).removed  # works once freed
    store.close()


# --- concurrency ---------------------------------------------------------------------------


def test_parallel_deploys_of_one_file_create_it_once(store: SqliteStore) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.deploy_app(app_file(), by=SYSTEM), range(16)))
    assert sum(r.created for r in results) == 1
    assert sum(r.changed for r in results) == 1
    assert len({tuple(ids(r)) for r in results}) == 1
    assert len(store.list_machines("web")) == 3
    assert len(store.list_ips("web")) == 1
