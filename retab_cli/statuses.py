"""The run statuses of the API, in lifecycle order (no heavy imports: the engine uses them)."""

from __future__ import annotations

from retab_cli.errors import BadResponseError

ACTIVE_ORDER = ("pending", "queued", "in_progress")
KNOWN_STATUSES = (*ACTIVE_ORDER, "completed", "failed", "cancelled")
ACTIVE = frozenset(ACTIVE_ORDER)
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def status_of(data: object) -> str:
    """The status of a fetched object (any non-empty string: unknown ones are shown, never
    fatal), or an unusable-response error."""
    status = data.get("status") if isinstance(data, dict) else None
    if not isinstance(status, str) or not status:
        raise BadResponseError("unusable response: a partition without a status")
    return status
