"""Process machines of a running daemon: from the store's snapshot to the supervisor.

``ProcessMachines.sync(snapshot)`` gives every process machine its private address
(``edge.core.machine_net``) and its plan (command, environment, port), and hands the
supervisor what each should be doing. ``hosts()`` is what routing needs: where each
machine listens and whether it accepts yet.
"""

from __future__ import annotations

from typing import Any

from edge.core import apps as records
from edge.core.machine_net import MachineKey, assign_private_ips
from edge.runtime.process_plan import ProcessPlan
from edge.runtime.supervisor import Supervisor
from edge.store import StoreSnapshot

DEFAULT_PORT = 8080  # PORT for an app without services


def _public_ips(snapshot: StoreSnapshot) -> dict[str, str]:
    """Each app's primary public address (FLY_PUBLIC_IP), else its shared one."""
    found: dict[str, str] = {}
    for ip in snapshot.ips:
        if ip.type in ("v4", "v6") and (ip.primary or ip.app not in found):
            found[ip.app] = ip.address
        elif ip.type == "shared_v4":
            found.setdefault(ip.app, ip.address)
    return found


class ProcessMachines:
    def __init__(self, supervisor: Supervisor, network: str) -> None:
        self.supervisor = supervisor
        self.network = network
        self.private_ips: dict[MachineKey, str] = {}
        self.ports: dict[MachineKey, int] = {}

    async def sync(self, snapshot: StoreSnapshot) -> None:
        machines = [m for m in snapshot.machines if m.process is not None]
        keys = [(m.app, m.id) for m in machines]
        self.private_ips = assign_private_ips(keys, self.network, self.private_ips)
        apps = {app.name: app for app in snapshot.apps}
        public = _public_ips(snapshot)
        wanted: dict[str, tuple[ProcessPlan, str]] = {}
        for machine in machines:
            app = apps.get(machine.app)
            if app is None or machine.process is None:
                continue
            key = (machine.app, machine.id)
            port = app.services[0].internal_port if app.services else DEFAULT_PORT
            self.ports[key] = port
            plan = ProcessPlan(
                app=machine.app,
                machine_id=machine.id,
                region=machine.region,
                primary_region=app.primary_region,
                spec=machine.process,
                private_ip=self.private_ips[key],
                port=port,
                public_ip=public.get(machine.app, ""),
            )
            wanted[f"{machine.app}/{machine.id}"] = (plan, machine.state)
        await self.supervisor.sync(wanted)

    def hosts(self) -> dict[MachineKey, tuple[str, bool]]:
        return {
            key: (ip, self.supervisor.is_ready(f"{key[0]}/{key[1]}"))
            for key, ip in self.private_ips.items()
        }

    def runtime_state(self, app: str, machine_id: str) -> str | None:
        machine = self.supervisor.get(f"{app}/{machine_id}")
        return None if machine is None else machine.state

    def error(self, app: str, machine_id: str) -> str:
        machine = self.supervisor.get(f"{app}/{machine_id}")
        return "" if machine is None else machine.error

    def listening(self, machine: records.Machine) -> list[str]:
        key = (machine.app, machine.id)
        if not self.supervisor.is_ready(f"{machine.app}/{machine.id}"):
            return []
        return [f"{self.private_ips[key]}:{self.ports.get(key, DEFAULT_PORT)}"]

    def view(self, machine: records.Machine) -> dict[str, Any] | None:
        """What the supervisor knows of a process machine, for the API."""
        if machine.process is None:
            return None
        key = (machine.app, machine.id)
        running = self.supervisor.get(f"{machine.app}/{machine.id}")
        return {
            "command": list(machine.process.command),
            "state": running.state if running else "stopped",
            "pid": running.pid if running else None,
            "private_ip": self.private_ips.get(key),
            "port": self.ports.get(key, DEFAULT_PORT),
            "restarts": running.restarts if running else 0,
            "exit_code": running.exit_code if running else None,
            "error": (running.error or None) if running else None,
        }
