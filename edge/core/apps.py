"""Orgs, apps and machines as stored values, and the codec for an app's services.

Stores return these; the API and the runtime read them. Times are epoch seconds.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeGuard

from pydantic import BaseModel, BeforeValidator, TypeAdapter
from pydantic.fields import FieldInfo

from edge.config.model import MachineSpec, ProcessSpec, ServiceSpec
from edge.config.types import parse_duration
from edge.errors import BadRequest

MachineState = Literal["started", "stopped", "suspended"]
# suspended: autostop froze the machine (a process machine keeps its memory: SIGSTOP).
MACHINE_STATES: tuple[MachineState, ...] = ("started", "stopped", "suspended")
MACHINE_ID_BYTES = 7  # the platform's machine ids are 14 hex characters


@dataclass(frozen=True, slots=True)
class Org:
    slug: str
    created_at: int


@dataclass(frozen=True, slots=True)
class AppRecord:
    """An app as stored: its org, primary region and services (machines are apart)."""

    name: str
    org: str
    primary_region: str
    created_at: int
    services: tuple[ServiceSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Machine:
    """One instance of an app. ``ports`` maps internal ports to host ports."""

    id: str
    app: str
    region: str
    state: MachineState
    address: str | None
    ports: tuple[tuple[int, int], ...]
    weight: int
    demo: bool
    created_at: int
    updated_at: float
    process: ProcessSpec | None = None  # a process machine: edge runs this command

    def to_spec(self) -> MachineSpec:
        process = {} if self.process is None else self.process.model_dump(exclude={"process_group"})
        return MachineSpec(
            id=self.id,
            region=self.region,
            address=self.address,
            ports=dict(self.ports),
            weight=self.weight,
            demo=self.demo,
            state="stopped" if self.state == "suspended" else self.state,
            **process,
        )


def new_machine_id(entropy: bytes) -> str:
    """A machine id like the platform's (14 lowercase hex characters) from 7 random bytes."""
    if len(entropy) != MACHINE_ID_BYTES:
        raise ValueError(f"a machine id needs exactly {MACHINE_ID_BYTES} random bytes")
    return entropy.hex()


def is_machine_state(value: object) -> TypeGuard[MachineState]:
    return value in MACHINE_STATES


def parse_machine_state(value: object) -> MachineState:
    if not is_machine_state(value):
        raise BadRequest(f"state must be one of {', '.join(MACHINE_STATES)}, not {value!r}")
    return value


def machine_from_spec(
    spec: MachineSpec, machine_id: str, app: str, now: float, state: MachineState | None = None
) -> Machine:
    return Machine(
        id=machine_id,
        app=app,
        region=spec.region,
        state=state or spec.state,
        address=spec.address,
        ports=tuple(sorted(spec.ports.items())),
        weight=spec.weight,
        demo=spec.demo,
        created_at=int(now),
        updated_at=now,
        process=spec.process,
    )


# --- services as JSON --------------------------------------------------------------------
# Durations are floats in the model, but a bare number in the input means milliseconds,
# so they are written as "<seconds>s" to read back exactly.

_SERVICES = TypeAdapter(tuple[ServiceSpec, ...])


def _is_duration(info: FieldInfo) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in info.metadata)


def _seconds_text(value: float) -> str:
    return format(Decimal(repr(value)), "f") + "s"


def _dump_value(value: object, duration: bool) -> object:
    if isinstance(value, BaseModel):
        return _dump_model(value)
    if isinstance(value, tuple | list):
        return [_dump_value(v, False) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _dump_value(v, False) for k, v in value.items()}
    if duration and isinstance(value, float):
        return _seconds_text(value)
    return value


def _dump_model(model: BaseModel) -> dict[str, object]:
    fields = type(model).model_fields
    return {name: _dump_value(getattr(model, name), _is_duration(f)) for name, f in fields.items()}


def services_to_json(services: tuple[ServiceSpec, ...]) -> str:
    """JSON that ``services_from_json`` reads back to equal services."""
    return json.dumps([_dump_model(s) for s in services], separators=(",", ":"))


def services_from_json(text: str) -> tuple[ServiceSpec, ...]:
    return _SERVICES.validate_python(json.loads(text))


