"""The run statuses of the API, in lifecycle order (no heavy imports: the engine uses them)."""

from __future__ import annotations

ACTIVE_ORDER = ("pending", "queued", "in_progress")
KNOWN_STATUSES = (*ACTIVE_ORDER, "completed", "failed", "cancelled")
ACTIVE = frozenset(ACTIVE_ORDER)
TERMINAL = frozenset({"completed", "failed", "cancelled"})
