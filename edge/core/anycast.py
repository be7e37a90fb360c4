"""Where a client is, and which point of presence anycast delivers it to.

On the platform BGP anycast carries a client to the nearest edge. Here clients are
placed in regions by the ``edge.clients`` CIDR table (longest prefix wins), and the
ingress PoP is the up PoP with the lowest modelled RTT from the client's region.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edge.core.latency import LatencyModel

# One lookup table per address family: (mask, {network as int: region}), longest
# prefix first, so a lookup costs one AND and one dict access per distinct prefix length.
_Table = tuple[tuple[int, Mapping[int, str]], ...]


class ClientNetLike(Protocol):
    """What is needed of ``edge.config.model.ClientNet``."""

    @property
    def cidr(self) -> str: ...
    @property
    def region(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ClientMap:
    """Client networks compiled for longest-prefix lookups."""

    local_region: str
    v4: _Table
    v6: _Table

    @classmethod
    def build(cls, clients: Iterable[ClientNetLike], local_region: str) -> ClientMap:
        by_family: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        for net in clients:
            network = ipaddress.ip_network(net.cidr, strict=False)
            lengths = by_family[network.version]
            # The first entry for a given network wins, as in a routing table read top down.
            lengths.setdefault(network.prefixlen, {}).setdefault(
                int(network.network_address), net.region
            )
        return cls(local_region, _table(by_family[4], 32), _table(by_family[6], 128))

    def region_for(self, ip: str) -> str:
        """The region of the most specific network containing ``ip``, else the local one."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return self.local_region
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a v4 client seen on a dual-stack socket
        # Loopback clients are local unless a CIDR inside the loopback range says
        # otherwise: that is how a demo places clients in other regions by source address
        # (127.1.0.0/16 -> syd), while a catch-all such as 0.0.0.0/0 leaves them local.
        loopback_bits = (8 if address.version == 4 else 128) if address.is_loopback else 0
        value = int(address)
        for mask, networks in self.v4 if address.version == 4 else self.v6:
            if mask.bit_count() < loopback_bits:
                continue
            region = networks.get(value & mask)
            if region is not None:
                return region
        return self.local_region


def _table(lengths: dict[int, dict[int, str]], bits: int) -> _Table:
    ordered = sorted(lengths, reverse=True)
    return tuple((((1 << n) - 1) << (bits - n), lengths[n]) for n in ordered)


def client_region_for(ip: str, clients: Sequence[ClientNetLike], local_region: str) -> str:
    """One-off lookup; a hot path builds a ``ClientMap`` once and keeps it."""
    return ClientMap.build(clients, local_region).region_for(ip)


def pops_by_rtt(
    client_region: str, pops: Sequence[str], model: LatencyModel
) -> tuple[tuple[str, float], ...]:
    """``(pop, rtt)`` for every PoP, nearest first; ties keep the order of ``pops``."""
    rtts = model.matrix[client_region]
    return tuple(sorted(((pop, rtts[pop]) for pop in pops), key=lambda item: item[1]))


def ingress_pop(client_region: str, pops_up: Sequence[str], model: LatencyModel) -> str | None:
    """The up PoP anycast delivers this client to (lowest RTT, first on ties), or None."""
    rtts = model.matrix[client_region]
    best: str | None = None
    best_rtt = 0.0
    for pop in pops_up:
        rtt = rtts[pop]
        if best is None or rtt < best_rtt:
            best, best_rtt = pop, rtt
    return best
