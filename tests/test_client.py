"""The HTTP layer on its own, against httpx.MockTransport on virtual time
(tests/virtual_time.py): the exact requests, when each was sent, retries and errors.

Nothing here sleeps for real: the client gets the loop's fake clock and a sleep that
records each wait, and a server that never answers costs no time either.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import json
import math
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from virtual_time import now
from virtual_time import run as run_virtual

from retab_cli import client as client_mod
from retab_cli.budget import Budget
from retab_cli.client import (
    MAX_BODY,
    USER_AGENT,
    ApiResult,
    Client,
    backoff,
    decode_json,
    mask_key,
    parse_retry_after,
)
from retab_cli.errors import (
    AuthError,
    BadResponseError,
    ConflictError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    RetabError,
    ServerError,
    UsageError,
)

KEY = "rt_test_abcdefghijklmnop"
MASKED = "rt_...mnop"
BASE = "https://api.example.test"
WALL = 1_700_000_000.0  # the fake time of day, for Retry-After dates
PARTITION = {"id": "prtn_1", "file": {"id": "file_1", "filename": "a.pdf", "mime_type": "application/pdf"},
             "model": "retab-small", "key": "k", "status": "completed", "output": [],
             "usage": {"credits": 3}}
BODY = {"document": {"filename": "façade.pdf", "url": "data:application/pdf;base64,JVBERi0="},
        "key": "k", "instructions": "i"}


class Hang:
    """A server that accepted the request and never answers."""


HANG = Hang()
Step = httpx.Response | Exception | Hang | Callable[[httpx.Request], httpx.Response]


@dataclass
class Sent:
    at: float
    request: httpx.Request


@dataclass
class Trace:
    sent: list[Sent] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)
    budget: Budget | None = None
    ended: float = 0.0

    @property
    def requests(self) -> list[httpx.Request]:
        return [s.request for s in self.sent]

    @property
    def times(self) -> list[float]:
        return [s.at for s in self.sent]


Call = Callable[[Client], Coroutine[Any, Any, Any]]


def exchange(script: list[Step], call: Call, *, rate: float = 0, base_url: str = BASE,
             **kwargs: Any) -> tuple[Any, Trace]:
    """Run one client call against scripted steps, one per request (a request beyond
    the script fails the test); return what the call returned or raised, and the trace."""
    trace = Trace()
    steps = list(script)

    async def respond(request: httpx.Request) -> httpx.Response:
        trace.sent.append(Sent(now(), request))
        assert steps, f"unexpected request #{len(trace.sent)}: {request.method} {request.url}"
        step = steps.pop(0)
        if isinstance(step, Hang):
            await asyncio.Event().wait()
            raise AssertionError("a hung request ends only by a timeout")
        if isinstance(step, Exception):
            raise step
        if not callable(step):
            return step
        answer = step(request)
        return await answer if inspect.isawaitable(answer) else answer

    async def sleep(seconds: float) -> None:
        trace.slept.append(seconds)
        await asyncio.sleep(seconds)

    async def main() -> Any:
        clock = asyncio.get_running_loop().time
        trace.budget = kwargs.pop("budget", None) or Budget(rate, clock=clock, sleep=sleep)
        async with Client(base_url, KEY, budget=trace.budget, notice=trace.notices.append,
                          transport=httpx.MockTransport(respond), clock=clock, sleep=sleep,
                          wall=lambda: WALL, **kwargs) as c:
            try:
                return await call(c)
            except RetabError as exc:
                return exc
            finally:
                trace.ended = now()

    return run_virtual(main), trace


def fails(script: list[Step], call: Call, error: type[RetabError] = RetabError,
          **kwargs: Any) -> tuple[Any, Trace]:
    result, trace = exchange(script, call, **kwargs)
    assert isinstance(result, error), result
    return result, trace


def ok(body: Any, status: int = 200, /, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"x-request-id": "req_ok", **headers})


def raw(status: int, content: bytes | AsyncIterator[bytes] = b"", /, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=content, headers=headers)


def get(c: Client) -> Coroutine[Any, Any, ApiResult]:
    return c.get("prtn_1")


def create(c: Client) -> Coroutine[Any, Any, ApiResult]:
    return c.create(BODY, idempotency_key="idem-1")


# ---- what is sent --------------------------------------------------------------------


def test_get_sends_both_auth_headers_user_agent_and_query() -> None:
    result, trace = exchange([ok(PARTITION)], lambda c: c.get("prtn_1", include_output=False))
    assert result.data == PARTITION
    assert (result.status, result.request_id, result.replayed) == (200, "req_ok", False)
    (request,) = trace.requests
    assert request.method == "GET"
    assert str(request.url) == f"{BASE}/v1/partitions/prtn_1?include_output=false"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["api-key"] == KEY
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["accept"] == "application/json"
    assert "content-type" not in request.headers  # no body, no type
    assert request.content == b""


def test_user_agent_names_the_tool_python_and_platform() -> None:
    import platform
    import sys

    from retab_cli import __version__

    expected = f"retab-cli/{__version__} (python {platform.python_version()}; {sys.platform})"
    assert expected == USER_AGENT


def test_get_includes_output_by_default() -> None:
    _, trace = exchange([ok(PARTITION)], get)
    assert str(trace.requests[0].url) == f"{BASE}/v1/partitions/prtn_1?include_output=true"


def test_numbers_pass_through_exactly() -> None:
    body = {**PARTITION, "usage": {"credits": 3}, "unknown_field": {"x": [1, 2.5]}, "big": 10**30}
    result, _ = exchange([ok(body)], get)
    assert result.data == body
    assert isinstance(result.data["usage"]["credits"], int)


def test_create_sends_compact_json_with_its_idempotency_key() -> None:
    result, trace = exchange([ok(PARTITION, 201, **{"idempotent-replayed": "true"})], create)
    assert (result.status, result.replayed) == (201, True)
    (request,) = trace.requests
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/v1/partitions")
    assert request.headers["idempotency-key"] == "idem-1"
    assert request.headers["content-type"] == "application/json"
    assert request.content == json.dumps(BODY, separators=(",", ":")).encode()
    assert b'"filename":"fa\\u00e7ade.pdf"' in request.content  # ASCII on the wire


@pytest.mark.parametrize(("header", "replayed"), [("TRUE", True), ("false", False), ("yes", False)])
def test_the_replayed_header(header: str, replayed: bool) -> None:
    result, _ = exchange([ok(PARTITION, **{"idempotent-replayed": header})], create)
    assert result.replayed is replayed


def test_cancel_and_delete_paths() -> None:
    result, trace = exchange([ok(PARTITION)], lambda c: c.cancel("prtn_1"))
    assert result.data == PARTITION
    assert (trace.requests[0].method, str(trace.requests[0].url)) == \
        ("POST", f"{BASE}/v1/partitions/prtn_1/cancel")
    result, trace = exchange([raw(204)], lambda c: c.delete("prtn_1"))
    assert (result.data, result.status, result.extra) == (None, 204, {})
    assert (trace.requests[0].method, str(trace.requests[0].url)) == \
        ("DELETE", f"{BASE}/v1/partitions/prtn_1")


def test_a_body_that_is_not_json_is_refused_before_sending() -> None:
    caught, trace = fails([], lambda c: c.create({"n": math.nan}, idempotency_key="k"), UsageError)
    assert caught.message == "cannot send the request: Out of range float values are not JSON compliant"
    assert trace.sent == []


def test_every_attempt_waits_for_the_budget() -> None:
    _, trace = exchange([raw(503), raw(503), ok(PARTITION)], get, rate=1.0)
    assert trace.budget is not None and trace.budget.sent == 3


def test_at_most_16_requests_are_in_flight() -> None:
    counts = {"now": 0, "max": 0}

    async def slow(request: httpx.Request) -> httpx.Response:
        counts["now"] += 1
        counts["max"] = max(counts["max"], counts["now"])
        await asyncio.sleep(1.0)
        counts["now"] -= 1
        return ok(PARTITION)

    async def main() -> float:
        clock = asyncio.get_running_loop().time
        async with Client(BASE, KEY, budget=Budget(0, clock=clock), clock=clock,
                          transport=httpx.MockTransport(slow)) as c:
            await asyncio.gather(*(c.get(f"prtn_{i}") for i in range(20)))
        return now()

    assert run_virtual(main) == pytest.approx(2.0)
    assert counts["max"] == 16


def test_the_http_client_settings() -> None:
    async def main() -> None:
        async with Client(BASE, KEY) as remote, Client("http://127.0.0.1:9", KEY) as local, \
                Client(BASE, KEY, request_timeout=5.0) as short:
            assert remote._http.trust_env and not local._http.trust_env  # loopback: no proxy
            assert remote._http.follow_redirects is False
            assert remote._http.timeout == httpx.Timeout(30.0, connect=10.0)
            assert short._http.timeout == httpx.Timeout(5.0, connect=5.0)
            assert (remote.budget.rate, remote.budget.burst, remote.max_attempts) == (5.0, 2.0, 5)

    asyncio.run(main())


def test_client_repr_hides_the_key() -> None:
    async def main() -> str:
        async with Client(BASE, KEY) as c:
            return repr(c)

    assert run_virtual(main) == f"Client(base_url='{BASE}', api_key='{MASKED}')"


@pytest.mark.parametrize("key", ["rt_abc\u201d", "rt_é", "rt\nx", "rt x", ""])
def test_a_key_that_cannot_go_in_a_header_is_refused_without_showing_it(key: str) -> None:
    with pytest.raises(UsageError) as info:
        Client(BASE, key)
    assert info.value.message == ("the API key has characters that cannot be sent in a header "
                                  "(spaces, control or non-ASCII characters); it is not shown")


@pytest.mark.parametrize(("key", "masked"), [("abcdefghijkl", "abc...ijkl"), ("abcdefghijk", "****")])
def test_mask_key_shows_only_the_ends_of_long_keys(key: str, masked: str) -> None:
    assert mask_key(key) == masked


# ---- retries -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    result, trace = exchange([raw(status), ok(PARTITION)], get)
    assert result.data == PARTITION
    assert len(trace.sent) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 418, 422, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    error, trace = fails([raw(status)], get)
    assert error.status == status
    assert len(trace.sent) == 1 and trace.notices == []
    assert "gave up" not in error.message


def test_retries_back_off_and_say_so_once_each() -> None:
    script: list[Step] = [raw(503, b"busy"), raw(502, b"<html>bad</html>"), ok(PARTITION)]
    result, trace = exchange(script, get)
    assert result.data["id"] == "prtn_1"
    assert len(trace.sent) == 3
    assert 0.25 <= trace.slept[0] <= 0.5 and 0.5 <= trace.slept[1] <= 1.0
    assert trace.notices == [
        f"retrying GET /v1/partitions/prtn_1 in {trace.slept[0]:.1f}s (attempt 2/5): "
        "HTTP 503 Service Unavailable",
        f"retrying GET /v1/partitions/prtn_1 in {trace.slept[1]:.1f}s (attempt 3/5): HTTP 502 Bad Gateway",
    ]
    # each retry is sent when its wait is over
    assert trace.times[1] - trace.times[0] == pytest.approx(trace.slept[0])


@pytest.mark.parametrize(("attempt", "low", "high"),
                         [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (5, 4.0, 8.0), (9, 4.0, 8.0)])
def test_backoff_doubles_from_half_a_second_to_eight(attempt: int, low: float, high: float) -> None:
    waits = [backoff(attempt) for _ in range(200)]
    assert low <= min(waits) and max(waits) <= high
    assert min(waits) < low + 0.1 * (high - low) and max(waits) > low + 0.9 * (high - low)


def test_gives_up_after_five_attempts() -> None:
    error, trace = fails([httpx.Response(500, json={"detail": "boom"})] * 5, get, ServerError)
    assert error.message == "boom (gave up after 5 attempts)"
    assert error.status == 500
    assert len(trace.sent) == 5 and len(trace.notices) == 4
    assert trace.notices[-1].startswith("retrying GET /v1/partitions/prtn_1 in ")
    assert "(attempt 5/5): boom" in trace.notices[-1]


@pytest.mark.parametrize("attempts", [1, 3])
def test_max_attempts_is_the_number_sent(attempts: int) -> None:
    error, trace = fails([raw(500)] * attempts, get, ServerError, max_attempts=attempts)
    assert len(trace.sent) == attempts
    suffix = f" (gave up after {attempts} attempts)" if attempts > 1 else ""
    assert error.message == "HTTP 500 Internal Server Error" + suffix


def test_attempts_per_call_override_the_client() -> None:
    error, trace = fails([raw(500)] * 2, lambda c: c.get("prtn_1", attempts=2), ServerError)
    assert len(trace.sent) == 2
    assert error.message == "HTTP 500 Internal Server Error (gave up after 2 attempts)"


def test_retry_after_seconds_and_ms_are_honoured() -> None:
    script: list[Step] = [httpx.Response(429, headers={"retry-after": "3"}, json={"detail": "slow down"}),
                          raw(503, **{"retry-after-ms": "1500"}), ok(PARTITION)]
    _, trace = exchange(script, get)
    assert trace.slept[:2] == [3.0, 1.5]
    assert trace.times[1] == pytest.approx(3.0)
    assert trace.times[2] == pytest.approx(4.5)


def test_a_429_holds_the_budget_a_503_does_not() -> None:
    _, trace = exchange([raw(429, **{"retry-after": "2"}), ok(PARTITION)], get)
    assert trace.budget is not None and trace.budget.rate_limited == 1
    _, trace = exchange([raw(503, **{"retry-after": "2"}), ok(PARTITION)], get)
    assert trace.budget is not None and trace.budget.rate_limited == 0


def test_retry_after_as_an_http_date() -> None:
    date = email.utils.formatdate(WALL + 7, usegmt=True)
    _, trace = exchange([raw(503, **{"retry-after": date}), ok(PARTITION)], get)
    assert trace.slept[0] == pytest.approx(7.0)


def test_retry_after_beyond_60s_fails_fast_saying_how_long() -> None:
    script: list[Step] = [httpx.Response(429, headers={"retry-after": "3600"}, json={"detail": "quota"})]
    error, trace = fails(script, get, RateLimitedError)
    assert error.message == "quota (the server asked to wait 3600 s; the tool waits at most 60 s)"
    assert trace.slept == [] and len(trace.sent) == 1


def test_retry_after_of_exactly_60s_is_honoured_at_the_edge_of_the_window() -> None:
    _, trace = exchange([raw(503, **{"retry-after": "60"}), ok(PARTITION)], get)
    assert trace.slept == [60.0]
    assert trace.times == [0.0, 60.0]


def test_retry_after_within_the_window_is_honoured() -> None:
    _, trace = exchange([raw(429, **{"retry-after": "59.9"}), ok(PARTITION)], get)
    assert trace.slept == [59.9]
    assert trace.times == [0.0, pytest.approx(59.9)]


def test_retry_after_past_the_window_fails_saying_why() -> None:
    def late(request: httpx.Request) -> httpx.Response:
        return raw(429, **{"retry-after": "59.9"})

    async def slow_then_limited(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.5)  # the answer took half a second: 0.5 + 59.9 > 60
        return late(request)

    error, trace = fails([slow_then_limited], get, RateLimitedError)  # type: ignore[list-item]
    assert error.message == ("HTTP 429 Too Many Requests (the server asked to wait 59.9 s, beyond "
                             "the 60 s request window)")
    assert len(trace.sent) == 1 and trace.slept == []


def test_backoff_past_the_window_gives_up_saying_so() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(29.9)
        return raw(502)

    error, trace = fails([slow, slow, slow], get, ServerError)  # type: ignore[list-item]
    assert len(trace.sent) == 2  # the third would start after 60 s
    assert error.message == ("HTTP 502 Bad Gateway (gave up after 2 attempts: the 60 s request "
                             "window is spent)")


@pytest.mark.parametrize("value", ["soon", "nan", "inf", ""])
def test_unusable_retry_after_values_fall_back_to_backoff(value: str) -> None:
    _, trace = exchange([raw(503, **{"retry-after": value, "retry-after-ms": value}), ok(PARTITION)], get)
    assert 0.25 <= trace.slept[0] <= 0.5


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
                             now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
                             now=1445412490.0) == 0.0  # a date in the past: at once
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "-5", "retry-after": "9"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "x", "retry-after": "9"}) == 9.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "Wed, 99 Foo 2015"}) is None
    assert parse_retry_after({}) is None


# ---- deadlines -----------------------------------------------------------------------


def test_a_server_that_never_answers_times_out_each_attempt_within_the_window() -> None:
    error, trace = fails([HANG, HANG, HANG], get, NetworkError)
    assert len(trace.sent) == 2
    assert trace.times[1] == pytest.approx(30.0 + trace.slept[0])
    assert error.message == ("no complete response within 30s (gave up after 2 attempts: the 60 s "
                             "request window is spent)")
    assert not isinstance(error, OutcomeUnknownError)  # a GET changes nothing


def test_request_timeout_is_each_attempts_deadline() -> None:
    error, trace = fails([HANG] * 5, get, NetworkError, request_timeout=2.0)
    assert len(trace.sent) == 5
    assert [b - a for a, b in zip(trace.times, trace.times[1:], strict=False)] == \
        pytest.approx([2.0 + s for s in trace.slept])
    assert error.message == "no complete response within 2s (gave up after 5 attempts)"


def test_a_create_that_times_out_has_an_unknown_outcome() -> None:
    error, trace = fails([HANG, HANG, HANG], create, OutcomeUnknownError)
    assert error.message.startswith("the outcome is unknown: no complete response within 30s")
    assert [r.headers["idempotency-key"] for r in trace.requests] == ["idem-1", "idem-1"]


def test_a_create_timeout_bounds_the_whole_operation() -> None:
    async def call(c: Client) -> ApiResult:
        return await c.create(BODY, idempotency_key="idem-1", timeout=1.0)

    error, trace = fails([HANG, HANG], call, OutcomeUnknownError)
    assert len(trace.sent) == 1 and trace.slept == []
    assert trace.ended == pytest.approx(1.0)
    assert error.message == "the outcome is unknown: no complete response within 1s"
    # httpx's own timeouts are the deadline too, not the client's 30 s
    assert trace.requests[0].extensions["timeout"] == httpx.Timeout(1.0).as_dict()


def test_retries_inside_a_create_timeout_get_only_what_is_left() -> None:
    async def call(c: Client) -> ApiResult:
        return await c.create(BODY, idempotency_key="idem-1", timeout=600.0)

    _, trace = fails([raw(503), HANG], call, OutcomeUnknownError)
    assert len(trace.sent) == 2
    assert trace.ended == pytest.approx(600.0)
    left = 600.0 - trace.slept[0]
    assert trace.requests[1].extensions["timeout"]["read"] == pytest.approx(left)
    assert trace.requests[1].extensions["timeout"]["connect"] == 10.0


def test_a_retry_that_would_end_past_a_create_timeout_is_not_started() -> None:
    async def call(c: Client) -> ApiResult:
        return await c.create(BODY, idempotency_key="idem-1", timeout=1.0)

    script: list[Step] = [raw(503, **{"retry-after": "0.5"}), raw(503, **{"retry-after": "0.6"})]
    error, trace = fails(script, call, ServerError)
    assert len(trace.sent) == 2
    assert error.message == ("HTTP 503 Service Unavailable (the server asked to wait 0.6 s, beyond "
                             "the 1 s request window)")


# ---- responses -----------------------------------------------------------------------


@pytest.mark.parametrize("call", [get, create, lambda c: c.cancel("prtn_1")])
@pytest.mark.parametrize("body", [b"null", b"[]", b'"s"', b"3"])
def test_an_object_is_expected_from_create_get_and_cancel(call: Call, body: bytes) -> None:
    error, trace = fails([raw(200, body, **{"x-request-id": "req_1"})], call, BadResponseError)
    assert (error.message, error.status, error.request_id) == \
        ("unusable response: expected an object", 200, "req_1")
    assert len(trace.sent) == 1


def test_a_get_answering_204_is_unusable() -> None:
    error, _ = fails([raw(204)], get, BadResponseError)
    assert (error.message, error.status) == ("unusable response: expected an object", 204)


def test_a_200_with_an_empty_body_is_unusable() -> None:
    error, trace = fails([raw(200, **{"x-request-id": "req_e"})],
                         lambda c: c.request("GET", "/v1/files/x"), BadResponseError)
    assert (error.message, error.request_id) == ("unusable response: empty body", "req_e")
    assert len(trace.sent) == 1


def test_a_plain_request_returns_any_json() -> None:
    result, _ = exchange([raw(200, b"[1, 2]")], lambda c: c.request("GET", "/v1/files/x"))
    assert result.data == [1, 2]


@pytest.mark.parametrize("body", [b'{"id": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}',
                                  b'{"credits": 1e400}', b"[" * 100000,
                                  b'{"n": ' + b"9" * 5000 + b"}", b"<html>", b"\xff\xfe"])
def test_unusable_success_bodies(body: bytes) -> None:
    error, trace = fails([raw(200, body, **{"content-type": "text/html; charset=x"})], get,
                         BadResponseError)
    assert error.message == "unusable response: HTTP 200 body is not valid JSON (text/html)"
    assert len(trace.sent) == 1


def test_decode_json_keeps_finite_numbers() -> None:
    assert decode_json(b'{"a": 1e300, "b": -2.5, "c": 7}') == {"a": 1e300, "b": -2.5, "c": 7}
    with pytest.raises(ValueError, match=r"^a number out of range$"):
        decode_json(b"[1e400]")
    with pytest.raises(ValueError, match="constant NaN"):
        decode_json(b"[NaN]")


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def gzip_corrupt() -> httpx.Response:
    # Streamed: httpx decodes a body given whole at once already in the constructor.
    return raw(200, stream(b"this is not gzip"), **{"content-encoding": "gzip"})


def test_a_corrupt_compressed_body_is_retried_then_unusable() -> None:
    good = raw(200, stream(zlib.compress(json.dumps(PARTITION).encode())), **{"content-encoding": "deflate"})
    result, trace = exchange([gzip_corrupt(), good], get)
    assert result.data == PARTITION and len(trace.sent) == 2
    assert trace.notices[0].startswith("retrying GET /v1/partitions/prtn_1 in ")
    assert "unusable response from api.example.test: " in trace.notices[0]
    error, trace = fails([gzip_corrupt() for _ in range(5)], get, BadResponseError)
    assert error.message.startswith("unusable response from api.example.test: ")
    assert error.message.endswith(" (gave up after 5 attempts)")
    assert len(trace.sent) == 5


def test_a_corrupt_compressed_reply_to_a_create_has_an_unknown_outcome() -> None:
    error, _ = fails([gzip_corrupt() for _ in range(5)], create, OutcomeUnknownError)
    assert error.message.startswith("the outcome is unknown: unusable response from api.example.test")


async def chunks(size: int, count: int) -> AsyncIterator[bytes]:
    block = b" " * size
    for _ in range(count):
        yield block


def test_a_body_over_64_mib_without_content_length_is_refused_without_retry() -> None:
    streamed = raw(200, chunks(1 << 20, 65))
    assert "content-length" not in streamed.headers
    error, trace = fails([streamed], get, BadResponseError)
    assert error.message == "unusable response: body over 64 MiB"
    assert len(trace.sent) == 1
    assert MAX_BODY == 64 * 1024 * 1024


def test_a_declared_body_over_64_mib_is_refused_unread() -> None:
    read: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(1)
        yield b"{}"

    big = raw(200, body(), **{"content-length": str(MAX_BODY + 1)})
    error, trace = fails([big], get, BadResponseError)
    assert error.message == "unusable response: body over 64 MiB"
    assert read == [] and len(trace.sent) == 1


@pytest.mark.parametrize("declared", [True, False])
def test_a_body_of_exactly_the_cap_is_read(monkeypatch: pytest.MonkeyPatch, declared: bool) -> None:
    monkeypatch.setattr(client_mod, "MAX_BODY", 10)
    exact = b'{"a":1234}'

    def response(data: bytes) -> httpx.Response:
        if declared:
            return raw(200, data)
        return raw(200, stream(data[:4], data[4:]))

    result, _ = exchange([response(exact)], get)
    assert result.data == {"a": 1234}
    error, _ = fails([response(b'{"a":12345}')], get, BadResponseError)
    assert error.message.startswith("unusable response: body over")


# ---- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "error", "message"), [
    (404, {"detail": "Partition not found"}, NotFoundError, "Partition not found"),
    (401, {"detail": "Invalid API key"}, AuthError, "Invalid API key"),
    (403, {"detail": {"code": "forbidden", "message": "No access"}}, AuthError, "No access"),
    (422, {"detail": [{"loc": ["body", "n_consensus"], "msg": "too big", "type": "x"}]},
     RejectedError, "n_consensus: too big"),
    (400, {"detail": {"code": "invalid_date", "message": "bad from_date"}}, RejectedError,
     "bad from_date"),
    (413, {"detail": "too large"}, RejectedError, "too large"),
    (409, {"detail": {"code": "idempotency_key_reused", "message": "reused"}}, ConflictError,
     "reused"),
])
def test_error_statuses_map_to_typed_errors(status: int, body: Any, error: type, message: str) -> None:
    response = httpx.Response(status, json=body, headers={"x-request-id": "req_err"})
    caught, _ = fails([response], get, error)
    assert caught.message == message
    assert caught.status == status
    assert caught.request_id == "req_err"
    assert caught.partition_id == "prtn_1"


@pytest.mark.parametrize(("body", "message"), [
    ({"detail": "plain"}, "plain"),
    ({"detail": ""}, "HTTP 400 Bad Request"),
    ({"detail": {"code": "only_code"}}, "only_code"),
    ({"detail": {"message": "only message"}}, "only message"),
    ({"detail": {}}, "HTTP 400 Bad Request"),
    ({"detail": [{"loc": ["query", "limit"], "msg": "too big"}]}, "query.limit: too big"),
    ({"detail": [{"loc": ["body"], "msg": "bad body"}]}, "bad body"),
    ({"detail": [{"msg": "no loc"}, {"loc": ["body", "key"]}]}, "no loc; key: invalid"),
    ({"detail": [{"loc": [0, "a"], "msg": "m"}, "junk", {"loc": ["b"], "msg": "n"}]}, "0.a: m; b: n"),
    ({"detail": [{"msg": str(i)} for i in range(5)]}, "0; 1; 2 (+2 more)"),
    ({"detail": [{"msg": str(i)} for i in range(3)]}, "0; 1; 2"),
    ({"detail": [{"msg": str(i)} for i in range(4)]}, "0; 1; 2 (+1 more)"),
    ({"detail": {}, "message": "beside an empty detail"}, "beside an empty detail"),
    ({"detail": []}, "HTTP 400 Bad Request"),
    ({"message": "top-level message"}, "top-level message"),
    ({"error": "top-level error"}, "top-level error"),
    ({"message": 5, "error": "the error"}, "the error"),
    ({"error": {"nested": True}}, "HTTP 400 Bad Request"),
    ([1, 2], "HTTP 400 Bad Request"),
    (None, "HTTP 400 Bad Request"),
])
def test_every_error_body_shape(body: Any, message: str) -> None:
    response = httpx.Response(400, json=body) if body is not None else raw(400)
    caught, _ = fails([response], get, RejectedError)
    assert caught.message == message


def test_non_json_error_body_becomes_one_line() -> None:
    html = raw(418, b"<html><body>teapot</body></html>", **{"content-type": "text/html"})
    caught, _ = fails([html], get, ServerError)
    assert caught.message == "HTTP 418 I'm a teapot"


def test_an_unknown_status_without_a_reason() -> None:
    caught, _ = fails([raw(599, b"{\"detail\": NaN}")], get, ServerError)
    assert caught.message == "HTTP 599"


def test_redirects_are_never_followed() -> None:
    moved = raw(302, location="https://evil.test/steal")
    caught, trace = fails([moved], get, ServerError)
    assert caught.message == "HTTP 302 redirect to https://evil.test/steal (not followed)"
    assert len(trace.sent) == 1
    caught, _ = fails([raw(301)], get, ServerError)
    assert caught.message == "HTTP 301 redirect to ? (not followed)"
    caught, _ = fails([httpx.Response(307, json={"detail": "moved"})], get, ServerError)
    assert caught.message == "moved"


@pytest.mark.parametrize(("exc", "message"), [
    (httpx.ConnectError("refused"), "cannot connect to api.example.test: refused"),
    (httpx.ReadTimeout("slow"), "timed out talking to api.example.test"),
    (httpx.RemoteProtocolError("peer closed\nmore"),
     "the connection to api.example.test broke mid-response: peer closed"),
    (httpx.ReadError(""), "network error talking to api.example.test: ReadError"),
    (httpx.ReadError("x" * 300), "network error talking to api.example.test: " + "x" * 200),
])
def test_transport_failures_are_described_in_one_line(exc: Exception, message: str) -> None:
    caught, trace = fails([exc], get, NetworkError, max_attempts=1)
    assert caught.message == message
    assert len(trace.sent) == 1


def test_a_connect_error_says_where_it_tried() -> None:
    caught, _ = fails([httpx.ConnectError("refused")] * 5, get, NetworkError)
    assert caught.hint == f"is {BASE} the right API? set it with --base-url or RETAB_API_BASE_URL"
    caught, _ = fails([httpx.ReadError("reset")] * 5, get, NetworkError)
    assert caught.hint is None


def test_create_reuses_idempotency_key_across_retries() -> None:
    script: list[Step] = [httpx.ConnectError("refused"), raw(503), ok(PARTITION, 201)]
    result, trace = exchange(script, create)
    assert result.status == 201
    assert [r.headers["idempotency-key"] for r in trace.requests] == ["idem-1"] * 3
    assert all(json.loads(r.content) == BODY for r in trace.requests)


@pytest.mark.parametrize(("step", "unknown"), [
    (httpx.ReadError("reset"), True),
    (raw(500), True),
    (raw(502), True),
    (raw(504), True),
    (raw(429), False),  # rate limited: not processed
    (raw(503), False),  # unavailable: not processed
    (httpx.ConnectError("refused"), False),  # nothing was sent
])
def test_create_outcome_unknown_only_when_the_create_may_have_happened(step: Step, unknown: bool) -> None:
    caught, trace = fails([step] * 5, create)
    assert isinstance(caught, OutcomeUnknownError) is unknown
    assert caught.message.startswith("the outcome is unknown: ") is unknown
    assert len(trace.sent) == 5


def test_an_unknown_outcome_keeps_status_and_request_id() -> None:
    caught, _ = fails([raw(500, **{"x-request-id": "req_5"})] * 5, create, OutcomeUnknownError)
    assert (caught.status, caught.request_id) == (500, "req_5")
    assert caught.message == ("the outcome is unknown: HTTP 500 Internal Server Error "
                              "(gave up after 5 attempts)")


def test_a_get_never_has_an_unknown_outcome() -> None:
    caught, _ = fails([httpx.ReadError("reset")] * 5, get, NetworkError)
    assert not isinstance(caught, OutcomeUnknownError)


def test_delete_after_unknown_outcome_reports_already_deleted() -> None:
    script: list[Step] = [httpx.ReadError("reset"),
                          httpx.Response(404, json={"detail": "Partition not found"})]
    result, trace = exchange(script, lambda c: c.delete("prtn_1"))
    assert (result.status, result.extra, result.replayed) == (404, {"already_deleted": True}, False)
    assert [r.method for r in trace.requests] == ["DELETE", "DELETE"]


def test_delete_after_a_refused_connection_is_not_found() -> None:
    script: list[Step] = [httpx.ConnectError("refused"), httpx.Response(404, json={"detail": "gone"})]
    caught, _ = fails(script, lambda c: c.delete("prtn_1"), NotFoundError)
    assert caught.message == "gone"


def test_delete_of_unknown_id_is_not_found() -> None:
    fails([httpx.Response(404, json={"detail": "Partition not found"})],
          lambda c: c.delete("prtn_x"), NotFoundError)


def test_list_requires_the_page_shape() -> None:
    bodies: list[Any] = [{"items": []}, {"data": {}, "list_metadata": {}},
                         {"data": [], "list_metadata": []}, []]
    for body in bodies:
        caught, _ = fails([ok(body)], lambda c: c.list({"limit": 10}), BadResponseError)
        assert caught.message == "unusable response: a list page needs 'data' and 'list_metadata'"
        assert caught.request_id == "req_ok"
    page = {"data": [], "list_metadata": {"before": None, "after": None}}
    result, trace = exchange([ok(page)], lambda c: c.list({"limit": 10, "order": "asc"}))
    assert result.data == page
    assert trace.requests[0].method == "GET"
    assert str(trace.requests[0].url) == f"{BASE}/v1/partitions?limit=10&order=asc"


def test_errors_name_the_partition_they_are_about() -> None:
    caught, _ = fails([raw(200, b"[]")], lambda c: c.cancel("prtn_9"), BadResponseError)
    assert caught.partition_id == "prtn_9"
    caught, _ = fails([raw(500)], lambda c: c.request("GET", "/v1/files/x"), ServerError, max_attempts=1)
    assert caught.partition_id is None


# ---- the key is never shown ------------------------------------------------------------


def test_key_echoed_in_an_error_body_is_masked() -> None:
    caught, _ = fails([httpx.Response(401, json={"detail": f"key {KEY} is revoked"})], get, AuthError)
    assert caught.message == f"key {MASKED} is revoked"


@pytest.mark.parametrize("request_id", [KEY, f"req_{KEY}"])
def test_key_echoed_in_the_request_id_is_masked_everywhere(request_id: str) -> None:
    shown = request_id.replace(KEY, MASKED)
    result, _ = exchange([ok(PARTITION, **{"x-request-id": request_id})], get)
    assert result.request_id == shown
    caught, _ = fails([httpx.Response(404, json={"detail": "x"}, headers={"x-request-id": request_id})],
                      get, NotFoundError)
    assert caught.request_id == shown
    assert KEY not in json.dumps(caught.to_json())
    caught, _ = fails([raw(200, b"[]", **{"x-request-id": request_id})], get, BadResponseError)
    assert caught.request_id == shown


def test_key_in_other_headers_is_masked() -> None:
    moved = raw(302, location=f"https://evil.test/?k={KEY}")
    caught, _ = fails([moved], get, ServerError)
    assert caught.message == f"HTTP 302 redirect to https://evil.test/?k={MASKED} (not followed)"
    typed = raw(200, b"<html>", **{"content-type": f"text/{KEY}"})
    caught, _ = fails([typed], get, BadResponseError)
    assert KEY not in caught.message and MASKED in caught.message


def test_key_in_a_transport_error_and_notices_is_masked() -> None:
    caught, trace = fails([httpx.ReadError(f"reset by {KEY}")] * 2, get, NetworkError, max_attempts=2)
    assert KEY not in caught.message and MASKED in caught.message
    assert KEY not in trace.notices[0] and MASKED in trace.notices[0]


def summaries(lines: list[str]) -> list[str]:
    """The --debug summary lines, without the headers and bodies under them."""
    return [line for line in lines if not line.startswith("debug:   ")]


def test_debug_log_masks_and_times() -> None:
    lines: list[str] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.25)
        return ok(PARTITION, **{"x-request-id": f"req_{KEY}"})

    exchange([slow], get, debug=lines.append)  # type: ignore[list-item]
    assert summaries(lines) == [f"debug: GET {BASE}/v1/partitions/prtn_1?include_output=true -> 200 "
                                f"(250 ms) request_id=req_{MASKED}"]
    assert all(KEY not in line for line in lines)
    lines.clear()
    exchange([httpx.ReadError("reset"), raw(204)], lambda c: c.delete("prtn_1"), debug=lines.append)
    assert summaries(lines) == [f"debug: DELETE {BASE}/v1/partitions/prtn_1 -> no response (0 ms)",
                                f"debug: DELETE {BASE}/v1/partitions/prtn_1 -> 204 (0 ms)"]


def test_debug_lines_for_timeouts_and_corrupt_bodies() -> None:
    lines: list[str] = []
    fails([HANG], get, NetworkError, debug=lines.append, max_attempts=1)
    assert summaries(lines) == [f"debug: GET {BASE}/v1/partitions/prtn_1?include_output=true -> no "
                                "response (30000 ms)"]
    assert not any(line.startswith("debug:   <") for line in lines)  # nothing came back
    lines.clear()
    fails([gzip_corrupt()], get, BadResponseError, debug=lines.append, max_attempts=1)
    assert summaries(lines) == [f"debug: GET {BASE}/v1/partitions/prtn_1?include_output=true -> no "
                                "response (0 ms)"]


def test_debug_shows_the_whole_exchange_with_secrets_masked_and_documents_left_out() -> None:
    lines: list[str] = []
    document = "data:application/pdf;base64," + "QUJD" * 5000
    echo = {**PARTITION, "echo": KEY, "long": "x" * 3000}
    answer = ok(echo, **{"x-request-id": "req_1", "set-cookie": "session=abcdefghijklmnop"})

    async def create(c: Client) -> ApiResult:
        return await c.create({"document": {"filename": "a.pdf", "url": document}, "key": "k"},
                              idempotency_key="idem-1")

    exchange([answer], create, debug=lines.append)
    request = [line for line in lines if line.startswith("debug:   > ")]
    response = [line for line in lines if line.startswith("debug:   < ")]
    assert lines[0] == f"debug: POST {BASE}/v1/partitions -> 200 (0 ms) request_id=req_1"
    assert f"debug:   > authorization: Bearer {MASKED}" in request
    assert f"debug:   > api-key: {MASKED}" in request
    assert "debug:   > idempotency-key: idem-1" in request
    assert request[-1] == ('debug:   > {"document":{"filename":"a.pdf","url":'
                           '"data:application/pdf;base64,<20000 characters left out>"},'
                           '"key":"k"}')
    assert "debug:   < set-cookie: ses...mnop" in response
    assert "debug:   < x-request-id: req_1" in response
    body = response[-1]
    assert body.startswith('debug:   < {"id":"prtn_1"') and f'"echo":"{MASKED}"' in body
    assert body.endswith(f"… ({len(answer.content)} bytes in all)")
    assert len(body) < 2048 + 100
    assert all(KEY not in line for line in lines)


# ---- ids -----------------------------------------------------------------------------


def test_an_invalid_id_sends_nothing() -> None:
    _, trace = fails([], lambda c: c.get("../admin"), UsageError)
    assert trace.sent == []


def test_the_id_rule_is_the_one_in_parsing() -> None:
    from retab_cli import parsing

    assert client_mod.validate_id is parsing.validate_id


def test_importing_the_client_loads_httpx_but_not_its_command_line() -> None:
    import subprocess
    import sys

    code = ("import sys, retab_cli.client; "
            "print([m for m in ('click', 'rich', 'pygments', 'httpx._main') if m in sys.modules], "
            "'httpx' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "[] True"


@pytest.mark.parametrize(("url", "loads"), [(BASE, 1), ("https://127.0.0.1:9", 1), ("http://127.0.0.1:9", 0),
                                            ("http://localhost:9", 0)])
def test_a_ca_bundle_is_loaded_only_where_tls_is_used(monkeypatch: pytest.MonkeyPatch, url: str,
                                                      loads: int) -> None:
    import ssl

    calls: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        calls.append(args or kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)

    async def main() -> None:
        async with Client(url, KEY):
            pass

    asyncio.run(main())
    assert len(calls) == loads


def test_a_request_starting_late_has_its_whole_window() -> None:
    async def later(c: Client) -> ApiResult:
        await asyncio.sleep(100.0)  # the clock does not start at zero
        return await c.create(BODY, idempotency_key="idem-1", timeout=10.0)

    _, trace = fails([raw(503, **{"retry-after": "4"}), raw(503, **{"retry-after": "4"}), HANG], later,
                     OutcomeUnknownError)
    assert trace.times == [100.0, 104.0, 108.0]
    assert trace.ended == pytest.approx(110.0)
    assert trace.requests[2].extensions["timeout"]["read"] == pytest.approx(2.0)

    async def late_get(c: Client) -> ApiResult:
        await asyncio.sleep(100.0)
        return await c.get("prtn_1")

    _, trace = exchange([raw(503, **{"retry-after": "59"}), ok(PARTITION)], late_get)
    assert trace.times == [100.0, 159.0]


def test_one_attempt_that_spent_the_window_gives_up_saying_so() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(69.9)
        return raw(500)

    error, trace = fails([slow, slow], get, ServerError, request_timeout=70.0)  # type: ignore[list-item]
    assert len(trace.sent) == 1
    assert error.message == ("HTTP 500 Internal Server Error (gave up after 1 attempt: the 70 s "
                             "request window is spent)")


@pytest.mark.parametrize(("status", "outcome"), [
    (199, "HTTP 199"), (200, None), (299, None), (300, "HTTP 300 redirect to ? (not followed)"),
    (399, "HTTP 399 redirect to ? (not followed)"), (400, "HTTP 400 Bad Request"),
])
def test_the_edges_of_success_and_redirect(status: int, outcome: str | None) -> None:
    result, _ = exchange([raw(status, b'{"id": "prtn_1", "status": "queued"}' if outcome is None else b"")],
                         get, max_attempts=1)
    if outcome is None:
        assert result.data == {"id": "prtn_1", "status": "queued"} and result.status == status
    else:
        assert isinstance(result, RetabError) and result.message == outcome


def test_a_204_is_nothing_even_with_a_body() -> None:
    error, _ = fails([raw(204, b'{"id": "prtn_1", "status": "queued"}')], get, BadResponseError)
    assert error.message == "unusable response: expected an object"


def test_a_body_without_a_content_type_is_named_so() -> None:
    error, _ = fails([raw(200, b"<html>")], get, BadResponseError)
    assert error.message == "unusable response: HTTP 200 body is not valid JSON (unknown type)"


class Tracked(httpx.AsyncByteStream):
    """A response body that records whether it was closed (the connection released)."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("parts", [[json.dumps(PARTITION).encode()], [b" " * (1 << 20)] * 65, [b"<html>"]])
