"""The request budget: one token bucket per process, shared by every request.

Implemented as a virtual-schedule bucket (GCRA): each `acquire` reserves the next
free slot, so waiters are served in order and the long-run rate never exceeds
`rate`, with at most `burst` requests sent back to back. Pure logic over an
injectable clock and sleep, so tests drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

DEFAULT_RATE = 5.0  # Retab's published limit: 300 requests per minute
MIN_RATE = 0.2
RECOVER_AFTER = 10.0  # seconds without a 429 before the rate doubles back up


class Budget:
    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.configured_rate = rate
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        # The next free slot; never earlier than `burst` slots back from now (in
        # `acquire`), so the bucket starts full: the first `burst` go back to back.
        self._next = -math.inf
        self._blocked_until = -math.inf
        self._last_limited: float | None = None
        self.sent = 0
        self.rate_limited = 0

    @property
    def unlimited(self) -> bool:
        return self.configured_rate == 0

    async def acquire(self) -> None:
        """Wait for this request's slot."""
        while True:
            now = self._clock()
            if now < self._blocked_until:
                await self._sleep(self._blocked_until - now)
                continue
            if self.unlimited:
                break
            self._recover(now)
            interval = 1.0 / self.rate
            slot = max(self._next, now - (self.burst - 1) * interval)
            self._next = slot + interval
            if slot > now:
                await self._sleep(slot - now)
            if self._clock() >= self._blocked_until:
                break
        self.sent += 1

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429: halve the rate and hold every request until `retry_after` has passed."""
        now = self._clock()
        self.rate_limited += 1
        self._last_limited = now
        if not self.unlimited:
            self.rate = max(MIN_RATE, self.rate / 2)
        # Without Retry-After, wait one slot of the new rate (1 s when unlimited).
        slot = 1.0 if self.unlimited else 1.0 / max(self.rate, MIN_RATE)
        pause = retry_after if retry_after is not None else slot
        self._blocked_until = max(self._blocked_until, now + pause)
        self._next = max(self._next, self._blocked_until)

    def interval_for(self, runs: int) -> float:
        """The shortest poll interval per run that keeps `runs` pollers inside the budget."""
        if self.unlimited:
            return 0.0
        return max(0, runs) / self.rate

    def _recover(self, now: float) -> None:
        """Double the rate back, up to the configured one, every RECOVER_AFTER quiet seconds."""
        if self._last_limited is not None and now - self._last_limited >= RECOVER_AFTER:
            self.rate = min(self.configured_rate, self.rate * 2)
            self._last_limited = now
