"""Scalar types shared by the configuration model: durations, ports, addresses.

Each is an ``Annotated`` type whose validator raises ``ValueError`` with a short
message; ``edge.config.load`` prefixes it with the YAML path.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from ``500ms``, ``2s``, ``1m``, ``1h``; a bare number means milliseconds.

    Bare numbers are milliseconds as in the platform's fly.toml, so an app file
    written for it keeps its meaning here.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 500ms, 2s or 1m")
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "ms"]
    else:
        raise ValueError(f"must be a duration such as 500ms, 2s or 1m, not {value!r}")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def _check_port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number between 1 and 65535, not {value!r}")
    if not 1 <= value <= 65535:
        raise ValueError(f"must be between 1 and 65535, not {value}")
    return value


def _check_ip(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an IP address, not {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None


def _check_network(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a network in CIDR form, not {value!r}")
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid network: {exc}") from None


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` into its parts; ValueError when malformed."""
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
    else:
        host, sep, port_text = value.rpartition(":")
    if not sep or not host or not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"must be HOST:PORT, not {value!r}")
    return host, _check_port(int(port_text))


def _check_host_port(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be HOST:PORT, not {value!r}")
    split_host_port(value)
    return value


def parse_seconds(value: object) -> float:
    """Like ``parse_duration``, but a bare number means seconds (fly.toml's kill_timeout)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not value >= 0:  # negative, or NaN
            raise ValueError("must not be negative")
        return float(value)
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Seconds = Annotated[float, BeforeValidator(parse_seconds)]
Port = Annotated[int, BeforeValidator(_check_port)]
IPAddress = Annotated[str, BeforeValidator(_check_ip)]
Network = Annotated[str, BeforeValidator(_check_network)]
HostPort = Annotated[str, BeforeValidator(_check_host_port)]
