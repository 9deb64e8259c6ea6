"""Everything the routes and middleware share, built once per app."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from retab_cli.emulator.blobs import Blobs
from retab_cli.emulator.config import Settings
from retab_cli.emulator.faults import ErrorDice, FaultQueue, NextCreates, RateLimiter
from retab_cli.emulator.fetch import Fetcher
from retab_cli.emulator.keyed import KeyedLocks
from retab_cli.emulator.lifecycle import now_us
from retab_cli.emulator.middleware import RequestLog
from retab_cli.emulator.signing import UrlSigner
from retab_cli.emulator.store import Store


class UniqueClock:
    """Wall-clock microseconds, strictly increasing within the process, so no two
    runs created here share a `created_at`."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def now(self) -> int:
        with self._lock:
            self._last = max(now_us(), self._last + 1)
            return self._last


@dataclass
class EmulatorState:
    settings: Settings
    store: Store
    faults: FaultQueue = field(default_factory=FaultQueue)
    next_creates: NextCreates = field(default_factory=NextCreates)
    log: RequestLog = field(default_factory=RequestLog)
    clock: UniqueClock = field(default_factory=UniqueClock)
    idempotency: KeyedLocks = field(default_factory=KeyedLocks)
    limiter: RateLimiter | None = None
    dice: ErrorDice = field(init=False)
    fetcher: Fetcher = field(init=False)
    signer: UrlSigner = field(default_factory=UrlSigner)
    blobs: Blobs = field(init=False)

    def __post_init__(self) -> None:
        self.dice = ErrorDice(self.settings.error_rate, self.settings.seed)
        self.fetcher = Fetcher(self.settings.fetch_timeout_s)
        self.blobs = Blobs(self.settings.db)
        if self.settings.rate_limit is not None:
            self.limiter = RateLimiter(self.settings.rate_limit)

    def reset(self) -> None:
        self.store.reset()
        self.blobs.reset()
        self.faults.clear()
        self.next_creates.clear()
        self.log.clear()
        self.dice.reset()
        if self.limiter is not None:
            self.limiter.clear()

    def close(self) -> None:
        self.store.close()
        self.blobs.close()
