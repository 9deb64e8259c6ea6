"""User input and server values: ids, durations, days, RFC 3339 timestamps, elapsed times."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from retab_cli.errors import UsageError
from retab_cli.parsing import (
    Bound,
    choose,
    format_duration,
    parse_bound,
    parse_day,
    parse_duration,
    parse_time,
    validate_id,
    window_end,
    window_start,
)

# ---- validate_id ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a.b", "a b", "a%2F", "ü", "x" * 129,
                                 "prtn_1\n", "a\x00"])
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_id(bad)
    assert info.value.message.endswith(": ids are 1-128 characters of A-Z a-z 0-9 _ -")
    assert info.value.partition_id is None


def test_an_invalid_id_is_shown_readably() -> None:
    with pytest.raises(UsageError) as info:
        validate_id("a b")
    assert info.value.message.startswith("invalid partition id a b: ")
    with pytest.raises(UsageError) as info:
        validate_id("a\nb")
    assert info.value.message.startswith("invalid partition id 'a\\nb': ")
    with pytest.raises(UsageError) as info:
        validate_id("y" * 81 + "/")
    assert info.value.message.startswith(f"invalid partition id {'y' * 80!r}: ")
    with pytest.raises(UsageError) as info:
        validate_id("w" * 80 + "/")  # 81 characters: cut to 80
    assert info.value.message.startswith(f"invalid partition id {'w' * 80!r}: ")
    with pytest.raises(UsageError) as info:
        validate_id("z" * 79 + "/")
    assert info.value.message.startswith(f"invalid partition id {'z' * 79}/: ")


@pytest.mark.parametrize("good", ["prtn_01G34H8J2K", "x", "A-b_9", "x" * 128])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


# ---- parse_duration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("1.5s", 1.5),
        ("200ms", 0.2),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1m30s", 90.0),
        ("1h1m1s500ms", 3661.5),
        ("5M", 300.0),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["-5", "-5s", "-1h30m", "5x", "", "   ", "1h-5m", "nan", "NaN", "inf", "-inf", "s", "ms",
     "1.5.5s", "h1", "5 m", "1h 30m", "5m!", "1e400"],
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text, "--timeout")
    assert caught.value.message.startswith(f"invalid --timeout {text!r}: ")
    assert caught.value.exit_code == 2


def test_parse_duration_message_shows_examples() -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration("5x", "--interval")
    assert caught.value.message == "invalid --interval '5x': use e.g. 90, 1.5s, 200ms, 5m or 1h30m"


# ---- parse_day -----------------------------------------------------------------------

TODAY = date(2024, 3, 10)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2024-02-29", date(2024, 2, 29)),
        (" 2023-12-31 ", date(2023, 12, 31)),
        ("0d", TODAY),
        ("1d", date(2024, 3, 9)),
        ("10d", date(2024, 2, 29)),
        ("365d", date(2023, 3, 11)),
    ],
)
def test_parse_day_accepts(text: str, day: date) -> None:
    assert parse_day(text, "--since", today=TODAY) == day


@pytest.mark.parametrize(
    "text",
    ["2023-02-29", "2024-13-01", "2024-1-5", "20240105", "2024/01/05", "yesterday", "d", "-1d",
     "1w", "", "2024-01-05T00:00:00", "123456d"],
)
def test_parse_day_refuses(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_day(text, "--until", today=TODAY)
    assert caught.value.message == (
        f"invalid --until {text!r}: use YYYY-MM-DD (UTC) or Nd (N days ago)")


def test_parse_day_defaults_to_the_utc_today() -> None:
    assert parse_day("0d", "--since") == datetime.now(UTC).date()


# ---- parse_bound (--since / --until) -------------------------------------------------------

NOW = datetime(2024, 3, 10, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("2h", Bound(date(2024, 3, 9), datetime(2024, 3, 9, 23, 15, tzinfo=UTC))),
        ("30m", Bound(date(2024, 3, 10), datetime(2024, 3, 10, 0, 45, tzinfo=UTC))),
        ("1h30m", Bound(date(2024, 3, 9), datetime(2024, 3, 9, 23, 45, tzinfo=UTC))),
        ("90S", Bound(date(2024, 3, 10), datetime(2024, 3, 10, 1, 13, 30, tzinfo=UTC))),
        ("2024-03-01T09:30:00Z", Bound(date(2024, 3, 1), datetime(2024, 3, 1, 9, 30, tzinfo=UTC))),
        ("2024-03-01T01:30:00+02:00",
         Bound(date(2024, 2, 29), datetime(2024, 2, 29, 23, 30, tzinfo=UTC))),
        ("2024-03-01", Bound(date(2024, 3, 1))),
        ("1d", Bound(date(2024, 3, 9))),
    ],
)
def test_parse_bound_accepts_days_hours_minutes_and_rfc3339(text: str, bound: Bound) -> None:
    assert parse_bound(text, "--since", now=NOW) == bound


@pytest.mark.parametrize("text", ["2x", "-2h", "tomorrow", "2024-13-01", "2024-03-01T25:00:00Z",
                                  "2024-03-01T", "", "9999999999h", "1w"])
def test_parse_bound_refuses(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_bound(text, "--since", now=NOW)
    assert caught.value.message == (
        f"invalid --since {text!r}: use YYYY-MM-DD (a UTC day), Nd (N days ago), Nh or Nm "
        "(hours or minutes ago) or an RFC 3339 time such as 2026-11-01T09:30:00Z")


def test_a_day_bound_spans_the_whole_day() -> None:
    day = Bound(date(2024, 3, 1))
    assert window_start(day) == datetime(2024, 3, 1, tzinfo=UTC)
    assert window_end(day) == datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    exact = parse_bound("2h", "--until", now=NOW)
    assert window_start(exact) == window_end(exact) == exact.moment


# ---- choose (enumerated option values) -----------------------------------------------------

STATUSES = ("pending", "queued", "in_progress", "completed", "failed", "cancelled")


@pytest.mark.parametrize(("text", "expected"), [("ASC", "asc"), ("Desc", "desc"), (" asc ", "asc")])
def test_choose_ignores_letter_case(text: str, expected: str) -> None:
    assert choose(text, ("asc", "desc"), "--order") == expected


@pytest.mark.parametrize(("text", "hint"), [("complete", "did you mean 'completed'?"),
                                            ("canceled", "did you mean 'cancelled'?"),
                                            ("in-progress", "did you mean 'in_progress'?"),
                                            ("zzz", None)])
def test_choose_suggests_the_closest_value(text: str, hint: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        choose(text, STATUSES, "--status")
    assert caught.value.message == (f"invalid --status {text!r}: choose from pending, queued, "
                                    "in_progress, completed, failed, cancelled")
    assert caught.value.hint == hint


# ---- parse_time ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:30:45Z", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T12:30:45.123Z", datetime(2024, 5, 1, 12, 30, 45, 123000, tzinfo=UTC)),
        ("2024-05-01T12:30:45.123456789Z", datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)),
        ("2024-05-01T12:30:45.5+00:00", datetime(2024, 5, 1, 12, 30, 45, 500000, tzinfo=UTC)),
        ("2024-05-01T14:30:45+02:00", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T07:00:45-05:30", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01 12:30:45Z", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01t12:30:45z", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T12:30:45", datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)),
        ("2024-05-01T00:30:45+01:00", datetime(2024, 4, 30, 23, 30, 45, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_rfc3339_variants(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "2024-05-01", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
     "2024-05-01T25:00:00Z", "2024-05-01T12:30:45Q", "2024-05-01T12:30:45+2", None, 1714566645,
     ["2024-05-01T12:30:45Z"], "0000-01-01T00:00:00Z",
     "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"],
)
def test_parse_time_gives_none_and_never_raises(value: object) -> None:
    assert parse_time(value) is None


def test_the_default_option_name_in_duration_errors() -> None:
    with pytest.raises(UsageError) as info:
        parse_duration("soon")
    assert info.value.message == "invalid duration 'soon': use e.g. 90, 1.5s, 200ms, 5m or 1h30m"


# ---- format_duration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (12.9, "12s"), (59, "59s"), (60, "1m00s"), (185, "3m05s"), (3599, "59m59s"),
     (3600, "1h00m"), (3720, "1h02m"), (7199, "1h59m"), (90061, "25h01m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1e3", "1_000", "٣", "5m5x"])
def test_durations_are_plain_digits(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)
