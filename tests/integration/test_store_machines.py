"""The store's part in machines that edge runs: the process column, the suspended state,
reasons, machine events, and migrating a version-1 database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config.model import AppSpec, MachineSpec
from edge.config.regions import default_catalogue
from edge.core.ipam import IpamPolicy
from edge.core.tokens import hash_token
from edge.errors import BadRequest, NotFound
from edge.store import ADMIN, SYSTEM, Caller, SqliteStore
from edge.store.migrations import _V1, LATEST_VERSION

REGIONS = frozenset(default_catalogue().codes())


def make_store(path: Path) -> SqliteStore:
    return SqliteStore(path, IpamPolicy(), REGIONS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = make_store(tmp_path / "edge.db")
    opened.create_org("personal", hash_token("t"), by=SYSTEM)
    yield opened
    opened.close()


def deploy(store: SqliteStore, **machine: object) -> None:
    spec = {"app": "web", "primary_region": "lhr", "machines": [{"region": "lhr", **machine}]}
    store.deploy_app(AppSpec.model_validate(spec, context={"regions": REGIONS}), by=ADMIN)


def test_a_process_machine_keeps_its_process_spec(store: SqliteStore) -> None:
    deploy(store, id="p1", command="python3 app.py", env={"A": "1"}, kill_timeout="2s")
    (machine,) = store.list_machines("web")
    assert machine.process is not None
    assert machine.process.command == ("python3", "app.py") and machine.process.env == {"A": "1"}
    assert machine.process.kill_timeout == 2.0
    version = store.version()
    deploy(store, id="p1", command="python3 app.py", env={"A": "1"}, kill_timeout="2s")
    assert store.version() == version  # the same file again writes nothing
    deploy(store, id="p1", command="python3 other.py")
    (changed,) = store.list_machines("web")
    assert changed.process is not None and changed.process.command == ("python3", "other.py")
    assert store.snapshot().machines[0].process == changed.process


def test_states_reasons_and_events(store: SqliteStore) -> None:
    deploy(store, id="p1", command="true")
    autostop = Caller("autostop")
    stopped = store.set_machine_state(
        "web", "p1", "suspended", by=autostop, reason="autostop: idle for 60s"
    )
    assert stopped.state == "suspended"
    audit = store.list_audit(app="web", limit=1)[0]
    assert (audit.actor, audit.action, audit.detail) == (
        "autostop", "machine.suspended", "machine suspended: autostop: idle for 60s"
    )  # fmt: skip
    version = store.version()
    store.set_machine_state("web", "p1", "suspended", by=autostop)
    assert store.version() == version  # already suspended: nothing written
    store.record_machine_event("web", "p1", "exited", "exit status 3", exit_code=3)
    assert store.version() == version  # events are not routing state
    events = store.list_machine_events("web", "p1")
    assert [(e.kind, e.exit_code) for e in events] == [
        ("exited", 3), ("suspend", None), ("created", None)
    ]  # fmt: skip
    assert events[1].detail == "by autostop: idle for 60s"
    assert store.list_machine_events("web", "p1", limit=1)[0].kind == "exited"
    with pytest.raises(NotFound):
        store.list_machine_events("web", "p1", org="someone-else")
    with pytest.raises(BadRequest):
        store.set_machine_state("web", "p1", "frozen", by=ADMIN)  # type: ignore[arg-type]


def test_only_the_newest_events_are_kept(store: SqliteStore) -> None:
    deploy(store, id="p1", command="true")
    for n in range(230):
        store.record_machine_event("web", "p1", "restarting", f"restart {n}")
    events = store.list_machine_events("web", "p1", limit=500)
    assert len(events) == 200 and events[0].detail == "restart 229"


def test_a_version_1_database_is_migrated_with_its_machines(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    with sqlite3.connect(path) as conn:
        for statement in _V1:
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                     "description TEXT NOT NULL, applied_at REAL NOT NULL)")  # fmt: skip
        conn.execute("INSERT INTO schema_version VALUES (1, 'v1', 0)")
        conn.execute("INSERT INTO orgs VALUES (1, 'personal', 'h', 0)")
        conn.execute("INSERT INTO apps VALUES (1, 'old', 1, 'lhr', '[]', 0, NULL)")
        conn.execute(
            "INSERT INTO machines (id, app_id, region, state, address, ports, weight, demo, "
            "created_at, updated_at) VALUES ('m1', 1, 'lhr', 'started', NULL, '[]', 1, 1, 0, 0)"
        )
    store = make_store(path)
    try:
        (machine,) = store.list_machines("old")
        assert (machine.id, machine.demo, machine.process) == ("m1", True, None)
        store.set_machine_state("old", "m1", "suspended", by=ADMIN)
        assert store.list_machine_events("old", "m1")[0].kind == "suspend"
        with sqlite3.connect(path) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, LATEST_VERSION + 1))
    finally:
        store.close()


def test_machine_spec_round_trip() -> None:
    spec = MachineSpec.model_validate(
        {"region": "lhr", "command": ["a", "b c"], "restart": {"policy": "always"}}
    )
    assert spec.process is not None and spec.process.restart.policy == "always"
