"""Pure ASGI middleware, outermost first: request id, request log, body cap, scripted
faults, injected latency and errors, authentication, rate limit.

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

from retab_cli.emulator.documents import Document, DocumentTooLarge, DocumentUrlError, parse_document_url
from retab_cli.emulator.faults import ErrorDice, Fault, FaultQueue, RateLimiter, retry_after_header

TRANSPORT_KEY = "retab.transport"  # set by server.py's protocol: the connection's transport
OWNER_KEY = "retab.owner"
API_KEY_KEY = "retab.api_key"
REQUEST_LOG_CAP = 10_000
MAX_BODY_BYTES = 32 * 1024 * 1024  # the real API's cap on a request body (Cloud Run's)
STORAGE_PREFIX = "/_storage/"  # the signed upload and download URLs: "another host"
SECRET_HEADERS = (b"authorization", b"api-key")
SECRET_PARAMS = ("signature",)
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_DRIP_PIECES = 10


def is_api_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def is_storage_path(path: str) -> bool:
    return path.startswith(STORAGE_PREFIX)


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
    """Record /v1 and storage requests: method, path, query, headers, body, final status.

    The body is seen as the app reads it (the body cap inside has read it whole by
    then, except for uploads, whose bytes are counted and never kept), and document
    bytes are never stored: data URLs are logged as their size and sha256.
    """

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (is_api_path(scope["path"]) or is_storage_path(scope["path"])):
            await self.app(scope, receive, send)
            return
        tap = _BodyTap(receive, keep=not is_storage_path(scope["path"]))
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, tap.receive, send_noting_status)
        finally:
            self.log.append(_log_entry(scope, tap, status))


class _BodyTap:
    """Counts the request body as it passes, keeping a copy only when asked."""

    def __init__(self, receive: Receive, keep: bool) -> None:
        self._receive = receive
        self.keep = keep
        self.parts: list[bytes] = []
        self.size = 0
        self.complete = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.keep and self.size <= MAX_BODY_BYTES:
                self.parts.append(chunk)
            else:
                self.keep, self.parts = False, []
            self.complete = not message.get("more_body", False)
        return message

    def body(self) -> bytes | None:
        return b"".join(self.parts) if self.keep and self.complete else None


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body; BodyTooLarge as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then whatever the connection says next."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes, the API's limit")
        self.limit = limit


class LimitBody:
    """413 for a body over the cap, told by Content-Length or found while reading.

    Routes then get the body whole, read once. Storage paths are left alone: an
    upload streams to disk under its own limit (`--max-upload`).
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS or is_storage_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            if (declared_length(scope) or 0) > self.limit:
                raise BodyTooLarge(self.limit)
            body = await read_body(receive, self.limit)
        except BodyTooLarge as exc:
            await _send_all(send, too_large(str(exc), exc.limit))
            return
        await self.app(scope, replay(body, receive), send)


def declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def too_large(message: str, limit: int) -> list[Message]:
    """The 413; the connection closes after it, so the rest of the body is never read."""
    hint = "; send big documents through /v1/files/upload"
    detail = structured("document_too_large", message + hint, {"limit": limit})
    return json_error(413, detail, [(b"connection", b"close")])


def _log_entry(scope: Scope, tap: _BodyTap, status: int | None) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        text = value.decode("latin-1")
        headers[name.decode("latin-1").lower()] = _mask(text) if name.lower() in SECRET_HEADERS else text
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    body = tap.body()
    return {
        "method": scope["method"],
        "path": scope["path"],
        "query": {k: _mask(v) if k in SECRET_PARAMS else v for k, v in query},
        "headers": headers,
        "body": _parse_body(body) if body is not None else None,
        "body_bytes": tap.size,
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
    return _redact(parsed)


def _redact(value: Any) -> Any:
    """No document bytes in the log: data URLs become their size and digest, and other
    long strings are cut to a prefix."""
    if isinstance(value, str):
        if value[:5].lower() == "data:":
            return _data_url_summary(value)
        return value if len(value) <= 1024 else value[:1024] + f"...(+{len(value) - 1024} chars)"
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _data_url_summary(url: str) -> str:
    """`data:application/pdf;base64,<5342 bytes; sha256 9f86...>`."""
    header = url.partition(",")[0][:200]
    try:
        document = parse_document_url(url)
    except (DocumentUrlError, DocumentTooLarge):
        return f"{header},<{len(url)} characters, not a valid data URL>"
    assert isinstance(document, Document)
    return f"{header},<{len(document.data)} bytes; sha256 {hashlib.sha256(document.data).hexdigest()}>"


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
        if fault.drop_after is not None:
            receive = _dropping_after(scope, receive, fault.drop_after)
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


def _dropping_after(scope: Scope, receive: Receive, limit: int) -> Receive:
    """A receive that closes the connection once `limit` body bytes have passed (an
    upload cut off mid-stream); the app then sees the client disconnect."""
    seen = 0

    async def receive_until_dropped() -> Message:
        nonlocal seen
        if seen >= limit:
            await _close_connection(scope, receive)
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if seen + len(body) > limit:
                message = {**message, "body": body[: limit - seen], "more_body": True}
            seen += len(message["body"])
        return message

    return receive_until_dropped


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
