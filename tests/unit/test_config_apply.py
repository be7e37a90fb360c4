"""The restart rule's pure part: which hand stops survive a changed config entry."""

from __future__ import annotations

from edge.config.model import AppSpec
from edge.runtime.bootstrap import keep_hand_stops, machine_hashes, spec_hash


def app(*machines: dict[str, object]) -> AppSpec:
    return AppSpec.model_validate({"app": "web", "primary_region": "lhr", "machines": machines})


A = {"id": "a", "region": "lhr", "demo": True}
B = {"id": "b", "region": "iad", "demo": True}


def test_a_hand_stop_survives_when_only_another_machine_changed() -> None:
    before = machine_hashes(app(A, B))
    after = keep_hand_stops(app(A, {**B, "weight": 2}), before, stopped={"a", "b"})
    states = {m.id: m.state for m in after.machines}
    assert states == {"a": "stopped", "b": "started"}  # b's own entry changed: the file wins


def test_nothing_changes_without_hand_stops_and_hashes_are_stable() -> None:
    spec = app(A, B)
    assert keep_hand_stops(spec, machine_hashes(spec), stopped=set()) == spec
    assert spec_hash(spec) == spec_hash(app(A, B)) != spec_hash(app(A))
