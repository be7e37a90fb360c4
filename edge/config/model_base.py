"""The base of every config object and the validated scalars shared by its sections.

``Frozen`` is immutable and forbids unknown keys, so a typo is an error. ``RegionCode``
is case-insensitive and checked against the catalogue handed in as validation context
(``{"regions": {...}}``); ``Name`` is an app or org name (1-63 lowercase letters,
digits and '-').
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo

_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _check_region(value: str, info: ValidationInfo) -> str:
    regions = (info.context or {}).get("regions")
    if regions is not None and value not in regions:
        raise ValueError(f"unknown region {value!r}; valid regions: {', '.join(sorted(regions))}")
    return value


def _check_name(value: str) -> str:
    if not _APP_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return value


def region_code(value: object) -> object:
    """Region codes are case-insensitive: ``LHR`` is ``lhr`` (config, API, CLI)."""
    return value.strip().lower() if isinstance(value, str) else value


RegionCode = Annotated[str, BeforeValidator(region_code), AfterValidator(_check_region)]
Name = Annotated[str, AfterValidator(_check_name)]


class Frozen(BaseModel):
    """Base of every config object: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")
