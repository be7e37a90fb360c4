"""The hot path: uvloop ``asyncio.Protocol`` relays for raw TCP and HTTP/1.1.

The data plane knows nothing of apps, snapshots or the store. Each listener hands
its protocols a ``ListenerRouter`` (``edge.dataplane.contract``) that chooses an
upstream and hears what happened to it; the runtime implements it over the routing
snapshot, health state and metrics.
"""
