"""What a running batch has done so far: counters the engine keeps and the views read.

The plain line (stderr every 30 s off a terminal, so CI watchdogs see life) is built
here; the live display on a terminal (retab_cli/render/batch_live.py) reads the same
counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from retab_cli.parsing import format_duration
from retab_cli.text import format_number


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    discovered: int = 0   # documents of this shard found so far
    hashed: int = 0       # read (or known unchanged) and journaled
    sending: int = 0      # creates (and uploads) in flight
    running: int = 0      # runs created and not ended
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    local_errors: int = 0  # refused locally: unreadable, empty, unsupported, not split
    unsent: int = 0        # left for the next run by a limit
    earlier: int = 0       # of the ended ones, those that ended in an earlier run
    credits: float = 0.0   # of the runs that ended in this run
    walked: bool = False   # every document has been found

    @property
    def ended(self) -> int:
        return self.completed + self.failed + self.cancelled + self.local_errors + self.unsent

    def rate(self, now: float) -> float:
        """Documents ended per second in this run (those ended earlier left out)."""
        elapsed = now - self.started
        return (self.ended - self.earlier) / elapsed if elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        """Seconds left at the current rate, once every document is known."""
        rate = self.rate(now)
        if not self.walked or rate <= 0:
            return None
        return max(0, self.discovered - self.ended) / rate

    def line(self, now: float) -> str:
        """`batch: 120 found, 118 read, 4 sending, 30 running, 80 completed, ... · 2.1/s`."""
        parts = [f"{self.discovered} found" + ("" if self.walked else " so far"),
                 f"{self.hashed} read", f"{self.sending} sending", f"{self.running} running",
                 f"{self.completed} completed", f"{self.failed} failed"]
        for count, word in ((self.cancelled, "cancelled"), (self.local_errors, "refused"),
                            (self.unsent, "not sent")):
            if count:
                parts.append(f"{count} {word}")
        line = (f"batch: {', '.join(parts)} · {format_number(round(self.credits, 6))} credits · "
                f"{self.rate(now):.1f} documents/s · {format_duration(now - self.started)}")
        eta = self.eta(now)
        return line + (f" · ETA {format_duration(eta)}" if eta is not None else "")
