"""Parsing of user input and server values: ids, durations, dates, RFC 3339 (no heavy imports)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from retab_cli.errors import UsageError

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def validate_id(value: str) -> str:
    """Refuse ids that could change the URL they are put in (docs/design.md §5): `fullmatch`,
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


@dataclass(frozen=True)
class Bound:
    """One end of a --since/--until window.

    `day` is what the API's day filter gets (from_date/to_date, UTC); `moment`, when the
    user gave a time rather than a day, is the exact bound the tool applies to each run's
    created_at (the day filter only narrows the query).
    """

    day: date
    moment: datetime | None = None


_AGO = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h)(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))*")


def parse_bound(text: str, option: str, now: datetime | None = None) -> Bound:
    """--since/--until: `YYYY-MM-DD` or `Nd` (a UTC day), `2h`/`30m`/`1h30m` (that long
    ago), or an RFC 3339 time (`2026-11-01T09:30:00Z`, any offset)."""
    value = text.strip().lower()
    now = now or datetime.now(UTC)
    if _AGO.fullmatch(value):
        try:
            moment = now - timedelta(seconds=parse_duration(value, option))
        except OverflowError:  # further back than year 1
            raise _bad_bound(text, option) from None
        return Bound(moment.date(), moment)
    if "t" in value or " " in value:
        when = parse_time(value)
        if when is None:
            raise _bad_bound(text, option)
        return Bound(when.date(), when)
    try:
        return Bound(parse_day(text, option, today=now.date()))
    except UsageError:
        raise _bad_bound(text, option) from None


def _bad_bound(text: str, option: str) -> UsageError:
    return UsageError(f"invalid {option} {text!r}: use YYYY-MM-DD (a UTC day), Nd (N days ago), "
                      "Nh or Nm (hours or minutes ago) or an RFC 3339 time such as "
                      "2026-11-01T09:30:00Z")


def window_start(bound: Bound) -> datetime:
    """The first instant a --since bound admits."""
    return bound.moment or datetime.combine(bound.day, time.min, UTC)


def window_end(bound: Bound) -> datetime:
    """The last instant an --until bound admits (a day is included whole)."""
    return bound.moment or datetime.combine(bound.day, time.max, UTC)


# `create --upload` (and batch): kept here, not in documents, so the command line knows the
# values without importing the document engine at start-up.
UPLOAD_MODES = ("auto", "always", "never")


def choose(value: str, choices: Sequence[str], option: str) -> str:
    """`value` as one of `choices`, in any letter case; otherwise a usage error listing them,
    with the closest one as a hint (`--status complete`: did you mean 'completed'?)."""
    by_lower = {choice.lower(): choice for choice in choices}
    wanted = value.strip().lower()
    if wanted in by_lower:
        return by_lower[wanted]
    import difflib  # the error path only

    close = difflib.get_close_matches(wanted, list(by_lower), n=1, cutoff=0.6)
    hint = f"did you mean {by_lower[close[0]]!r}?" if close else None
    raise UsageError(f"invalid {option} {value!r}: choose from {', '.join(choices)}", hint=hint)


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
