"""The functional core: plain synchronous code over immutable values.

Nothing here imports asyncio, socket, aiohttp or prometheus_client (a unit test
enforces it). Time (``now``) and randomness (``random.Random``) are arguments.
"""
