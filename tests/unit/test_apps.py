"""Matching an app file's machines to the stored ones (``edge.core.apps``), without I/O."""

from __future__ import annotations

from typing import Any

from edge.config.model import MachineSpec
from edge.core.apps import (
    Machine,
    MachineSync,
    machine_changes,
    machine_from_spec,
    match_machines,
    plan_machine_sync,
)

NOW = 1_800_000_000.0


def spec(**fields: Any) -> MachineSpec:
    fields.setdefault("region", "lhr")
    if "address" not in fields:
        fields.setdefault("demo", True)
    return MachineSpec.model_validate(fields)


def machine(machine_id: str, **fields: Any) -> Machine:
    return machine_from_spec(spec(**fields), machine_id, "web", NOW)


def test_an_identical_file_keeps_every_machine() -> None:
    existing = (
        machine("aaa", address="127.0.0.1:9001"),
        machine("bbb", region="syd", address="127.0.0.1:9002", weight=2),
        machine("ccc", region="iad"),
    )
    wanted = [m.to_spec().model_copy(update={"id": None}) for m in existing]
    assert plan_machine_sync(existing, wanted) == MachineSync(keep=existing)
    assert not plan_machine_sync(existing, wanted).changed


def test_a_changed_weight_or_state_updates_the_machine_in_place() -> None:
    existing = (machine("aaa", address="127.0.0.1:9001"),)
    sync = plan_machine_sync(existing, [spec(address="127.0.0.1:9001", weight=3, state="stopped")])
    assert [(u.machine.id, u.changes) for u in sync.update] == [
        ("aaa", ("weight 1 -> 3", "state started -> stopped"))
    ]
    assert (sync.keep, sync.add, sync.remove) == ((), (), ())


def test_a_machine_in_another_place_is_a_new_one() -> None:
    existing = (machine("aaa", address="127.0.0.1:9001"),)
    moved = spec(address="127.0.0.1:9009")
    sync = plan_machine_sync(existing, [moved])
    assert (sync.add, sync.remove, sync.update) == ((moved,), existing, ())


def test_ports_are_part_of_the_place() -> None:
    existing = (machine("aaa", address="10.0.0.1", ports={8080: 9001}),)
    assert plan_machine_sync(existing, [spec(address="10.0.0.1", ports={8080: 9001})]).keep
    other = plan_machine_sync(existing, [spec(address="10.0.0.1", ports={8080: 9002})])
    assert (len(other.add), len(other.remove)) == (1, 1)


def test_machines_missing_from_the_file_are_removed_and_new_ones_added() -> None:
    existing = (machine("aaa", region="lhr"), machine("bbb", region="syd"))
    new = spec(region="nrt")
    sync = plan_machine_sync(existing, [spec(region="syd"), new])
    assert [m.id for m in sync.keep] == ["bbb"]
    assert [m.id for m in sync.remove] == ["aaa"]
    assert sync.add == (new,)


def test_an_explicit_id_is_matched_by_id_wherever_the_machine_is() -> None:
    existing = (machine("web-1", region="lhr"), machine("aaa", region="syd"))
    sync = plan_machine_sync(existing, [spec(id="web-1", region="fra"), spec(region="syd")])
    assert [(u.machine.id, u.changes) for u in sync.update] == [("web-1", ("region lhr -> fra",))]
    assert [m.id for m in sync.keep] == ["aaa"]
    assert (sync.add, sync.remove) == ((), ())


def test_an_unknown_explicit_id_is_added_and_never_steals_a_machine() -> None:
    existing = (machine("aaa", region="lhr"),)
    named = spec(id="web-1", region="lhr")
    sync = plan_machine_sync(existing, [named])
    assert sync.add == (named,)
    assert [m.id for m in sync.remove] == ["aaa"]


def test_a_machine_claimed_by_id_is_not_matched_again_by_place() -> None:
    existing = (machine("web-1", region="lhr"),)
    sync = plan_machine_sync(existing, [spec(region="lhr"), spec(id="web-1", region="lhr")])
    assert [m.id for m in sync.keep] == ["web-1"]
    assert len(sync.add) == 1 and sync.add[0].id is None


def test_twins_prefer_the_identical_machine_so_nothing_churns() -> None:
    existing = (machine("aaa", weight=1), machine("bbb", weight=2))
    wanted = [spec(weight=2), spec(weight=1)]
    assert {i: m.id for i, m in match_machines(existing, wanted).items()} == {0: "bbb", 1: "aaa"}
    assert not plan_machine_sync(existing, wanted).changed


def test_twins_that_changed_are_updated_not_replaced() -> None:
    existing = (machine("aaa", weight=1), machine("bbb", weight=2))
    sync = plan_machine_sync(existing, [spec(weight=2), spec(weight=5)])
    assert [m.id for m in sync.keep] == ["bbb"]
    assert [(u.machine.id, u.changes) for u in sync.update] == [("aaa", ("weight 1 -> 5",))]


def test_changes_are_described_field_by_field() -> None:
    before = machine("aaa", address="10.0.0.1", ports={8080: 9001})
    after = spec(demo=True)
    assert machine_changes(before, after) == (
        "address 10.0.0.1 -> none",
        "ports {8080: 9001} -> {}",
        "demo false -> true",
    )
    assert machine_changes(before, before.to_spec()) == ()
