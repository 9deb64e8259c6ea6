"""Property tests (hypothesis) over the functions that handle outside text and bytes.

The sanitiser, the key masker, the id rule, the Retry-After parser and the response
decoder: random text, bytes, JSON and headers never raise anything but the documented
error, never leave a raw control character, never show the key. Seeded
(`derandomize=True`), bounded, no database: the same examples on every run.
`RETAB_PROPERTY_EXAMPLES=5000 pytest tests/test_properties.py` for a longer run.

A property that today's code breaks is marked `xfail(strict=True)` with the finding
it reproduces (`issue 8 #N`, or `new` for one found here), and carries an `@example`
so the failure is certain: the fix flips it to a pass, which strict xfail reports.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import math
import os
import string
import sys
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

# ---- the product functions under test, in one place (update here when they move) ----
from retab_cli.budget import Budget
from retab_cli.client import (
    Client,
    decode_json,
    error_message,
    mask_key,
    parse_retry_after,
    validate_id,
)
from retab_cli.errors import RetabError, UsageError, hint_for
from retab_cli.render import Renderer, sanitize

# Loopback: the client then reads no proxy settings and loads no CA bundle.
BASE_URL = "http://127.0.0.1:9"


def mask_text(key: str, text: str) -> str:
    """What the client shows of `text` once the key is masked."""
    return Client(BASE_URL, key).mask(text)


DECODE_ERRORS = (ValueError, RecursionError)  # what decode_json's callers catch
# ---------------------------------------------------------------------------------------

EXAMPLES = int(os.environ.get("RETAB_PROPERTY_EXAMPLES", "100"))
SEEDED = settings(derandomize=True, database=None, deadline=None, max_examples=EXAMPLES)
FEW = settings(SEEDED, max_examples=max(10, EXAMPLES // 3))  # examples that run a client

# ---- reference sets, written from the Unicode definitions, not from the product ---------

_EXPLICIT_BIDI = {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x10000) if unicodedata.bidirectional(chr(c)) in _EXPLICIT_BIDI]
    + ["\u061c", "\u200e", "\u200f"]  # ALM, LRM, RLM: marks, classed AL/L/R
)
C0 = frozenset(chr(c) for c in range(0x20)) - {"\t", "\n"}
C1 = frozenset(chr(c) for c in range(0x80, 0xA0))
UNSAFE = C0 | C1 | {"\x7f"} | BIDI_CONTROLS
LINE_BREAKS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
UNSAFE_ON_ONE_LINE = UNSAFE | LINE_BREAKS

NASTY = [*sorted(UNSAFE | LINE_BREAKS), "\\", "\\x1b", "\r\n", "\x1b]52;c;aGk=\x07",
         "\x1b[2J", "::error::x", "%0A", "\ufeff", "\u200b"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]

# Text a hostile server or file name could hold: mostly the dangerous characters.
hostile_text = st.lists(
    st.one_of(st.sampled_from(NASTY), st.characters(), st.text(max_size=4)), max_size=24
).map("".join)
hostile_text_with_surrogates = st.lists(
    st.one_of(st.sampled_from(NASTY + SURROGATES), st.characters()), max_size=24
).map("".join)


def unsafe_in(text: str, unsafe: frozenset[str]) -> list[str]:
    return [ch for ch in text if ch in unsafe]


# ---- the sanitiser ----------------------------------------------------------------------


@SEEDED
@given(hostile_text)
def test_sanitize_leaves_no_raw_control_del_c1_or_bidi(text: str) -> None:
    assert unsafe_in(sanitize(text), UNSAFE) == []


@SEEDED
@given(hostile_text)
def test_sanitize_single_line_is_one_line_with_no_unsafe_character(text: str) -> None:
    shown = sanitize(text, single_line=True)
    assert unsafe_in(shown, UNSAFE_ON_ONE_LINE) == []
    assert len(shown.splitlines()) <= 1


@SEEDED
@given(hostile_text, st.booleans())
def test_sanitize_is_idempotent(text: str, single_line: bool) -> None:
    once = sanitize(text, single_line=single_line)
    assert sanitize(once, single_line=single_line) == once


@SEEDED
@given(st.text(st.characters(exclude_characters=UNSAFE_ON_ONE_LINE)), st.booleans())
def test_sanitize_keeps_safe_text_as_it_is(text: str, single_line: bool) -> None:
    assert sanitize(text, single_line=single_line) == text


@SEEDED
@given(hostile_text)
def test_sanitize_keeps_newlines_and_tabs_outside_one_line_contexts(text: str) -> None:
    # docs/output-contract.md "Sanitising": only one-line contexts escape line breaks.
    shown = sanitize(text)
    assert shown.count("\n") == text.count("\n")
    assert shown.count("\t") == text.count("\t")


@SEEDED
@given(hostile_text_with_surrogates)
@example("a\ud800b")
def test_sanitize_output_always_encodes_as_utf8(text: str) -> None:
    for single_line in (False, True):
        sanitize(text, single_line=single_line).encode("utf-8")


@contextmanager
def captured_stderr() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    saved = sys.stderr
    sys.stderr = buffer
    try:
        yield buffer
    finally:
        sys.stderr = saved


@SEEDED
@given(hostile_text, st.sampled_from(["notice", "warn", "info"]))
@example("scan\n::add-mask::x\n::error file=a::b", "notice")
def test_each_stderr_notice_of_outside_text_is_one_line(text: str, kind: str) -> None:
    renderer = Renderer("json")
    with captured_stderr() as err:
        getattr(renderer, kind)(f"retrying GET /v1/partitions/x in 1.0s: {text}")
    written = err.getvalue()
    assert written.endswith("\n")
    assert len(written.splitlines()) == 1
    assert unsafe_in(written[:-1], UNSAFE_ON_ONE_LINE) == []


optional_text = st.none() | hostile_text


@SEEDED
@given(hostile_text, optional_text, optional_text, optional_text, st.booleans())
def test_error_lines_are_single_lines_and_the_json_object_parses(
    message: str, request_id: str | None, partition_id: str | None, file: str | None,
    explicit_json: bool,
) -> None:
    error = RetabError(message or "x", request_id=request_id, partition_id=partition_id,
                       file=file)
    renderer = Renderer("json", explicit_json=explicit_json)
    with captured_stderr() as err:
        renderer.error(error)
    lines = err.getvalue().split("\n")
    assert lines.pop() == ""  # every line ends with a newline
    assert lines[0].startswith("error: ")
    assert sanitize(error.message, single_line=True) in lines[0]
    for line in lines:
        assert unsafe_in(line, UNSAFE_ON_ONE_LINE) == [], line
    if explicit_json:
        assert json.loads(lines.pop())["error"]["message"] == error.message
    assert len(lines) == 1 + (hint_for(error) is not None)  # the error line, the hint


# ---- the key masker ---------------------------------------------------------------------

KEY_ALPHABET = string.ascii_letters + string.digits + "_-"
keys = st.text(KEY_ALPHABET, min_size=1, max_size=48)
filler = st.text(st.characters(exclude_characters="*."), max_size=12)


@SEEDED
@given(keys)
def test_mask_key_never_contains_the_key(key: str) -> None:
    shown = mask_key(key)
    assert key not in shown
    assert len(shown) <= 10


@SEEDED
@given(keys, st.lists(filler, min_size=1, max_size=5), st.integers(1, 4))
def test_mask_hides_every_separate_copy_of_the_key(key: str, parts: list[str],
                                                   copies: int) -> None:
    # Copies of the key separated by text that cannot complete one.
    separator = " "
    pieces = [parts[i % len(parts)] for i in range(copies + 1)]
    text = separator.join(p + separator + key for p in pieces[:-1]) + separator + pieces[-1]
    assert key not in mask_text(key, text)


@SEEDED
@given(keys, st.integers(1, 11), st.integers(2, 4), filler, filler)
@example("k1234567890k", 1, 2, "", "")
def test_mask_hides_overlapping_copies_of_the_key(key: str, overlap: int, copies: int,
                                                  before: str, after: str) -> None:
    # A server echo that repeats the key with shared characters, when the key allows.
    overlap = min(overlap, len(key) - 1)
    text = key
    for _ in range(copies - 1):
        if overlap and key[:overlap] == key[-overlap:]:
            text += key[overlap:]
        else:
            text += key
    assert key not in mask_text(key, before + text + after)


@SEEDED
@given(keys, hostile_text)
def test_mask_of_text_without_the_key_changes_nothing(key: str, text: str) -> None:
    if key not in text:
        assert mask_text(key, text) == text


# ---- the key in errors built from a server's answer ---------------------------------------


def answer_once(status: int, body: bytes, headers: dict[str, str], key: str) -> Any:
    """One GET answered by a mock server; the data, or the RetabError it raised."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    async def go() -> Any:
        async with Client(BASE_URL, key, budget=Budget(0), max_attempts=1,
                          transport=httpx.MockTransport(handler)) as client:
            try:
                return (await client.get("prtn_1")).data
            except RetabError as exc:
                return exc

    return asyncio.run(go())


