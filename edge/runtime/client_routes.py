"""Where a listener's clients are, and the routing request of each: both cached per client.

A client's region comes from its address (the configured client map) unless it may claim
one (``Edge-Client-Region``, when trusted); its requests that carry no routing header and
are no retry all make the same ``RouteRequest`` (immutable), so it is built once per
(PoP, client) instead of once per request. Both caches are bounded: cleared when full.
"""

from __future__ import annotations

from edge.core.route_headers import route_request
from edge.core.routing import RouteRequest
from edge.dataplane.contract import ClientInfo, RouteHints
from edge.runtime.routing_state import RoutingState

CACHE_SIZE = 4096  # clients per listener whose region and plain request are kept


class ClientRoutes:
    """One listener's view of its clients: their regions and their routing requests."""

    def __init__(self, state: RoutingState) -> None:
        self.state = state
        # The configuration never changes while the daemon runs: read it once.
        self._trust_region_header = state.config.edge.trust_client_region_header
        self._regions: dict[str, str] = {}
        self._plain: dict[tuple[str, str], RouteRequest] = {}

    def region(self, client: ClientInfo, hints: RouteHints | None) -> str:
        if hints is not None and hints.client_region and self._trust_region_header:
            claimed = hints.client_region.strip().lower().decode("latin-1")
            if claimed in self.state.valid_regions:
                return claimed
        region = self._regions.get(client.peer_ip)
        if region is None:
            if len(self._regions) >= CACHE_SIZE:
                self._regions.clear()
            region = self.state.client_map.region_for(client.peer_ip)
            self._regions[client.peer_ip] = region
        return region

    def request(
        self, pop: str, client: ClientInfo, hints: RouteHints | None, exclude: frozenset[str]
    ) -> RouteRequest:
        """What routing is asked for this connection or request (core.route_headers)."""
        if exclude or (hints is not None and not _plain(hints)):
            state = self.state
            return route_request(
                pop, client.peer_ip, hints, state.valid_regions, exclude, state.aliases
            )
        key = (pop, client.peer_ip)
        request = self._plain.get(key)
        if request is None:
            if len(self._plain) >= CACHE_SIZE:
                self._plain.clear()
            request = self._plain[key] = RouteRequest(pop=pop, client_key=client.peer_ip)
        return request


def _plain(hints: RouteHints) -> bool:
    """No header that steers routing: then the request depends on PoP and client alone."""
    return (
        hints.replay is None
        and hints.force_instance is None
        and hints.prefer_instance is None
        and hints.force_region is None
        and hints.prefer_region is None
    )
