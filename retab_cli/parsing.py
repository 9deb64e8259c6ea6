"""Parsing of user input and server values: ids, durations, dates, RFC 3339 (no heavy imports)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from retab_cli.errors import UsageError

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def validate_id(value: str) -> str:
    """Refuse ids that could change the URL they are put in (DESIGN §5): `fullmatch`,
    not `match` with `$` (which passes a trailing newline), and no `\\w` (Unicode)."""
    if not _ID.fullmatch(value):
        shown = value if value.isprintable() and len(value) <= 80 else repr(value[:80])
        raise UsageError(
            f"invalid partition id {shown}: ids are 1-128 characters of A-Z a-z 0-9 _ -",
            partition_id=None,
        )
    return value


def parse_duration(text: str, option: str = "duration") -> float:
    """`90`, `1.5s`, `200ms`, `90s`, `5m`, `1h30m` → seconds. Negatives, unknown units
    and empty strings are usage errors."""
    value = text.strip().lower()
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value):
        return float(value)
    parts = list(_DURATION_PART.finditer(value))
    if not value or not parts or "".join(p.group(0) for p in parts) != value:
        raise UsageError(
            f"invalid {option} {text!r}: use e.g. 90, 1.5s, 200ms, 5m or 1h30m"
        )
    return sum(float(p.group(1)) * _UNITS[p.group(2)] for p in parts)


def parse_day(text: str, option: str, today: date | None = None) -> date:
    """`YYYY-MM-DD` (UTC) or `Nd` (N days ago)."""
    value = text.strip()
    today = today or datetime.now(UTC).date()
    days = re.fullmatch(r"(\d{1,5})d", value)
    if days:
        return today - timedelta(days=int(days.group(1)))
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"invalid {option} {text!r}: use YYYY-MM-DD (UTC) or Nd "
                         "(N days ago)") from None


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?"
)


def parse_time(value: object) -> datetime | None:
    """Parse any RFC 3339 variant (Z or offset, any fraction length, 'T' or space).

    A missing offset is read as UTC; anything unparseable gives None, never an error:
    a display must not die on a date.
    """
    if not isinstance(value, str) or not value:
        return None
    m = _RFC3339.fullmatch(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    try:
        when = datetime(year, month, day, hour, minute, min(second, 59), micro, tzinfo=UTC)
    except ValueError:
        return None
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        try:
            when = when - offset if m.group(9) == "+" else when + offset
        except OverflowError:  # year 1 or 9999 shifted out of range
            return None
    return when


def format_duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m: short elapsed times for progress lines."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
