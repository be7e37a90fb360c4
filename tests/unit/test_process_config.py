"""App files with process machines and scale-to-zero settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge.config.model import EdgeSpec, MachineSpec, ServiceSpec
from edge.core.apps import Machine, machine_changes, machine_from_spec


def spec(**fields: Any) -> MachineSpec:
    return MachineSpec.model_validate({"region": "lhr", **fields})


def test_a_command_machine_and_its_defaults() -> None:
    machine = spec(command="python3 -m http.server 8080")
    assert machine.command == ("python3", "-m", "http.server", "8080")
    assert spec(command=["sh", "-c", "echo 'a b'"]).command == ("sh", "-c", "echo 'a b'")
    process = machine.process
    assert process is not None
    assert (process.kill_signal, process.kill_timeout, process.start_timeout) == (
        "SIGINT",
        5.0,
        10.0,
    )
    assert (process.restart.policy, process.restart.max_retries) == ("on-failure", 10)
    assert spec(command=["a", "b"], kill_timeout=7).kill_timeout == 7.0  # seconds, as fly.toml
    assert spec(command=["a"], kill_timeout="500ms").kill_timeout == 0.5
    assert spec(address="127.0.0.1:9").process is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "127.0.0.1:9", "command": "x"}, "this one gives address and command"),
        ({"demo": True, "command": "x"}, "this one gives demo and command"),
        ({}, "give either address"),
        ({"command": []}, "command must not be empty"),
        ({"command": "sh -c 'echo hi'"}, "write it as a list"),
        ({"command": "a  b"}, "plain words separated by single spaces"),
        ({"command": ["a\0b"]}, "must not contain a NUL"),
        ({"command": ["a"], "env": {"A": "x\0"}}, "must not contain a NUL"),
        ({"command": "x", "kill_signal": "SIGWHAT"}, "SIGINT"),
        ({"command": "x", "kill_timeout": "301s"}, "less than or equal to 300"),
        ({"command": "x", "kill_timeout": -1}, "must not be negative"),
        ({"command": "x", "start_timeout": 0}, "greater than 0"),
        ({"command": "x", "restart": {"policy": "sometimes"}}, "on-failure"),
        ({"command": "x", "env": {"A=B": "1"}}, "not a valid variable name"),
        ({"address": "127.0.0.1:9", "env": {"A": "1"}}, "for a machine with a command"),
        ({"command": "x", "ports": {8080: 9000}}, "ports is for address and demo machines"),
    ],
)
def test_bad_process_machines_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


def test_auto_stop_accepts_the_platform_booleans() -> None:
    ports = [{"port": 80}]
    assert ServiceSpec.model_validate({"ports": ports}).auto_stop_machines == "off"
    assert (
        ServiceSpec.model_validate({"ports": ports, "auto_stop_machines": True}).auto_stop_machines
        == "stop"
    )
    off = ServiceSpec.model_validate({"ports": ports, "auto_stop_machines": False})
    assert off.auto_stop_machines == "off" and off.auto_start_machines
    with pytest.raises(ValidationError):
        ServiceSpec.model_validate({"ports": ports, "auto_stop_machines": "sometimes"})
    with pytest.raises(ValidationError):
        ServiceSpec.model_validate({"ports": ports, "min_machines_running": -1})


def test_edge_autostop_interval_and_machine_network() -> None:
    base = {"pops": ["lhr"], "local_region": "lhr"}
    assert EdgeSpec.model_validate(base).autostop_interval == 180.0
    assert EdgeSpec.model_validate({**base, "autostop_interval": "2s"}).autostop_interval == 2.0
    with pytest.raises(ValidationError, match="at least 100ms"):
        EdgeSpec.model_validate({**base, "autostop_interval": "10ms"})
    with pytest.raises(ValidationError, match=r"inside 127\.0\.0\.0/8"):
        EdgeSpec.model_validate({**base, "machine_network": "10.0.0.0/16"})


def test_changing_the_command_is_a_machine_update() -> None:
    machine: Machine = machine_from_spec(spec(command="a b"), "m1", "app", 0.0)
    assert machine_changes(machine, spec(command="a b")) == ()
    assert machine_changes(machine, spec(command="a c")) == ("process a b -> a c",)
    assert machine.to_spec().command == ("a", "b")
