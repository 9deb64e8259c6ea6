"""Cell formatters shared by the table views: statuses, pages, credits, ages, --fields values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.text import Text

from retab_cli.parsing import parse_time
from retab_cli.render import Renderer, dumps, format_number, sanitize
from retab_cli.render.console import Cell, width_of

STATUS_STYLES = {
    "pending": "dim",
    "queued": "dim",
    "in_progress": "yellow",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}

# `prtn_` + 21 characters: ids are never truncated in the list.
ID_WIDTH = 26
STATUS_WIDTH = len("in_progress")
EMPTY = "—"
MISSING = "-"


def status_text(status: object) -> Text:
    """A status word in its colour; statuses this client does not know are plain."""
    word, style = status_cell(status)
    return Text(word, style=style)


def status_cell(status: object) -> Cell:
    word = sanitize(status, single_line=True)
    return (word, STATUS_STYLES.get(word, ""))


def page_ranges(pages: Sequence[int]) -> str:
    """`[1, 2, 3, 5]` -> `"1-3, 5"`: sorted, de-duplicated, `—` when empty."""
    ordered = sorted(set(pages))
    if not ordered:
        return EMPTY
    parts: list[str] = []
    start = prev = ordered[0]
    for page in ordered[1:]:
        if page != prev + 1:
            parts.append(_range(start, prev))
            start = page
        prev = page
    parts.append(_range(start, prev))
    return ", ".join(parts)


def _range(start: int, end: int) -> str:
    return str(start) if start == end else f"{start}-{end}"


def format_credits(credits: float) -> str:
    """`7 credits ($0.07)`: 1 credit is $0.01 (CONTRACT, pricing facts)."""
    amount = format_number(credits)
    unit = "credit" if amount == "1" else "credits"
    if not math.isfinite(credits):
        return f"{amount} {unit}"
    # Cents as usual; more decimals only when a fraction of a cent was charged.
    places = max(2, len(amount.partition(".")[2]) + 2)
    return f"{amount} {unit} (${Decimal(amount) / 100:.{places}f})"


def age(now: datetime, when: datetime) -> str:
    """`12s ago`, `3m ago`, `2h ago`, `5d ago`, `2y ago`."""
    seconds = int((now - when).total_seconds())
    if seconds < 0:
        # The server's clock may run ahead of ours: say so rather than show nonsense.
        return "just now" if seconds > -60 else f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    for limit, size, unit in ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h"),
                              (365 * 86400, 86400, "d")):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // (365 * 86400)}y"


def created_text(r: Renderer, created_at: object, *, compact: bool = False) -> str:
    """An age on a terminal, the ISO time otherwise (as received, or compact for lists)."""
    if created_at is None:
        return MISSING if compact else EMPTY
    when = parse_time(created_at) if isinstance(created_at, str) else None
    if when is None:
        return sanitize(created_at, single_line=True)
    if r.stdout_tty:
        return age(r.now, when)
    if compact:
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return sanitize(created_at, single_line=True)


def percent(value: float) -> str:
    return f"{value * 100:.0f}%" if math.isfinite(value) else str(value)


def field_cell(r: Renderer, path: str, value: Any) -> Cell:
    """A value picked from a raw object, shown in one line."""
    if value is None:
        return (MISSING, "")
    if path == "status" or path.endswith(".status"):
        return status_cell(value)
    if path == "created_at" and isinstance(value, str):
        return (created_text(r, value, compact=True), "")
    if isinstance(value, bool):
        return ("true" if value else "false", "")
    if isinstance(value, int | float):
        return (format_number(value), "")
    if isinstance(value, str):
        return (sanitize(value, single_line=True), "")
    # Objects and arrays: compact JSON, cut by the column width.
    return (sanitize(safe_dumps(value), single_line=True), "")


def safe_dumps(value: Any) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def measure(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[int]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, width_of(text)) for w, (text, _) in zip(widths, row, strict=True)]
    return widths


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
