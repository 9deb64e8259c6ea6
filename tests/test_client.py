"""The HTTP layer on its own, against httpx.MockTransport: the exact requests, retries, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from retab_cli import client as client_mod
from retab_cli.budget import Budget
from retab_cli.client import Client, parse_retry_after, validate_id
from retab_cli.errors import (
    AuthError,
    BadResponseError,
    ConflictError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RejectedError,
    ServerError,
    UsageError,
)
from retab_cli.urls import normalize_base_url

KEY = "rt_test_abcdefghijklmnop"
PARTITION = {"id": "prtn_1", "file": {"id": "file_1", "filename": "a.pdf", "mime_type": "application/pdf"},
             "model": "retab-small", "key": "k", "status": "completed", "output": [],
             "usage": {"credits": 3}}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries sleep for real in production; here they are recorded instead."""
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(client_mod.asyncio, "sleep", fake_sleep)
    return slept


Handler = Callable[[httpx.Request], httpx.Response]


def run(handler: Handler | list[Any], call: Callable[[Client], Any],
        notices: list[str] | None = None, **kwargs: Any) -> tuple[Any, list[httpx.Request]]:
    """Run one client call against scripted responses; return its result and the requests."""
    seen: list[httpx.Request] = []
    script = list(handler) if isinstance(handler, list) else None

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if script is None:
            return handler(request)  # type: ignore[operator]
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[no-any-return]

    async def main() -> Any:
        transport = httpx.MockTransport(respond)
        sink = notices if notices is not None else []
        async with Client("https://api.example.test", KEY, budget=Budget(0), notice=sink.append,
                          transport=transport, **kwargs) as c:
            return await call(c)

    return asyncio.run(main()), seen


def ok(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"x-request-id": "req_ok", **headers})


def test_get_sends_both_auth_headers_user_agent_and_query() -> None:
    result, seen = run([ok(PARTITION)], lambda c: c.get("prtn_1", include_output=False))
    assert result.data == PARTITION
    assert result.request_id == "req_ok"
    request = seen[0]
    assert request.method == "GET"
    assert str(request.url) == "https://api.example.test/v1/partitions/prtn_1?include_output=false"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["api-key"] == KEY
    assert request.headers["user-agent"].startswith("retab-cli/")


def test_numbers_pass_through_exactly() -> None:
    body = {**PARTITION, "usage": {"credits": 3}, "unknown_field": {"x": [1, 2.5]}}
    result, _ = run([ok(body)], lambda c: c.get("prtn_1"))
    assert result.data["usage"]["credits"] == 3
    assert isinstance(result.data["usage"]["credits"], int)
    assert result.data["unknown_field"] == {"x": [1, 2.5]}


def test_retries_transient_statuses_then_succeeds(no_sleep: list[float]) -> None:
    notices: list[str] = []
    script = [httpx.Response(503, text="busy"), httpx.Response(502, text="<html>bad</html>"),
              ok(PARTITION)]
    result, seen = run(script, lambda c: c.get("prtn_1"), notices)
    assert result.data["id"] == "prtn_1"
    assert len(seen) == 3
    assert len(notices) == 2
    assert notices[0].startswith("retrying GET /v1/partitions/prtn_1 in ")
    assert "(attempt 2/5)" in notices[0]
    assert len(no_sleep) == 2
    assert 0.25 <= no_sleep[0] <= 0.5 and 0.5 <= no_sleep[1] <= 1.0


def test_retry_after_seconds_and_ms_are_honoured(no_sleep: list[float]) -> None:
    script = [httpx.Response(429, headers={"retry-after": "3"}, json={"detail": "slow down"}),
              httpx.Response(503, headers={"retry-after-ms": "1500"}), ok(PARTITION)]
    run(script, lambda c: c.get("prtn_1"))
    assert no_sleep == [3.0, 1.5]


def test_retry_after_beyond_60s_fails_fast(no_sleep: list[float]) -> None:
    script = [httpx.Response(429, headers={"retry-after": "3600"}, json={"detail": "quota"})]
    with pytest.raises(RateLimitedError) as info:
        run(script, lambda c: c.get("prtn_1"))
    assert "asks to wait 3600s" in info.value.message
    assert no_sleep == []


def test_gives_up_after_five_attempts() -> None:
    script = [httpx.Response(500, json={"detail": "boom"}) for _ in range(5)]
    with pytest.raises(ServerError) as info:
        run(script, lambda c: c.get("prtn_1"))
    assert info.value.message == "boom (gave up after 5 attempts)"
    assert info.value.status == 500


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
def test_error_statuses_map_to_typed_errors(status: int, body: Any, error: type,
                                            message: str) -> None:
    response = httpx.Response(status, json=body, headers={"x-request-id": "req_err"})
    with pytest.raises(error) as info:
        run([response], lambda c: c.get("prtn_1"))
    assert info.value.message == message
    assert info.value.status == status
    assert info.value.request_id == "req_err"


def test_non_json_error_body_becomes_one_line() -> None:
    html = httpx.Response(418, text="<html><body>teapot</body></html>",
                          headers={"content-type": "text/html"})
    with pytest.raises(ServerError) as info:
        run([html], lambda c: c.get("prtn_1"))
    assert info.value.message == "HTTP 418 I'm a teapot"


def test_redirects_are_never_followed() -> None:
    moved = httpx.Response(302, headers={"location": "https://evil.test/steal"})
    with pytest.raises(ServerError) as info:
        _, _seen = run([moved], lambda c: c.get("prtn_1"))
    assert "not followed" in info.value.message


@pytest.mark.parametrize("body", [b'{"id": NaN}', b'{"x": Infinity}', b"[" * 100000,
                                  b'{"n": ' + b"9" * 5000 + b"}", b"<html>", b"\xff\xfe"])
