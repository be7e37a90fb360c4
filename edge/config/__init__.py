"""The configuration tree: YAML parsed once into typed, frozen objects.

``load_config(path)`` is the only function that reads a configuration file.
"""

from edge.config.load import format_validation_errors, load_config, parse_config
from edge.config.model import (
    AppSpec,
    CheckSpec,
    ConcurrencySpec,
    EdgeConfig,
    MachineSpec,
    PortSpec,
    ServiceSpec,
)

__all__ = [
    "AppSpec",
    "CheckSpec",
    "ConcurrencySpec",
    "EdgeConfig",
    "MachineSpec",
    "PortSpec",
    "ServiceSpec",
    "format_validation_errors",
    "load_config",
    "parse_config",
]
