"""Reading and validating configuration files, with every error named by its YAML path.

Errors look like ``apps[0].services[0].ports[1].port: must be between 1 and 65535``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from edge.config.model import AppSpec, EdgeConfig
from edge.core.regions import RegionCatalogue
from edge.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def yaml_path(loc: tuple[int | str, ...]) -> str:
    """``('apps', 0, 'services')`` -> ``apps[0].services``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; unknown keys are not ignored)"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message


def format_validation_errors(exc: ValidationError) -> tuple[str, ...]:
    """One ``path: message`` line per error, in document order."""
    lines: list[str] = []
    for error in exc.errors():
        # pydantic adds the matched tag of a function validator to loc; drop such noise.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        line = f"{yaml_path(loc)}: {_message(error)}"
        if line not in lines:
            lines.append(line)
    return tuple(lines)


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


def validate(model: type[ModelT], data: object, regions: RegionCatalogue, source: str) -> ModelT:
    """``data`` as ``model``; ConfigError listing every problem with its path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return model.model_validate(data, context={"regions": regions.codes()})
    except ValidationError as exc:
        problems = format_validation_errors(exc)
        raise ConfigError(f"{source}: {len(problems)} error(s)", problems) from None


def parse_config(data: object, regions: RegionCatalogue, source: str = "config") -> EdgeConfig:
    config = validate(EdgeConfig, data, regions, source)
    _check_cross_references(config, source)
    return config


def _check_cross_references(config: EdgeConfig, source: str) -> None:
    slugs = {"personal"} | {o.slug for o in config.orgs}
    problems = [
        f"apps[{i}].org: org {app.org!r} is not declared under orgs"
        for i, app in enumerate(config.apps)
        if app.org not in slugs
    ]
    if problems:
        raise ConfigError(f"{source}: {len(problems)} error(s)", tuple(problems))


def load_config(path: Path, regions: RegionCatalogue) -> EdgeConfig:
    """The only place that reads ``edge.yaml``."""
    data = _read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("apps"), list):
        for app in data["apps"]:
            anchor_workdirs(app, path)
    return parse_config(data, regions, str(path))


def load_app_file(path: Path, regions: RegionCatalogue) -> AppSpec:
    """An app file for ``edgectl deploy``."""
    return validate(AppSpec, anchor_workdirs(_read_yaml(path), path), regions, str(path))


def anchor_workdirs(app: object, path: Path) -> object:
    """A machine with a command runs in its file's directory, or in its ``workdir``
    taken relative to it (an app file in ``edge.yaml`` or ``edgectl deploy``)."""
    base = path.resolve().parent
    machines = app.get("machines") if isinstance(app, dict) else None
    for machine in machines if isinstance(machines, list) else ():
        if isinstance(machine, dict) and machine.get("command") is not None:
            machine["workdir"] = str(base / str(machine.get("workdir") or "."))
    return app
