"""Locks per key (an API key's idempotency key, an API key's fetches)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    """`size` holders at a time per key; a key's semaphore is dropped when nobody
    holds or waits for it."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._slots: dict[tuple[str, str], tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        slot, users = self._slots.get(key, (asyncio.Semaphore(self.size), 0))
        self._slots[key] = (slot, users + 1)
        try:
            async with slot:
                yield
        finally:
            slot, users = self._slots[key]
            if users == 1:
                del self._slots[key]
            else:
                self._slots[key] = (slot, users - 1)
