"""Running the synchronous store off the event loop, one call at a time.

Every store call goes to a single worker thread: the loop never blocks on SQLite's
fsync, and calls from this daemon are serialised (the store's own transactions keep
other processes honest).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from edge.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class StoreRunner:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-store")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def close(self) -> None:
        await self.call(self.store.close)
        self._executor.shutdown(wait=True)
