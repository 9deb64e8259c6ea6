"""The limits that stop a batch submitting (docs/design.md §10): credits, failures in a row, time.

Each limit stops new creates only; runs already created are still followed to their
end. They count within one invocation: running the same command again resumes with
the same allowance (that is what exit 7 promises), so `--max-credits 100` sends at most
100 estimated credits' worth each time it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from retab_cli.parsing import format_duration
from retab_cli.text import format_number

DEFAULT_MAX_FAILURES = 10


@dataclass(frozen=True)
class Limits:
    max_credits: float | None = None
    max_failures: int = DEFAULT_MAX_FAILURES  # in a row; 0 = off
    max_duration: float | None = None         # seconds; no new creates after it


class Gate:
    """Says whether the next create may go, and once one may not, why the batch stopped."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._deadline = None if limits.max_duration is None else clock() + limits.max_duration
        self.estimated = 0.0   # credits of the creates let through
        self.streak = 0        # failures in a row
        self.stopped: str | None = None  # why no more creates go, once that is so

    def admit(self, estimate: float) -> bool:
        """Count a create of `estimate` credits in, or stop before it."""
        if self.stopped is not None:
            return False
        limits = self.limits
        if self._deadline is not None and self._clock() >= self._deadline:
            assert limits.max_duration is not None
            self.stopped = f"--max-duration {format_duration(limits.max_duration)} has passed"
        elif limits.max_credits is not None and self.estimated + estimate > limits.max_credits:
            total = format_number(round(self.estimated + estimate, 6))
            self.stopped = (f"--max-credits {format_number(limits.max_credits)}: the next "
                            f"document ({format_number(estimate)} credits) would bring the "
                            f"estimate to {total}")
        else:
            self.estimated = round(self.estimated + estimate, 6)
            return True
        return False

    def failure(self) -> None:
        """A run failed or a document was refused: one more in a row."""
        self.streak += 1
        limit = self.limits.max_failures
        if limit and self.streak >= limit and self.stopped is None:
            self.stopped = f"--max-failures {limit}: {self.streak} documents failed in a row"

    def success(self) -> None:
        self.streak = 0