def test_unusable_success_bodies(body: bytes) -> None:
    with pytest.raises(BadResponseError) as info:
        run([httpx.Response(200, content=body)], lambda c: c.get("prtn_1"))
    assert info.value.message.startswith("unusable response")


def test_body_over_64_mib_is_refused_without_retry() -> None:
    big = httpx.Response(200, headers={"content-length": str(65 * 1024 * 1024)}, content=b"{}")
    with pytest.raises(BadResponseError):
        _, _seen = run([big], lambda c: c.get("prtn_1"))


def test_key_echoed_by_server_is_masked() -> None:
    echo = httpx.Response(401, json={"detail": f"key {KEY} is revoked"})
    with pytest.raises(AuthError) as info:
        run([echo], lambda c: c.get("prtn_1"))
    assert KEY not in info.value.message
    assert "rt_...mnop" in info.value.message


def test_client_repr_hides_the_key() -> None:
    c = Client("https://api.example.test", KEY)
    assert KEY not in repr(c)
    asyncio.run(c.aclose())


def test_create_reuses_idempotency_key_across_retries() -> None:
    script = [httpx.ConnectError("refused"), httpx.Response(503), ok(PARTITION, status=201)]
    body = {"document": {"filename": "a.pdf", "url": "data:application/pdf;base64,JVBERi0="},
            "key": "k", "instructions": "i"}
    result, seen = run(script, lambda c: c.create(body, idempotency_key="idem-1"))
    assert result.status == 201
    assert [r.headers["idempotency-key"] for r in seen] == ["idem-1"] * 3
    assert all(json.loads(r.content) == body for r in seen)
    assert seen[0].headers["content-type"] == "application/json"


def test_create_outcome_unknown_after_broken_responses() -> None:
    script = [httpx.ReadError("reset")] * 5
    with pytest.raises(OutcomeUnknownError) as info:
        run(script, lambda c: c.create({"k": 1}, idempotency_key="idem-2"))
    assert "outcome is unknown" in info.value.message


def test_connect_errors_are_network_errors_not_unknown_outcomes() -> None:
    script = [httpx.ConnectError("refused")] * 5
    with pytest.raises(NetworkError) as info:
        run(script, lambda c: c.create({"k": 1}, idempotency_key="idem-3"))
    assert not isinstance(info.value, OutcomeUnknownError)
    assert "cannot connect to api.example.test" in info.value.message


def test_delete_after_unknown_outcome_reports_already_deleted() -> None:
    script = [httpx.ReadError("reset"), httpx.Response(404, json={"detail": "Partition not found"})]
    result, seen = run(script, lambda c: c.delete("prtn_1"))
    assert result.extra == {"already_deleted": True}
    assert [r.method for r in seen] == ["DELETE", "DELETE"]


def test_delete_of_unknown_id_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        run([httpx.Response(404, json={"detail": "Partition not found"})],
            lambda c: c.delete("prtn_x"))


def test_delete_success_is_204() -> None:
    result, seen = run([httpx.Response(204)], lambda c: c.delete("prtn_1"))
    assert result.status == 204 and result.extra == {}
    assert str(seen[0].url) == "https://api.example.test/v1/partitions/prtn_1"


def test_list_requires_the_page_shape() -> None:
    with pytest.raises(BadResponseError):
        run([ok({"items": []})], lambda c: c.list({"limit": 10}))
    page = {"data": [], "list_metadata": {"before": None, "after": None}}
    _result, seen = run([ok(page)], lambda c: c.list({"limit": 10, "order": "asc"}))
    assert str(seen[0].url) == "https://api.example.test/v1/partitions?limit=10&order=asc"


def test_debug_log_masks_and_times() -> None:
    lines: list[str] = []
    run([ok(PARTITION)], lambda c: c.get("prtn_1"), debug=lines.append)
    assert len(lines) == 1
    assert lines[0].startswith("debug: GET https://api.example.test/v1/partitions/prtn_1 -> 200 (")
    assert "request_id=req_ok" in lines[0]


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a.b", "a b", "a%2F", "ü", "x" * 129,
                                 "prtn_1\n", "a\x00"])
def test_invalid_ids_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        validate_id(bad)


@pytest.mark.parametrize("good", ["prtn_01G34H8J2K", "x", "A-b_9", "x" * 128])
def test_valid_ids(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.retab.com", "https://api.retab.com"),
    ("https://api.retab.com/", "https://api.retab.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.5.6.7:1", "http://127.5.6.7:1"),
    ("http://localhost:9", "http://localhost:9"),
    ("http://[::1]:9", "http://[::1]:9"),
])
def test_base_urls_accepted(url: str, expected: str) -> None:
    assert normalize_base_url(url) == expected


@pytest.mark.parametrize("url", [
    "http://api.retab.com", "http://127.0.0.1.evil.com", "http://10.0.0.1",
    "https://user:pw@api.retab.com", "https://api.retab.com?x=1", "https://api.retab.com#f",
    "ftp://api.retab.com", "api.retab.com", "https://api.retab.com:99999",
])
def test_base_urls_refused(url: str) -> None:
    with pytest.raises(UsageError):
        normalize_base_url(url)


def test_trailing_v1_is_trimmed_with_a_warning() -> None:
    warnings: list[str] = []
    assert normalize_base_url("https://api.retab.com/v1/", warn=warnings.append) == \
        "https://api.retab.com"
    assert len(warnings) == 1 and "/v1" in warnings[0]


def test_insecure_http_allowed_only_when_asked() -> None:
    warnings: list[str] = []
    assert normalize_base_url("http://api.test", allow_insecure=True, warn=warnings.append) == \
        "http://api.test"
    assert warnings


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
                             now=1445412470.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