def shown_error(error: RetabError) -> str:
    renderer = Renderer("json", explicit_json=True)
    with captured_stderr() as err:
        renderer.error(error)
    return err.getvalue()


error_statuses = st.sampled_from([400, 401, 403, 404, 409, 413, 422, 429, 500, 503])
long_keys = st.text(KEY_ALPHABET, min_size=12, max_size=40)


@FEW
@given(long_keys, error_statuses, st.sampled_from(["detail", "message", "error"]), filler)
def test_a_key_echoed_in_an_error_body_is_never_shown(key: str, status: int, field: str,
                                                      noise: str) -> None:
    body = json.dumps({field: f"bad key {key} {noise}"}).encode()
    error = answer_once(status, body, {"content-type": "application/json"}, key)
    assert isinstance(error, RetabError)
    assert key not in shown_error(error)


@FEW
@given(long_keys, error_statuses, st.sampled_from(["{}", "req_{}", "{} {}"]))
@example("rt_live_0123456789abcdef", 404, "req_{}")
def test_a_key_echoed_in_a_response_header_is_never_shown(key: str, status: int,
                                                          shape: str) -> None:
    headers = {"x-request-id": shape.replace("{}", key)}
    error = answer_once(status, b'{"detail": "nope"}', headers, key)
    assert isinstance(error, RetabError)
    assert key not in shown_error(error)


