"""The only module that speaks HTTP: auth, base URL rules, retries, the budget, errors.

One `_request` owns retries and maps every status to a typed error once. Methods
return the decoded JSON as received (`ApiResult.data`); models are built by callers
that need them, so the JSON output path never re-serialises anything.
"""

from __future__ import annotations

import asyncio
import json
import platform
import random
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from retab_cli import __version__
from retab_cli.budget import Budget
from retab_cli.errors import (
    BadResponseError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RetabError,
    for_status,
)
from retab_cli.parsing import validate_id as validate_id  # re-exported: callers import it here
from retab_cli.urls import is_loopback

# httpx imports its own command line (click, rich, pygments: ~50 ms) when click happens
# to be installed. A None entry makes that optional import fail fast, as httpx allows.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx

if sys.modules.get("httpx._main") is None:
    sys.modules.pop("httpx._main", None)

REQUEST_TIMEOUT = 30.0
RETRY_WINDOW = 60.0
MAX_ATTEMPTS = 5
MAX_RETRY_AFTER = 60.0
MAX_BODY = 64 * 1024 * 1024
MAX_IN_FLIGHT = 16
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

Log = Callable[[str], None]


def _ignore(_: str) -> None:
    return None


USER_AGENT = (
    f"retab-cli/{__version__} (python {platform.python_version()}; {sys.platform})"
)


def mask_key(key: str) -> str:
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 12 else "****"


@dataclass
class ApiResult:
    data: Any
    status: int
    request_id: str | None = None
    replayed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Attempt:
    """What one failed attempt tells the retry loop."""

    error: RetabError
    retry: bool
    delay: float | None = None
    maybe_applied: bool = False


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, Retry-After secs or date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def backoff(attempt: int) -> float:
    """0.5 s doubling to an 8 s cap, with full jitter on the upper half."""
    base = min(8.0, 0.5 * 2.0 ** (attempt - 1))
    return base / 2 + random.uniform(0, base / 2)


