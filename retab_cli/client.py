"""The only module that speaks HTTP: auth, base URL rules, retries, the budget, errors.

One `_request` owns retries and maps every status to a typed error once. Methods
return the decoded JSON as received (`ApiResult.data`); models are built by callers
that need them, so the JSON output path never re-serialises anything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import math
import platform
import random
import re
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from retab_cli import __version__
from retab_cli.budget import Budget
from retab_cli.errors import (
    BadResponseError,
    NetworkError,
    NotFoundError,
    OutcomeUnknownError,
    RetabError,
    UsageError,
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
# httpcore imports the optional sniffio at every connection-pool lock, several times a
# request; absent, each failed import searches sys.path again (~0.1 ms). Looked for once
# here; a None entry then fails the import at once, and httpcore takes asyncio.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

REQUEST_TIMEOUT = 30.0
RETRY_WINDOW = 60.0
MAX_ATTEMPTS = 5
MAX_RETRY_AFTER = 60.0
MAX_BODY = 64 * 1024 * 1024
MAX_IN_FLIGHT = 16
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# What a header can carry as-is: printable ASCII without spaces.
_SENDABLE_KEY = re.compile(r"[!-~]+")

Log = Callable[[str], None]


def _ignore(_: str) -> None:
    return None


USER_AGENT = (
    f"retab-cli/{__version__} (python {platform.python_version()}; {sys.platform})"
)


def mask_key(key: str) -> str:
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 12 else "****"


def mask_copies(text: str, key: str) -> str:
    """`text` with every copy of `key` masked; copies that overlap (a server repeating the
    key with shared characters) are masked as one, so no copy survives around a mask."""
    spans: list[list[int]] = []  # [start, end) of the copies, overlapping ones merged
    start = text.find(key)
    while start != -1:
        if spans and start < spans[-1][1]:
            spans[-1][1] = start + len(key)
        else:
            spans.append([start, start + len(key)])
        start = text.find(key, start + 1)
    shown, last = [], 0
    for begin, end in spans:
        shown += [text[last:begin], mask_key(key)]
        last = end
    return "".join(shown) + text[last:]


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
    server_delay: bool = False  # the delay is the server's (Retry-After), not our backoff


# What a request's success body must be: any JSON, a JSON object, or nothing (DELETE).
Expect = Literal["json", "object", "nothing"]


@dataclass(frozen=True)
class RequestSpec:
    """One request as the retry loop sends it: what goes out, and how hard to try."""

    method: str
    path: str
    params: dict[str, Any] | None
    content: bytes | None
    headers: Mapping[str, str]
    attempts: int
    attempt_timeout: float  # each attempt's whole-request deadline
    window: float  # seconds from the start within which a retry may begin
    # The window bounds the whole operation: each attempt gets only what is left of it
    # (a caller's own timeout, e.g. a synchronous create's --timeout).
    hard_deadline: bool
    mutating: bool
    expect: Expect
    on_retry: Callable[[_Attempt], None] | None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (retry-after-ms, Retry-After secs or date)."""
    ms = _finite(headers.get("retry-after-ms"))
    if ms is not None:
        return max(0.0, ms / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    import email.utils  # only for the rare HTTP-date form

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def _finite(text: str | None) -> float | None:
    """A header's number, or None when absent, not a number, NaN or infinite."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def backoff(attempt: int) -> float:
    """0.5 s doubling to an 8 s cap, with full jitter on the upper half."""
    base = min(8.0, 0.5 * 2.0 ** (attempt - 1))
    return base / 2 + random.uniform(0, base / 2)


def decode_json(body: bytes) -> Any:
    """Strict JSON: NaN/Infinity, numbers too big for a float (1e400), huge integers and
    deep nesting are unusable (ValueError, RecursionError), never crashes later: the JSON
    output could not write them back as standard JSON."""

    def reject(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("a number out of range")
        return value

    return json.loads(body, parse_constant=reject, parse_float=finite)


def error_message(payload: Any, status: int, reason: str) -> str:
    """The API's message from any of its error shapes, else the HTTP status line."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, dict) and (detail.get("message") or detail.get("code")):
        return str(detail.get("message") or detail.get("code"))
    if isinstance(detail, list) and (message := _validation_message(detail)):
        return message
    if isinstance(payload, dict):
        for key in ("message", "error"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
    return f"HTTP {status} {reason}".rstrip()


def _validation_message(detail: list[Any]) -> str:
    """FastAPI's 422 list: the first three problems, each `field: message` ("" when no
    item is a problem at all). A server's odd shapes must not break the error line."""
    problems = [item for item in detail if isinstance(item, dict)]
    parts = []
    for item in problems[:3]:
        loc = item.get("loc")
        where = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
        msg = str(item.get("msg") or "invalid")
        parts.append(f"{where}: {msg}" if where else msg)
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(parts) + more if parts else ""


class Client:
    """An async client for the partitions API. Use as `async with Client(...) as c`.

    `clock` and `sleep` are the monotonic clock and the sleep of the event loop the
    client runs on (per-attempt deadlines use the loop's timers); `wall` is the time
    of day, for Retry-After dates. Tests pass fakes for all three.
    """

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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not _SENDABLE_KEY.fullmatch(api_key):
            # httpx would fail to encode it (a traceback) or send a broken header.
            raise UsageError("the API key has characters that cannot be sent in a header "
                             "(spaces, control or non-ASCII characters); it is not shown")
        self.base_url = base_url
        self._key = api_key
        self.budget = budget if budget is not None else Budget(clock=clock, sleep=sleep)
        self._notice = notice
        self._debug = debug
        self.request_timeout = request_timeout
        self.max_attempts = max_attempts
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._inflight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._http = _http_client(base_url, api_key, request_timeout, transport)

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
        return mask_copies(text, self._key)

    # ---- endpoints -------------------------------------------------------------

    async def create(
        self, body: dict[str, Any], *, idempotency_key: str, timeout: float | None = None
    ) -> ApiResult:
        """`timeout` bounds the whole create, retries and waits included (a synchronous
        create's --timeout); without it, each attempt gets `request_timeout`."""
        return await self.request(
            "POST",
            "/v1/partitions",
            json_body=body,
            headers={"Idempotency-Key": idempotency_key},
            timeout=timeout,
            mutating=True,
            expect="object",
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
            expect="object",
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
            "POST", f"/v1/partitions/{_quote(partition_id)}/cancel", partition_id=partition_id,
            expect="object",
        )

    async def delete(self, partition_id: str) -> ApiResult:
        """Delete; a 404 after an attempt whose outcome was unknown means 'already deleted'."""
        uncertain: list[bool] = []
        try:
            return await self.request(
                "DELETE",
                f"/v1/partitions/{_quote(partition_id)}",
                partition_id=partition_id,
                expect="nothing",
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
        expect: Expect = "json",
        on_retry: Callable[[_Attempt], None] | None = None,
    ) -> ApiResult:
        """Send with retries (docs/design.md §5) and return the decoded body or raise a typed error.

        `timeout` bounds the whole operation; without it each attempt has `request_timeout`
        and retries start within the retry window. Every error raised names `partition_id`,
        whatever stage it came from, and has the key masked in everything it shows.
        """
        _check_sendable(params, headers)
        content = _encode(json_body) if json_body is not None else None
        send_headers = dict(headers or {})
        if content is not None:
            send_headers["Content-Type"] = "application/json"
        per_attempt = timeout if timeout is not None else self.request_timeout
        spec = RequestSpec(
            method, path, params, content, send_headers,
            attempts=attempts or self.max_attempts,
            attempt_timeout=per_attempt,
            window=timeout if timeout is not None else max(RETRY_WINDOW, per_attempt),
            hard_deadline=timeout is not None,
            mutating=mutating, expect=expect, on_retry=on_retry,
        )
        try:
            return await self._retrying(spec)
        except RetabError as exc:
            exc.partition_id = exc.partition_id or partition_id
            exc.message = self.mask(exc.message)  # request ids are masked as they arrive
            raise

    async def _retrying(self, spec: RequestSpec) -> ApiResult:
        started = self._clock()
        for number in itertools.count(1):  # _stop_reason ends it at spec.attempts
            await self.budget.acquire()
            left = spec.window - (self._clock() - started)
            outcome = await self._attempt(spec, left if spec.hard_deadline else spec.attempt_timeout)
            if isinstance(outcome, ApiResult):
                return outcome
            if spec.on_retry:
                spec.on_retry(outcome)
            delay = outcome.delay if outcome.delay is not None else backoff(number)
            stop = self._stop_reason(outcome, spec, number, self._clock() - started + delay)
            if stop is not None:
                raise self._final(outcome, spec.mutating, stop)
            self._notice(self.mask(
                f"retrying {spec.method} {urllib.parse.unquote(spec.path)} in {delay:.1f}s "
                f"(attempt {number + 1}/{spec.attempts}): {outcome.error.message}"
            ))
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover: count() never ends

    @staticmethod
    def _stop_reason(outcome: _Attempt, spec: RequestSpec, number: int, resume_at: float) -> str | None:
        """Why this failure ends the request ("" when it says so itself), or None to retry."""
        if not outcome.retry:
            return ""
        if number >= spec.attempts:
            return f"gave up after {number} attempts" if number > 1 else ""
        if resume_at <= spec.window:
            return None
        if outcome.server_delay:
            return (f"the server asked to wait {outcome.delay:g} s, beyond the "
                    f"{spec.window:g} s request window")
        return f"gave up after {_attempts(number)}: the {spec.window:g} s request window is spent"

    @staticmethod
    def _final(outcome: _Attempt, mutating: bool, reason: str) -> RetabError:
        error = outcome.error
        if reason:
            error.message = f"{error.message} ({reason})"
        if mutating and outcome.maybe_applied:
            return OutcomeUnknownError(
                f"the outcome is unknown: {error.message}",
                status=error.status,
                request_id=error.request_id,
            )
        return error

    async def _attempt(self, spec: RequestSpec, timeout: float) -> ApiResult | _Attempt:
        sent_at = self._clock()
        try:
            response, body = await self._exchange(spec, timeout)
        except _TooLarge:
            return _Attempt(BadResponseError(f"unusable response: body over {MAX_BODY >> 20} MiB"),
                            retry=False)
        except TimeoutError:
            self._log_debug(spec, sent_at)
            # Past a caller's own deadline there is no time left to retry in.
            within = spec.window if spec.hard_deadline else timeout
            return _Attempt(NetworkError(f"no complete response within {within:g}s"),
                            retry=not spec.hard_deadline, maybe_applied=True)
        except httpx.DecodingError as exc:  # a corrupt gzip/deflate body: it may read next time
            self._log_debug(spec, sent_at)
            host = urllib.parse.urlsplit(self.base_url).netloc
            return _Attempt(BadResponseError(f"unusable response from {host}: {_short(exc)}"),
                            retry=True, maybe_applied=True)
        except httpx.TransportError as exc:
            self._log_debug(spec, sent_at)
            return self._transport_failure(exc)
        request_id = response.headers.get("x-request-id")
        request_id = self.mask(request_id) if request_id is not None else None
        self._log_debug(spec, sent_at, response, body, request_id)
        if 200 <= response.status_code < 300:
            return self._success(response, body, request_id, spec.expect)
        return self._failure(response, body, request_id)

    async def _exchange(self, spec: RequestSpec, timeout: float) -> tuple[httpx.Response, bytes]:
        """One request and its whole body, within `timeout` seconds."""
        async with self._inflight, asyncio.timeout(timeout):
            request = self._http.build_request(
                spec.method, spec.path, params=spec.params, content=spec.content,
                headers=dict(spec.headers),
                # httpx's own per-read timeout must not cut a longer caller's deadline short.
                timeout=_timeouts(max(timeout, 0.001)) if spec.hard_deadline else httpx.USE_CLIENT_DEFAULT,
            )
            response = await self._http.send(request, stream=True)
            try:
                return response, await _read_capped(response)
            finally:
                await response.aclose()

    def _transport_failure(self, exc: httpx.TransportError) -> _Attempt:
        connect = isinstance(exc, httpx.ConnectError)
        hint = (f"is {self.base_url} the right API? set it with --base-url or "
                "RETAB_API_BASE_URL") if connect else None
        return _Attempt(
            NetworkError(_describe_transport(exc, self.base_url), hint=hint),
            retry=True,
            maybe_applied=not connect,  # nothing was sent when the connection failed
        )

    @staticmethod
    def _success(response: httpx.Response, body: bytes, request_id: str | None,
                 expect: Expect) -> ApiResult:
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        status = response.status_code
        if expect == "nothing":
            return ApiResult(None, status, request_id, replayed)
        if status == 204 or not body:
            what = "expected an object" if expect == "object" else "empty body"
            raise BadResponseError(f"unusable response: {what}", request_id=request_id, status=status)
        try:
            data = decode_json(body)
        except (ValueError, RecursionError, UnicodeDecodeError):
            kind = response.headers.get("content-type", "unknown type").split(";")[0]
            raise BadResponseError(
                f"unusable response: HTTP {status} body is not valid JSON ({kind})",
                request_id=request_id,
                status=status,
            ) from None
        if expect == "object" and not isinstance(data, dict):
            raise BadResponseError("unusable response: expected an object",
                                   request_id=request_id, status=status)
        return ApiResult(data, status, request_id, replayed)

    def _failure(self, response: httpx.Response, body: bytes, request_id: str | None) -> _Attempt:
        status = response.status_code
        try:
            payload = decode_json(body) if body else None
        except (ValueError, RecursionError, UnicodeDecodeError):
            payload = None
        if payload is None and 300 <= status < 400:
            where = response.headers.get(_LOCATION, "?")
            message = f"HTTP {status} redirect to {where} (not followed)"
        else:
            message = error_message(payload, status, response.reason_phrase)
        error = for_status(status)(message, status=status, request_id=request_id)
        if status not in RETRY_STATUSES:
            return _Attempt(error, retry=False)
        wait = parse_retry_after(response.headers, now=self._wall())
        if status == 429:
            self.budget.on_rate_limited(wait)
        if wait is not None and wait > MAX_RETRY_AFTER:
            error.message = (f"{message} (the server asked to wait {wait:g} s; the tool waits "
                             f"at most {MAX_RETRY_AFTER:g} s)")
            return _Attempt(error, retry=False)
        return _Attempt(error, retry=True, delay=wait, server_delay=wait is not None,
                        maybe_applied=status not in (429, 503))

    def _log_debug(self, spec: RequestSpec, sent_at: float, response: httpx.Response | None = None,
                   body: bytes | None = None, request_id: str | None = None) -> None:
        """--debug: the attempt's summary line, then its headers and bodies; the key masked."""
        if self._debug is None:
            return
        from retab_cli.exchange_log import Exchange, exchange_lines

        elapsed = (self._clock() - sent_at) * 1000
        shown = response.status_code if response is not None else "no response"
        rid = f" request_id={request_id}" if request_id else ""
        query = f"?{urllib.parse.urlencode(spec.params, doseq=True)}" if spec.params else ""
        summary = f"debug: {spec.method} {self.base_url}{spec.path}{query} -> {shown} ({elapsed:.0f} ms){rid}"
        exchange = Exchange([*self._http.headers.multi_items(), *spec.headers.items()], spec.content,
                            response.headers.multi_items() if response is not None else (), body)
        for line in exchange_lines(summary, exchange):
            self._debug(self.mask(line))


def _attempts(number: int) -> str:
    return f"{number} attempt" if number == 1 else f"{number} attempts"


# Where a redirect's Location is kept: under its own name httpx would parse it to build
# the next request (never sent) and raise on one that does not parse.
_LOCATION = "x-retab-location"


async def _hide_location(response: httpx.Response) -> None:
    if "location" in response.headers:
        response.headers[_LOCATION] = response.headers.pop("location")


def _timeouts(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


def _http_client(base_url: str, api_key: str, request_timeout: float,
                 transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    loopback = is_loopback(urllib.parse.urlsplit(base_url).hostname or "")
    return httpx.AsyncClient(
        base_url=base_url,
        headers={
            "Authorization": f"Bearer {api_key}",
            "Api-Key": api_key,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        },
        follow_redirects=False,
        event_hooks={"response": [_hide_location]},
        # Loopback is never proxied and needs no CA bundle (loading one costs ~20 ms).
        trust_env=not loopback,
        verify=not (loopback and base_url.startswith("http://")),
        timeout=_timeouts(request_timeout),
        transport=transport,
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
    )


def _quote(partition_id: str) -> str:
    return urllib.parse.quote(validate_id(partition_id), safe="")


def _check_sendable(params: Mapping[str, Any] | None, headers: Mapping[str, str] | None) -> None:
    """Refuse what httpx could not encode (a traceback otherwise): a query value that is not
    valid text (argv holds a non-UTF-8 byte as a lone surrogate), a header that is not ASCII."""
    for name, value in (params or {}).items():
        try:
            str(value).encode()
        except UnicodeEncodeError:
            raise UsageError(
                f"cannot send {name}: it is not valid text (a byte that is not UTF-8?)"
            ) from None
    for name, value in (headers or {}).items():
        if not value.isascii() or not value.isprintable():
            raise UsageError(f"cannot send the {name} header: only printable ASCII goes in a header")


def _encode(body: Any) -> bytes:
    try:
        text = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError) as exc:  # NaN, or a value JSON has no form for
        raise UsageError(f"cannot send the request: {exc}") from None
    return text.encode()


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
    return f"network error talking to {host}: {_short(exc)}"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
