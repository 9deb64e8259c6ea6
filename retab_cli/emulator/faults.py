"""Fault state: scripted faults, next-create outcomes, rate limits, random errors.

Plain data and bookkeeping; the ASGI middleware in `middleware.py` acts on it.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from retab_cli.emulator.config import RateLimit


@dataclass
class Fault:
    """One scripted fault, applied to the next `times` matching requests."""

    id: str
    method: str | None
    path: str
    times: int
    status: int | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    delay: float | None = None
    drop: bool = False
    drop_after: int | None = None  # request-body bytes read before the connection drops
    slow: float | None = None
    truncate: bool = False
    pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.pattern.search(path) is not None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "status": self.status,
            "body": self.body,
            "headers": self.headers,
            "delay": self.delay,
            "drop": self.drop,
            "drop_after": self.drop_after,
            "slow": self.slow,
            "truncate": self.truncate,
        }


class FaultQueue:
    """Scripted faults, consumed in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, **spec: Any) -> Fault:
        fault = Fault(id="flt_" + secrets.token_hex(6), **spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.public() for fault in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __bool__(self) -> bool:
        return bool(self._faults)


class NextCreates:
    """Outcomes forced on the next creates: failed, cancelled or stuck."""

    def __init__(self) -> None:
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()

    def add(self, outcome: str, times: int) -> None:
        with self._lock:
            self._queue.extend([outcome] * times)

    def take(self) -> str | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


class RateLimiter:
    """A token bucket per API key: `requests` tokens, refilled over `period_s`."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._rate = limit.requests / limit.period_s
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, owner: str) -> float:
        """0 when the request may go; otherwise the seconds until a token is due."""
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(owner, (float(self.limit.requests), now))
            tokens = min(float(self.limit.requests), tokens + (now - stamp) * self._rate)
            if tokens >= 1.0:
                self._buckets[owner] = (tokens - 1.0, now)
                return 0.0
            self._buckets[owner] = (tokens, now)
            return (1.0 - tokens) / self._rate

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


def retry_after_header(wait_s: float) -> str:
    # Whole seconds, never 0: a client honouring it must not spin.
    return str(max(1, math.ceil(wait_s)))


class ErrorDice:
    """`--error-rate`: a seeded draw per /v1 request, reproducible from a reset."""

    def __init__(self, rate: float, seed: int | None) -> None:
        self.rate = rate
        self.seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def roll(self) -> bool:
        if self.rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < self.rate

    def reset(self) -> None:
        with self._lock:
            self._rng = random.Random(self.seed)
