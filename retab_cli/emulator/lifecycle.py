"""Run timing and derived status.

Each run stores absolute times at creation (`queued_until`, `done_at`, wall-clock
microseconds), so its status is a pure function of the current time: restarts and
later speed changes never rewrite history.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

QUEUED_S = 1.0
BASE_RUN_S = 2.0
PER_PAGE_S = 0.5
JITTER = 0.2
SYNC_WAIT_CAP_S = 60.0


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000


def now_us() -> int:
    return time.time_ns() // 1000


def format_time(us: int) -> str:
    """RFC 3339 in UTC, always with microseconds and `Z`, so strings sort like times."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_start_us(day: datetime) -> int:
    return (day.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def jitter(run_id: str) -> float:
    """A factor in [0.8, 1.2] fixed by the id, so a run's pace never changes."""
    digest = hashlib.blake2b(run_id.encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return 1.0 - JITTER + 2 * JITTER * fraction


def schedule(
    run_id: str, pages: int, speed: float, created_us: int, cap_s: float | None = None
) -> tuple[int, int]:
    """`(queued_until, done_at)` in microseconds; `cap_s` squeezes the whole run."""
    factor = jitter(run_id) / speed
    queued = QUEUED_S * factor
    running = (BASE_RUN_S + PER_PAGE_S * pages) * factor
    if cap_s is not None and queued + running > cap_s:
        scale = cap_s / (queued + running)
        queued, running = queued * scale, running * scale
    queued_until = created_us + round(queued * _US)
    return queued_until, queued_until + round(running * _US)


def derive_status(now: int, queued_until: int, done_at: int | None, final_status: str) -> str:
    if now < queued_until:
        return "queued"
    if done_at is None or now < done_at:
        return "in_progress"
    return final_status


def present(record: dict[str, Any], status: str, include_output: bool) -> dict[str, Any]:
    """The Partition object as the API shows it at `status`.

    The stored record holds the run's results from the start; they are shown only
    once the run has completed (and its error only once it has failed).
    """
    completed = status == "completed"
    return {
        "id": record["id"],
        "file": record["file"],
        "model": record["model"],
        "key": record["key"],
        "instructions": record["instructions"],
        "n_consensus": record["n_consensus"],
        "allow_overlap": record["allow_overlap"],
        "output": record["output"] if completed and include_output else [],
        "status": status,
        "error": record["error"] if status == "failed" else None,
        "consensus": record["consensus"] if completed and include_output else None,
        "usage": {"credits": record["credits"]} if completed else None,
        "created_at": record["created_at"],
    }
