"""Private addresses of process machines: one loopback address each.

Every process machine listens on its own address (``FLY_PRIVATE_IP``) at the
service's internal port, as machines on the platform all listen on 8080 of their own
6PN address. Addresses come from ``edge.machine_network`` (inside 127.0.0.0/8). The
choice is stable: a machine keeps the address it has, and a new machine's first try
is derived from its app and id, so a restarted edge hands out the same addresses.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence

MachineKey = tuple[str, str]  # (app, machine id)


def _first_try(key: MachineKey, size: int) -> int:
    digest = hashlib.blake2b(f"{key[0]}/{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % size


def assign_private_ips(
    keys: Sequence[MachineKey], network: str, current: Mapping[MachineKey, str]
) -> dict[MachineKey, str]:
    """An address in ``network`` for each of ``keys``: its ``current`` one when it has
    one, else the first free one from its derived start. ValueError when full."""
    net = ipaddress.ip_network(network)
    first, size = int(net.network_address) + 1, max(1, net.num_addresses - 2)
    wanted = set(keys)
    assigned = {k: ip for k, ip in current.items() if k in wanted}
    taken = set(assigned.values())
    for key in sorted(wanted - assigned.keys()):
        start = _first_try(key, size)
        for step in range(size):
            address = str(ipaddress.ip_address(first + (start + step) % size))
            if address not in taken:
                break
        else:
            raise ValueError(f"machine_network {network} has no free address for {key[1]}")
        assigned[key] = address
        taken.add(address)
    return assigned