# ---- the id rule ------------------------------------------------------------------------

ID_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
UNICODE_LOOKALIKES = ["٣", "５", "ｅ", "é", "ß", "\u0130", "\u212a", "𝟘", "¹", "\n", "\r",
                      "\x00", " ", "/", "..", "%2F", "\u202e", "\t", "\ufeff"]


def reference_id_rule(value: str) -> bool:
    return 1 <= len(value) <= 128 and all(ch in ID_CHARS for ch in value)


candidate_ids = st.one_of(
    st.text(string.ascii_letters + string.digits + "_-", max_size=140),
    st.lists(st.one_of(st.sampled_from(sorted(ID_CHARS)), st.sampled_from(UNICODE_LOOKALIKES),
                       st.characters()), max_size=130).map("".join),
    st.text(KEY_ALPHABET, min_size=1, max_size=128).map(lambda s: s + "\n"),
)


@SEEDED
@given(candidate_ids)
@example("prtn_1\n")
@example("a" * 128)
@example("a" * 129)
@example("٣")
def test_validate_id_accepts_exactly_the_id_rule(value: str) -> None:
    if reference_id_rule(value):
        assert validate_id(value) == value
        return
    with pytest.raises(UsageError) as refused:
        validate_id(value)
    assert unsafe_in(refused.value.message, UNSAFE_ON_ONE_LINE) == []


# ---- the Retry-After parser -------------------------------------------------------------

header_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e400", "-0", "0x10", "1_0", "٣",
                     " 5 ", "", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 -0000",
                     "Thu, 01 Jan 1970 00:00:00 +2359", "Sun, 06 Nov 1994 08:49:37 GMT"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-10**30, 10**30).map(str),
)
retry_headers = st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms"]),
                                header_text, max_size=2)
NOW = 1_800_000_000.0


@SEEDED
@given(retry_headers)
def test_parse_retry_after_never_raises_and_never_goes_negative(headers: dict[str, str]) -> None:
    wait = parse_retry_after(headers, now=NOW)
    assert wait is None or (isinstance(wait, float) and wait >= 0 and not math.isnan(wait))


