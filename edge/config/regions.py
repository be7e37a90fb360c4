"""Loading the region catalogue shipped with the package (``edge/data/regions.yaml``)."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from edge.config.model import Frozen
from edge.core.regions import Region, RegionCatalogue
from edge.errors import ConfigError


class _RegionEntry(Frozen):
    code: str = Field(pattern=r"^[a-z]{3}$")
    city: str
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    gateway: bool = False
    deprecated: bool = False
    geo_region: Literal["us", "na", "sa", "eu", "apac", "af"]


class _CatalogueFile(Frozen):
    regions: tuple[_RegionEntry, ...] = Field(min_length=1)


def parse_catalogue(text: str, source: str) -> RegionCatalogue:
    from pydantic import ValidationError

    from edge.config.load import format_validation_errors

    try:
        parsed = _CatalogueFile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        problems = (
            format_validation_errors(exc) if isinstance(exc, ValidationError) else (str(exc),)
        )
        raise ConfigError(f"{source}: invalid region catalogue", problems) from None
    from edge.config.latency_data import default_routes

    regions = {e.code: Region(**e.model_dump()) for e in parsed.regions}
    # Every catalogue is cabled as the packaged route table says (regions it does not
    # list take their nearest listed region's area).
    return RegionCatalogue(by_code=regions, routes=default_routes())


def load_catalogue(path: Path | None = None) -> RegionCatalogue:
    """The catalogue in ``path``, or the one shipped with the package."""
    if path is None:
        return default_catalogue()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read region catalogue {path}: {exc.strerror}") from None
    return parse_catalogue(text, str(path))


@functools.cache
def default_catalogue() -> RegionCatalogue:
    text = resources.files("edge").joinpath("data/regions.yaml").read_text(encoding="utf-8")
    return parse_catalogue(text, "edge/data/regions.yaml")
