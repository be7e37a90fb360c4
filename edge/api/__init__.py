"""The control plane: an aiohttp application serving the REST API, /metrics and /healthz."""