@SEEDED
@given(st.integers(0, 10**6))
def test_retry_after_seconds_are_taken_as_given(seconds: int) -> None:
    assert parse_retry_after({"retry-after": str(seconds)}, now=NOW) == seconds


@SEEDED
@given(st.integers(0, 10**8), st.integers(0, 10**6))
def test_retry_after_ms_wins_over_seconds(ms: int, seconds: int) -> None:
    headers = {"retry-after-ms": str(ms), "retry-after": str(seconds)}
    assert parse_retry_after(headers, now=NOW) == pytest.approx(ms / 1000)


@SEEDED
@given(st.one_of(st.integers(-10**9, -1), st.floats(max_value=-1e-9, allow_infinity=True)))
def test_a_negative_retry_after_means_no_wait(value: float) -> None:
    for name in ("retry-after", "retry-after-ms"):
        assert parse_retry_after({name: str(value)}, now=NOW) in (None, 0.0)


@SEEDED
@given(st.integers(-10**7, 10**7))
def test_retry_after_http_date_is_the_time_until_it(delta: int) -> None:
    date = email.utils.formatdate(NOW + delta, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=NOW) == max(0, delta)


# ---- the response decoder -----------------------------------------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=30,
)
# Number tokens no strict decoder should let through as floats it cannot print back.
HOSTILE_NUMBERS = ["1e400", "-1e400", "1E999", "123456789e999", "9" * 400 + ".0", "NaN",
                   "Infinity", "-Infinity", "1" * 5000, "0.1e-99999", "-0.0e99999", "1e308"]
PLACE = "@@number@@"  # longer than any generated text, so it occurs only where put


def with_number(value: Any, number: str, where: str) -> bytes:
    """JSON text holding `value` and one raw number token, at the top or deep inside."""
    shapes: dict[str, Any] = {
        "top": PLACE,
        "field": {"id": "prtn_1", "usage": {"credits": PLACE}},
        "nested": {"v": value, "detail": [{"loc": ["body", PLACE], "msg": "x"}]},
        "list": [value, PLACE],
    }
    return json.dumps(shapes[where]).replace(f'"{PLACE}"', number).encode()


number_places = st.sampled_from(["top", "field", "nested", "list"])


def floats_in(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from floats_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from floats_in(item)


def decode_or_error(body: bytes) -> Any:
    try:
        return decode_json(body)
    except DECODE_ERRORS as exc:
        return exc


@SEEDED
@given(st.binary(max_size=64))
def test_decode_json_of_random_bytes_raises_only_the_documented_errors(body: bytes) -> None:
    decode_or_error(body)


@SEEDED
@given(json_values)
def test_decode_json_round_trips_standard_json(value: Any) -> None:
    assert decode_json(json.dumps(value).encode()) == value


@SEEDED
@given(st.sampled_from(["[", "{\"a\":"]), st.integers(1, 200_000))
@example("[", 100_000)
def test_decode_json_of_deep_nesting_raises_only_the_documented_errors(opener: str,
                                                                       depth: int) -> None:
    closer = {"[": "]", "{\"a\":": "}"}[opener]
    decode_or_error((opener * depth + "1" + closer * depth).encode())


@SEEDED
@given(json_values, st.sampled_from(HOSTILE_NUMBERS), number_places)
@example(None, "1e400", "field")
def test_decode_json_never_returns_a_non_finite_float(value: Any, number: str,
                                                      where: str) -> None:
    decoded = decode_or_error(with_number(value, number, where))
    if not isinstance(decoded, Exception):
        assert all(math.isfinite(f) for f in floats_in(decoded))


error_items = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"loc": json_values, "msg": json_values,
                                        "type": json_values}),
)
error_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"detail": st.one_of(json_values, st.lists(error_items, max_size=5),
                                               st.dictionaries(st.sampled_from(
                                                   ["message", "code"]), json_values))}),
    st.fixed_dictionaries({}, optional={"message": json_values, "error": json_values}),
)


@SEEDED
@given(error_bodies, st.integers(100, 599), st.text(max_size=12))
@example({"detail": [{"loc": 1, "msg": "x"}]}, 422, "Unprocessable Entity")
def test_error_message_of_any_decoded_body_never_raises(payload: Any, status: int,
                                                        reason: str) -> None:
    # What the client can meet: the body as decode_json hands it over.
    decoded = decode_json(json.dumps(payload).encode())
    message = error_message(decoded, status, reason)
    assert isinstance(message, str)