def test_every_response_is_closed_read_or_refused(parts: list[bytes]) -> None:
    body = Tracked(parts)
    exchange([httpx.Response(200, stream=body)], get)
    assert body.closed


def test_leaving_the_client_closes_its_connections() -> None:
    async def main() -> bool:
        async with Client(BASE, KEY) as c:
            pass
        return c._http.is_closed

    assert asyncio.run(main()) is True


def test_a_request_spec_is_frozen() -> None:
    import dataclasses

    spec = client_mod.RequestSpec("GET", "/v1/x", None, None, {}, attempts=1, attempt_timeout=1.0,
                                  window=60.0, hard_deadline=False, mutating=False, expect="json",
                                  on_retry=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.attempts = 5  # type: ignore[misc]


# ---- what a property-based run found (tests/test_properties.py on main) -----------------------


@pytest.mark.parametrize(("key", "text", "shown"), [
    ("k1234567890k", "k1234567890k1234567890k", "k12...890k"),  # two copies sharing a 'k'
    ("abababababab", "x" + "ab" * 9 + "y", "xaba...ababy"),
    (KEY, f"{KEY}{KEY} and {KEY}", f"{MASKED}{MASKED} and {MASKED}"),  # touching copies stay two
    ("a" * 12, "a" * 13, "aaa...aaaa"),  # a copy one character on
    ("k1234567890k", "x k1234567890k y k1234567890k1234567890k", "x k12...890k y k12...890k"),
])
def test_overlapping_copies_of_the_key_are_masked_as_one(key: str, text: str, shown: str) -> None:
    async def main() -> str:
        async with Client(BASE, key) as c:
            return c.mask(text)

    masked = asyncio.run(main())
    assert masked == shown
    assert key not in masked


@pytest.mark.parametrize(("body", "message"), [
    ({"detail": [{"loc": 1, "msg": "x"}]}, "x"),
    ({"detail": [{"loc": "body", "msg": "y"}]}, "y"),
    ({"detail": [{"loc": ["body", "key"], "msg": ""}]}, "key: invalid"),
    ({"detail": [5]}, "HTTP 422 Unprocessable Entity"),
    ({"detail": [{"msg": ""}]}, "invalid"),
    ({"detail": [None, "x", 3, {"loc": ["q"], "msg": "z"}]}, "q: z"),
    ({"detail": [None, {"msg": "a"}, {"msg": "b"}, {"msg": "c"}, {"msg": "d"}, 7]}, "a; b; c (+1 more)"),
    ({"detail": {"message": 5}}, "5"),
])
def test_odd_validation_bodies_still_give_a_message(body: Any, message: str) -> None:
    caught, _ = fails([httpx.Response(422, json=body)], get, RejectedError)
    assert caught.message == message


@pytest.mark.parametrize("location", ["A:0", "http://[::1", "http://[zz]/", "https://exa mple.test/"])
def test_a_redirect_to_a_location_that_does_not_parse_is_a_clean_error(location: str) -> None:
    caught, trace = fails([raw(301, location=location)], get, ServerError)
    assert caught.message == f"HTTP 301 redirect to {location} (not followed)"
    assert len(trace.sent) == 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.list({"filename": "a\udcffb"}),
     "cannot send filename: it is not valid text (a byte that is not UTF-8?)"),
    (lambda c: c.create(BODY, idempotency_key="clé"),
     "cannot send the Idempotency-Key header: only printable ASCII goes in a header"),
])
def test_what_cannot_be_encoded_is_refused_before_sending(call: Call, message: str) -> None:
    caught, trace = fails([], call, UsageError)
    assert caught.message == message
    assert trace.sent == []