_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_slug(slug: str, what: str = "org slug") -> str:
    """``slug`` if it is 1-63 lowercase letters, digits and '-', not starting with '-'."""
    if not (0 < len(slug) <= 63 and set(slug) <= _SLUG_CHARS and not slug.startswith("-")):
        raise BadRequest(
            f"{slug!r} is not a valid {what}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return slug


# --- syncing an app's machines to its file -----------------------------------------------
# `edgectl deploy` makes the stored machines match the file without churning ids: a spec
# with an id is that machine; one without is the existing machine it describes.

Placement = tuple[str, str | None, bool, tuple[tuple[int, int], ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class MachineUpdate:
    """An existing machine that the file wants changed (``changes`` says how)."""

    machine: Machine
    spec: MachineSpec
    changes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MachineSync:
    """How to make an app's machines match its file: ``keep`` are already as wanted."""

    keep: tuple[Machine, ...] = ()
    update: tuple[MachineUpdate, ...] = ()
    add: tuple[MachineSpec, ...] = ()
    remove: tuple[Machine, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.update or self.add or self.remove)


def _deployed_fields(machine: Machine) -> dict[str, object]:
    """The fields a file sets (``id``, times and the app are not among them)."""
    return {
        "region": machine.region,
        "address": machine.address,
        "ports": machine.ports,
        "weight": machine.weight,
        "demo": machine.demo,
        "state": machine.state,
        "process": machine.process,
    }


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, ProcessSpec):
        return shlex.join(value.command)
    if isinstance(value, tuple):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def machine_changes(machine: Machine, spec: MachineSpec) -> tuple[str, ...]:
    """What deploying ``spec`` over ``machine`` changes, as ``field old -> new`` phrases."""
    now = _deployed_fields(machine)
    wanted = _deployed_fields(machine_from_spec(spec, machine.id, machine.app, 0.0))
    return tuple(
        f"{name} {_show(old)} -> {_show(wanted[name])}"
        for name, old in now.items()
        if old != wanted[name]
    )


def placement(machine: Machine) -> Placement:
    """Where a machine runs: what identifies a machine of a file that gives no id."""
    command = () if machine.process is None else machine.process.command
    return (machine.region, machine.address, machine.demo, machine.ports, command)


def spec_placement(spec: MachineSpec) -> Placement:
    ports = tuple(sorted(spec.ports.items()))
    return (spec.region, spec.address, spec.demo, ports, spec.command or ())


def _claim(
    existing: Sequence[Machine],
    wanted: Sequence[MachineSpec],
    matches: dict[int, Machine],
    same: Callable[[Machine, MachineSpec], bool],
) -> None:
    """Match each spec without an id and without a match to the first free ``same`` one."""
    taken = {m.id for m in matches.values()}
    for index, spec in enumerate(wanted):
        if spec.id is not None or index in matches:
            continue
        found = next((m for m in existing if m.id not in taken and same(m, spec)), None)
        if found is not None:
            matches[index] = found
            taken.add(found.id)


def match_machines(
    existing: Sequence[Machine], wanted: Sequence[MachineSpec]
) -> dict[int, Machine]:
    """The existing machine each spec (by index) stands for: the one with its id; for a
    spec without an id, an identical machine first, else one with the same placement."""
    by_id = {m.id: m for m in existing}
    matches = {i: by_id[s.id] for i, s in enumerate(wanted) if s.id is not None and s.id in by_id}
    _claim(existing, wanted, matches, lambda m, s: not machine_changes(m, s))
    _claim(existing, wanted, matches, lambda m, s: placement(m) == spec_placement(s))
    return matches


def plan_machine_sync(existing: Sequence[Machine], wanted: Sequence[MachineSpec]) -> MachineSync:
    """Keep, update, add and remove so that the machines are exactly ``wanted``."""
    matches = match_machines(existing, wanted)
    keep: list[Machine] = []
    update: list[MachineUpdate] = []
    add: list[MachineSpec] = []
    for index, spec in enumerate(wanted):
        machine = matches.get(index)
        changes = () if machine is None else machine_changes(machine, spec)
        if machine is None:
            add.append(spec)
        elif changes:
            update.append(MachineUpdate(machine, spec, changes))
        else:
            keep.append(machine)
    matched = {m.id for m in matches.values()}
    remove = tuple(m for m in existing if m.id not in matched)
    return MachineSync(tuple(keep), tuple(update), tuple(add), remove)