@SEEDED
@given(st.lists(st.one_of(json_values, st.fixed_dictionaries(
    {"loc": st.lists(st.sampled_from(["body", "", 0]), max_size=2),
     "msg": st.sampled_from(["", "x"])})), min_size=1, max_size=4), st.integers(400, 499))
@example([5], 422)
@example([{"msg": ""}], 422)
def test_error_message_of_a_validation_list_is_never_empty(items: list[Any],
                                                           status: int) -> None:
    message = error_message({"detail": items}, status, "Unprocessable Entity")
    assert message.strip()


@SEEDED
@given(st.lists(st.fixed_dictionaries({
    "loc": st.lists(st.one_of(st.text(max_size=6), st.integers(-99, 99)), max_size=3),
    "msg": st.text(max_size=10)}), min_size=1, max_size=6))
def test_error_message_of_validation_errors_shows_the_first_three(items: list[Any]) -> None:
    message = error_message({"detail": items}, 422, "Unprocessable Entity")
    for item in items[:3]:
        assert item["msg"] in message
    assert message.endswith(f" (+{len(items) - 3} more)") == (len(items) > 3)


# ---- the whole client over random answers -------------------------------------------------

success_statuses = st.sampled_from([200, 201])
response_headers = st.dictionaries(
    st.sampled_from(["x-request-id", "retry-after", "retry-after-ms", "content-type",
                     "location", "content-encoding"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30), max_size=4)
plain_bodies = st.one_of(st.binary(max_size=48), json_values.map(lambda v: json.dumps(v).encode()))


def assert_clean_outcome(result: Any) -> None:
    """Data with only finite numbers, or a RetabError whose lines are safe single lines."""
    if isinstance(result, RetabError):
        for line in shown_error(result).split("\n")[:-1]:
            assert unsafe_in(line, UNSAFE_ON_ONE_LINE) == [], line
        return
    assert all(math.isfinite(f) for f in floats_in(result))


@FEW
@given(st.sampled_from([200, 201, 204, 400, 404, 418, 429, 500, 503]), plain_bodies,
       response_headers)
def test_the_client_turns_random_answers_into_data_or_a_clean_error(
    status: int, body: bytes, headers: dict[str, str],
) -> None:
    headers.pop("content-encoding", None)  # corrupt encodings: the xfail below
    assert_clean_outcome(answer_once(status, body, headers, "rt_live_0123456789abcdef"))


@FEW
@given(success_statuses, json_values, st.sampled_from(HOSTILE_NUMBERS), number_places)
@example(200, None, "1e400", "field")
def test_a_success_body_with_a_huge_number_is_a_bad_response(
    status: int, value: Any, number: str, where: str,
) -> None:
    assert_clean_outcome(answer_once(status, with_number(value, number, where), {},
                                     "rt_live_0123456789abcdef"))


@FEW
@given(error_statuses, error_bodies, response_headers)
@example(422, {"detail": [{"loc": 1}]}, {})
def test_any_error_body_becomes_a_clean_error(status: int, payload: Any,
                                              headers: dict[str, str]) -> None:
    headers.pop("content-encoding", None)
    body = json.dumps(payload).encode()
    assert_clean_outcome(answer_once(status, body, headers, "rt_live_0123456789abcdef"))


@FEW
@given(st.sampled_from([301, 302, 303, 307, 308]),
       st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12))
@example(301, "A:0")
def test_a_redirect_to_any_location_is_a_clean_error(status: int, location: str) -> None:
    result = answer_once(status, b"", {"location": location}, "rt_live_0123456789abcdef")
    assert isinstance(result, RetabError)
    assert_clean_outcome(result)


@FEW
@given(st.sampled_from([200, 404, 503]), st.sampled_from(["gzip", "deflate", "br"]),
       st.binary(min_size=1, max_size=32))
@example(200, "gzip", b"not gzip")
def test_a_corrupt_content_encoding_is_a_clean_error(status: int, encoding: str,
                                                     body: bytes) -> None:
    result = answer_once(status, body, {"content-encoding": encoding}, "rt_live_0123456789abcdef")
    assert_clean_outcome(result)
