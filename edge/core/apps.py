"""Orgs, apps and machines as stored values, and the codec for an app's services.

Stores return these; the API and the runtime read them. Times are epoch seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeGuard

from pydantic import BaseModel, BeforeValidator, TypeAdapter
from pydantic.fields import FieldInfo

from edge.config.model import MachineSpec, ServiceSpec
from edge.config.types import parse_duration
from edge.errors import BadRequest

MachineState = Literal["started", "stopped"]
MACHINE_STATES: tuple[MachineState, ...] = ("started", "stopped")
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

    def to_spec(self) -> MachineSpec:
        return MachineSpec(
            id=self.id,
            region=self.region,
            address=self.address,
            ports=dict(self.ports),
            weight=self.weight,
            demo=self.demo,
            state=self.state,
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