def decode_json(body: bytes) -> Any:
    """Strict JSON: NaN/Infinity, huge numbers and deep nesting are unusable, not crashes."""

    def reject(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(body, parse_constant=reject)


def error_message(payload: Any, status: int, reason: str) -> tuple[str, str | None]:
    """The API's message from any of its three error shapes, and its code if any."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str) and detail:
        return detail, None
    if isinstance(detail, dict):
        message = str(detail.get("message") or detail.get("code") or "")
        code = detail.get("code")
        return message or f"HTTP {status} {reason}", str(code) if code else None
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                msg = str(item.get("msg", "invalid"))
                parts.append(f"{loc}: {msg}" if loc else msg)
        more = f" (+{len(detail) - 3} more)" if len(detail) > 3 else ""
        return "; ".join(parts) + more, None
    if isinstance(payload, dict):
        for key in ("message", "error"):
            if isinstance(payload.get(key), str):
                return str(payload[key]), None
    return f"HTTP {status} {reason}".rstrip(), None


class Client:
    """An async client for the partitions API. Use as `async with Client(...) as c`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        budget: Budget | None = None,
        notice: Log = _ignore,
        debug: Log | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._key = api_key
        self.budget = budget or Budget()
        self._notice = notice
        self._debug = debug
        self.request_timeout = request_timeout
        self.max_attempts = max_attempts
        self._inflight = asyncio.Semaphore(MAX_IN_FLIGHT)
        host = urllib.parse.urlsplit(base_url).hostname or ""
        loopback = is_loopback(host)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Api-Key": api_key,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            follow_redirects=False,
            # Loopback is never proxied and needs no CA bundle (loading one costs ~20 ms).
            trust_env=not loopback,
            verify=not (loopback and base_url.startswith("http://")),
            timeout=httpx.Timeout(request_timeout, connect=min(10.0, request_timeout)),
            transport=transport,
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=16),
        )

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, api_key={mask_key(self._key)!r})"

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def mask(self, text: str) -> str:
        """Mask the key wherever it appears, even when a server echoes it back."""
        return text.replace(self._key, mask_key(self._key)) if self._key else text

    # ---- endpoints -------------------------------------------------------------

    async def create(
        self, body: dict[str, Any], *, idempotency_key: str, timeout: float | None = None
    ) -> ApiResult:
        return await self.request(
            "POST",
            "/v1/partitions",
            json_body=body,
            headers={"Idempotency-Key": idempotency_key},
            timeout=timeout,
            mutating=True,
        )

    async def get(
        self, partition_id: str, *, include_output: bool = True, attempts: int | None = None
    ) -> ApiResult:
        return await self.request(
            "GET",
            f"/v1/partitions/{_quote(partition_id)}",
            params={"include_output": "true" if include_output else "false"},
            partition_id=partition_id,
            attempts=attempts,
        )

    async def list(self, params: Mapping[str, str | int]) -> ApiResult:
        result = await self.request("GET", "/v1/partitions", params=dict(params))
        data = result.data
        if not (
            isinstance(data, dict)
            and isinstance(data.get("data"), list)
            and isinstance(data.get("list_metadata"), dict)
        ):
            raise BadResponseError(
                "unusable response: a list page needs 'data' and 'list_metadata'",
                request_id=result.request_id,
            )
        return result

    async def cancel(self, partition_id: str) -> ApiResult:
        return await self.request(
            "POST", f"/v1/partitions/{_quote(partition_id)}/cancel", partition_id=partition_id
        )

    async def delete(self, partition_id: str) -> ApiResult:
        """Delete; a 404 after an attempt whose outcome was unknown means 'already deleted'."""
        uncertain: list[bool] = []
        try:
            return await self.request(
                "DELETE",
                f"/v1/partitions/{_quote(partition_id)}",
                partition_id=partition_id,
                expect_json=False,
                on_retry=lambda attempt: uncertain.append(attempt.maybe_applied),
            )
        except NotFoundError as exc:
            if any(uncertain):
                return ApiResult(None, 404, exc.request_id, extra={"already_deleted": True})
            raise

    # ---- the one request loop --------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        partition_id: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        mutating: bool = False,
        expect_json: bool = True,
        on_retry: Callable[[_Attempt], None] | None = None,
    ) -> ApiResult:
        """Send with retries (DESIGN §5) and return the decoded body or raise a typed error.

        Every error raised names `partition_id`, whatever stage it came from.
        """
        try:
            return await self._retrying(method, path, params, json_body, headers, timeout,
                                        attempts, mutating, expect_json, on_retry)
        except RetabError as exc:
            exc.partition_id = exc.partition_id or partition_id
            raise

    async def _retrying(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        json_body: Any,
        headers: dict[str, str] | None,
        timeout: float | None,
        attempts: int | None,
        mutating: bool,
        expect_json: bool,
        on_retry: Callable[[_Attempt], None] | None,
    ) -> ApiResult:
        limit = attempts or self.max_attempts
        attempt_timeout = timeout or self.request_timeout
        started = time.monotonic()
        content = _encode(json_body) if json_body is not None else None
        send_headers = dict(headers or {})
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        for number in range(1, limit + 1):
            await self.budget.acquire()
            outcome = await self._attempt(
                method, path, params, content, send_headers, attempt_timeout, expect_json
            )
            if isinstance(outcome, ApiResult):
                return outcome
            if on_retry:
                on_retry(outcome)
            delay = outcome.delay if outcome.delay is not None else backoff(number)
            window = max(RETRY_WINDOW, attempt_timeout)
            last = number == limit or time.monotonic() - started + delay > window
            if not outcome.retry or last:
                raise self._final(outcome, mutating, number)
            self._notice(
                f"retrying {method} {self._path_for_humans(path)} in {delay:.1f}s "
                f"(attempt {number + 1}/{limit}): {outcome.error.message}"
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _final(self, outcome: _Attempt, mutating: bool, attempts: int) -> RetabError:
        error = outcome.error
        if attempts > 1 and outcome.retry:
            error.message = f"{error.message} (gave up after {attempts} attempts)"
        if mutating and outcome.maybe_applied:
            unknown = OutcomeUnknownError(
                f"the outcome is unknown: {error.message}",
                status=error.status,
                request_id=error.request_id,
            )
            return unknown
        return error

    async def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str],
        timeout: float,
        expect_json: bool,
    ) -> ApiResult | _Attempt:
        sent_at = time.monotonic()
        try:
            async with self._inflight, asyncio.timeout(timeout):
                request = self._http.build_request(
                    method, path, params=params, content=content, headers=headers
                )
                response = await self._http.send(request, stream=True)
                try:
                    body = await _read_capped(response)
                finally:
                    await response.aclose()
        except _TooLarge:
            return _Attempt(BadResponseError("unusable response: body over 64 MiB"), retry=False)
        except TimeoutError:
            self._log_debug(method, path, None, sent_at, None)
            return _Attempt(
                NetworkError(f"no complete response within {timeout:g}s"),
                retry=True,
                maybe_applied=True,
            )
        except httpx.TransportError as exc:
            self._log_debug(method, path, None, sent_at, None)
            connect = isinstance(exc, httpx.ConnectError)
            hint = (f"is {self.base_url} the right API? set it with --base-url or "
                    "RETAB_API_BASE_URL") if connect else None
            return _Attempt(
                NetworkError(self.mask(_describe_transport(exc, self.base_url)), hint=hint),
                retry=True,
                maybe_applied=not connect,
            )
        request_id = response.headers.get("x-request-id")
        self._log_debug(method, path, response.status_code, sent_at, request_id)
        if 200 <= response.status_code < 300:
            return self._success(response, body, request_id, expect_json)
        return self._failure(response, body, request_id)

    def _success(
        self, response: httpx.Response, body: bytes, request_id: str | None, expect_json: bool
    ) -> ApiResult:
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        if not expect_json or response.status_code == 204 or not body:
            if expect_json and response.status_code != 204:
                raise BadResponseError("unusable response: empty body", request_id=request_id)
            return ApiResult(None, response.status_code, request_id, replayed)
        try:
            data = decode_json(body)
        except (ValueError, RecursionError, UnicodeDecodeError):
            kind = response.headers.get("content-type", "unknown type").split(";")[0]
            raise BadResponseError(
                f"unusable response: HTTP {response.status_code} body is not valid JSON ({kind})",
                request_id=request_id,
                status=response.status_code,
            ) from None
        return ApiResult(data, response.status_code, request_id, replayed)

    def _failure(self, response: httpx.Response, body: bytes, request_id: str | None) -> _Attempt:
        status = response.status_code
        try:
            payload = decode_json(body) if body else None
        except (ValueError, RecursionError, UnicodeDecodeError):
            payload = None
        if payload is None and 300 <= status < 400:
            where = response.headers.get("location", "?")
            message = f"HTTP {status} redirect to {where} (not followed)"
        else:
            message, _code = error_message(payload, status, response.reason_phrase)
        error_type = for_status(status)
        error = error_type(self.mask(message), status=status, request_id=request_id)
        if status not in RETRY_STATUSES:
            return _Attempt(error, retry=False)
        wait = parse_retry_after(response.headers)
        if status == 429:
            self.budget.on_rate_limited(wait)
        if wait is not None and wait > MAX_RETRY_AFTER:
            error = RateLimitedError(
                f"{error.message}: the server asks to wait {wait:.0f}s; not waiting that long",
                status=status, request_id=request_id,
            )
            return _Attempt(error, retry=False)
        return _Attempt(error, retry=True, delay=wait, maybe_applied=status not in (429, 503))

    def _log_debug(
        self, method: str, path: str, status: int | None, sent_at: float, request_id: str | None
    ) -> None:
        if self._debug is None:
            return
        elapsed = (time.monotonic() - sent_at) * 1000
        shown = status if status is not None else "no response"
        rid = f" request_id={request_id}" if request_id else ""
        self._debug(
            self.mask(f"debug: {method} {self.base_url}{path} -> {shown} ({elapsed:.0f} ms){rid}")
        )

    @staticmethod
    def _path_for_humans(path: str) -> str:
        return urllib.parse.unquote(path)


def _quote(partition_id: str) -> str:
    return urllib.parse.quote(validate_id(partition_id), safe="")


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


class _TooLarge(Exception):
    pass


async def _read_capped(response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _describe_transport(exc: httpx.TransportError, base_url: str) -> str:
    host = urllib.parse.urlsplit(base_url).netloc
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {host}: {_short(exc)}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out talking to {host}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the connection to {host} broke mid-response: {_short(exc)}"
    if isinstance(exc, httpx.DecodingError):
        return f"unreadable response from {host}: {_short(exc)}"
    return f"network error talking to {host}: {_short(exc)}"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
