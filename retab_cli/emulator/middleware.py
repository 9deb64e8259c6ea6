"""Pure ASGI middleware, outermost first: request id, request log, scripted faults,
injected latency and errors, authentication, rate limit.

Pure ASGI (no BaseHTTPMiddleware) keeps the hot path to a few function calls and
lets faults send half a body or close the connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retab_cli.emulator.faults import ErrorDice, Fault, FaultQueue, RateLimiter, retry_after_header

TRANSPORT_KEY = "retab.transport"  # set by server.py's protocol: the connection's transport
OWNER_KEY = "retab.owner"
API_KEY_KEY = "retab.api_key"
REQUEST_LOG_CAP = 10_000
LOGGED_BODY_CAP = 256 * 1024
SECRET_HEADERS = (b"authorization", b"api-key")
_DRIP_PIECES = 10


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def owner_of(api_key: str) -> str:
    """The partitions' owner: a digest, so the database never holds keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def json_error(status: int, detail: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> list[Message]:
    body = json.dumps({"detail": detail}).encode()
    return _messages(status, body, b"application/json", headers)


def structured(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


def _messages(
    status: int, body: bytes, content_type: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> list[Message]:
    start_headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": start_headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


async def _send_all(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)


class RequestId:
    """Every response, errors and unknown routes included, gets `x-request-id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ("req_" + secrets.token_hex(12)).encode()
        scope["retab.request_id"] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestLog:
    """The last /v1 requests, oldest first, with secrets masked."""

    def __init__(self, cap: int = REQUEST_LOG_CAP) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=cap)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class LogRequests:
    """Record /v1 requests: method, path, query, headers, parsed body, final status."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        body = b""
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            # Read the body first so it is logged even when a fault or 401 answers.
            body, receive = await _buffer_body(receive)
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.log.append(_log_entry(scope, body, status))


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _log_entry(scope: Scope, body: bytes, status: int | None) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        text = value.decode("latin-1")
        headers[name.decode("latin-1").lower()] = _mask(text) if name.lower() in SECRET_HEADERS else text
    return {
        "method": scope["method"],
        "path": scope["path"],
        "query": dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
        "headers": headers,
        "body": _parse_body(body),
        "status": status,
        "request_id": scope.get("retab.request_id"),
    }


def _mask(value: str) -> str:
    scheme, _, secret = value.rpartition(" ")
    masked = "****" + secret[-4:]
    return f"{scheme} {masked}" if scheme else masked


def _parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    # Keep the log small: big inline documents are cut to a prefix.
    return _shorten(parsed) if len(body) > LOGGED_BODY_CAP else parsed


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 1024:
        return value[:1024] + f"...(+{len(value) - 1024} chars)"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    return value


class ScriptedFaults:
    """Apply faults added through the control API to matching requests."""

    def __init__(self, app: ASGIApp, faults: FaultQueue) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.faults or path.startswith("/_emulator/"):
            await self.app(scope, receive, send)
            return
        fault = self.faults.take(scope["method"], path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        await self._apply(fault, scope, receive, send)

    async def _apply(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            await _close_connection(scope, receive)
            return
        plain = fault.status is None and not (fault.headers or fault.slow or fault.truncate)
        if plain:
            await self.app(scope, receive, send)
            return
        messages = (
            _fault_response(fault) if fault.status is not None else await _capture(self.app, scope, receive)
        )
        start, body = messages[0], b"".join(m.get("body", b"") for m in messages[1:])
        if fault.headers:
            extra = [
                (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in fault.headers.items()
            ]
            replaced = {name for name, _ in extra}
            start["headers"] = [h for h in start.get("headers", ()) if h[0].lower() not in replaced] + extra
        await send(start)
        if fault.truncate:
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            await _close_connection(scope, receive)
        elif fault.slow:
            await _drip(send, body, fault.slow)
        else:
            await send({"type": "http.response.body", "body": body, "more_body": False})


def _fault_response(fault: Fault) -> list[Message]:
    assert fault.status is not None
    if isinstance(fault.body, str):
        return _messages(fault.status, fault.body.encode(), b"text/html; charset=utf-8")
    if fault.body is None:
        if fault.status < 400:
            return _messages(fault.status, b"", b"application/json")
        detail = structured("emulated_fault", f"fault injected by the emulator (HTTP {fault.status})")
        return json_error(fault.status, detail)
    return _messages(fault.status, json.dumps(fault.body).encode(), b"application/json")


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> list[Message]:
    messages: list[Message] = []

    async def keep(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, keep)
    return messages


async def _drip(send: Send, body: bytes, seconds: float) -> None:
    pieces = max(1, min(_DRIP_PIECES, len(body)))
    size = -(-len(body) // pieces) if body else 0
    for index in range(pieces):
        await asyncio.sleep(seconds / pieces)
        chunk = body[index * size : (index + 1) * size]
        await send({"type": "http.response.body", "body": chunk, "more_body": index < pieces - 1})


async def _close_connection(scope: Scope, receive: Receive) -> None:
    """Close the TCP connection (through the transport the protocol put in the scope)
    and wait until the server has noticed, so it does not answer with a 500."""
    transport = scope.get(TRANSPORT_KEY)
    if transport is None:
        raise RuntimeError("this server cannot drop connections (no transport in the scope)")
    transport.close()
    while (await receive())["type"] != "http.disconnect":
        pass


class InjectedFaults:
    """`--latency` and `--error-rate` on /v1 requests."""

    def __init__(self, app: ASGIApp, latency_s: float, dice: ErrorDice, error_status: int) -> None:
        self.app = app
        self.latency_s = latency_s
        self.dice = dice
        self.error_status = error_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if self.dice.roll():
            headers = [(b"retry-after", b"1")] if self.error_status in (429, 503) else []
            detail = structured(
                "emulated_error", f"error injected by --error-rate (HTTP {self.error_status})"
            )
            await _send_all(send, json_error(self.error_status, detail, headers))
            return
        await self.app(scope, receive, send)


class Authenticate:
    """`Authorization: Bearer <key>` or `Api-Key: <key>` on /v1; both must agree."""

    def __init__(self, app: ASGIApp, api_keys: Iterable[str]) -> None:
        self.app = app
        self.owners = {key: owner_of(key) for key in api_keys}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        bearer: str | None = None
        api_key: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                bearer = token.strip() if scheme.lower() == "bearer" else ""
            elif name == b"api-key":
                api_key = value.decode("latin-1").strip()
        problem = _auth_problem(bearer, api_key)
        key = bearer or api_key or ""
        if problem is None and key not in self.owners:
            problem = "Invalid API key"
        if problem is not None:
            await _send_all(send, json_error(401, problem, [(b"www-authenticate", b"Bearer")]))
            return
        scope[API_KEY_KEY] = key
        scope[OWNER_KEY] = self.owners[key]
        await self.app(scope, receive, send)


def _auth_problem(bearer: str | None, api_key: str | None) -> str | None:
    if bearer is None and api_key is None:
        return "Not authenticated: send Authorization: Bearer <key> or Api-Key: <key>"
    if bearer == "":
        return "Invalid authorization header: expected Bearer <key>"
    if bearer is not None and api_key is not None and bearer != api_key:
        return "Authorization and Api-Key headers carry different keys"
    return None


class LimitRate:
    """`--rate-limit N/S` per API key: 429 with Retry-After beyond it."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = scope.get(OWNER_KEY) if scope["type"] == "http" else None
        if owner is None:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.acquire(owner)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        limit = self.limiter.limit
        retry_after = retry_after_header(wait)
        detail = structured(
            "rate_limited",
            f"rate limit exceeded: {limit.requests} requests per {limit.period_s:g} s",
            {"limit": limit.requests, "period_s": limit.period_s, "retry_after_s": int(retry_after)},
        )
        await _send_all(send, json_error(429, detail, [(b"retry-after", retry_after.encode())]))
