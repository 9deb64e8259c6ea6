"""Big documents through Retab's files API: start a session, PUT the bytes, complete it.

The one module beside client.py that speaks HTTP: the bytes go to another host's signed
URL, on an httpx client of their own that carries no API key and no default headers,
follows no redirect and streams the file from disk. The JSON endpoints go through
`Client.request` (retries, request budget, typed errors) like every other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

# isort: off
# retab_cli.client first: it keeps httpx's own command line (click, rich) from loading.
from retab_cli.client import (
    MAX_ATTEMPTS,
    MAX_RETRY_AFTER,
    RETRY_STATUSES,
    Client,
    backoff,
    parse_retry_after,
    validate_id,
)
import httpx
# isort: on

from retab_cli.documents import Document, validate_file_id
from retab_cli.errors import (
    BadResponseError,
    NetworkError,
    NotFoundError,
    RejectedError,
    RetabError,
    ServerError,
    UsageError,
)
from retab_cli.urls import is_loopback

MAX_SESSIONS = 3             # upload sessions tried per document (410 starts another)
PUT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)  # per read/write, not for the whole PUT
METHODS = ("PUT", "POST")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

Progress = Callable[[int, int], None]
Notice = Callable[[str], None]
Sleep = Callable[[float], Awaitable[None]]


def _ignore(*_: object) -> None:
    return None


@dataclass
class UploadSession:
    """What `POST /v1/files/upload` answered, checked."""

    file_id: str
    url: str
    method: str
    headers: dict[str, str]
    expires_at: float | None  # epoch seconds; None when the server's time is unreadable


class _Expired(Exception):
    """The session can no longer take the bytes: start a new one."""


@dataclass
class _Failure:
    error: RetabError
    retry: bool
    delay: float | None = None


async def upload(client: Client, doc: Document, *, progress: Progress | None = None,
                 notice: Notice = _ignore, clock: Callable[[], float] = time.time,
                 sleep: Sleep = asyncio.sleep, allow_insecure_http: bool = False,
                 on_uploaded: Notice = _ignore) -> dict[str, str]:
    """Upload `doc` and return the MIMEData to send as a partition's `document`.

    `progress(bytes_sent, total)` follows the PUT (back to 0 when it restarts); `notice`
    gets one line per retry or new session; `clock` is wall time, as `expiresAt` is;
    `on_uploaded(file_id)` hears of the stored file once it is complete (a safe re-run
    names it with --file-id instead of uploading again).
    """
    if doc.url is not None or doc.size is None:
        raise ValueError(f"{doc.label} is a URL: only files and stdin are uploaded")
    job = _Upload(client, doc, progress or _ignore, notice, clock, sleep, allow_insecure_http)
    try:
        document, file_id = await job.run()
    except RetabError as exc:
        exc.file = exc.file or doc.label
        raise
    on_uploaded(file_id)
    return document


class _Upload:
    def __init__(self, client: Client, doc: Document, progress: Progress, notice: Notice,
                 clock: Callable[[], float], sleep: Sleep, allow_insecure_http: bool) -> None:
        self.client = client
        self.doc = doc
        self.total = doc.size or 0  # checked by upload()
        self.progress = progress
        self.notice = notice
        self.clock = clock
        self.sleep = sleep
        self.allow_insecure_http = allow_insecure_http

    async def run(self) -> tuple[dict[str, str], str]:
        for number in range(1, MAX_SESSIONS + 1):
            session = await self._start()
            try:
                await self._put(session)
                return await self._complete(session), session.file_id
            except _Expired as exc:
                if number == MAX_SESSIONS:
                    raise ServerError(f"the upload of {self.doc.label} failed: {exc} "
                                      f"({MAX_SESSIONS} upload sessions tried)") from None
                self.notice(f"upload of {self.doc.label}: {exc}; starting a new upload "
                            f"session ({number + 1}/{MAX_SESSIONS})")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _start(self) -> UploadSession:
        body: dict[str, Any] = {"filename": self.doc.filename,
                                "content_type": self.doc.mime_type, "size_bytes": self.total}
        # The checksum is sent when known already; otherwise the PUT computes it on the way
        # and `complete` carries it (one read of the file, not two).
        if self.doc.known_sha256:
            body["sha256"] = self.doc.known_sha256
        result = await self.client.request("POST", "/v1/files/upload", json_body=body,
                                           mutating=True)
        try:
            return parse_session(result.data, size=self.total, mask=self.client.mask,
                                 allow_insecure_http=self.allow_insecure_http)
        except BadResponseError as exc:
            exc.request_id = result.request_id
            raise

    async def _put(self, session: UploadSession) -> None:
        """PUT the bytes, retrying on the same URL while it is valid."""
        async with _storage_client(session.url) as http:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                failure = await self._put_once(http, session, attempt)
                if failure is None:
                    return
                if not failure.retry or attempt == MAX_ATTEMPTS:
                    raise _given_up(failure, attempt)
                delay = failure.delay if failure.delay is not None else backoff(attempt)
                if self._expired(session, delay):
                    raise _Expired(f"the upload URL expired ({failure.error.message})")
                self.notice(f"retrying the upload of {self.doc.label} in {delay:.1f}s "
                            f"(attempt {attempt + 1}/{MAX_ATTEMPTS}): {failure.error.message}")
                await self.sleep(delay)

    def _expired(self, session: UploadSession, after: float = 0.0) -> bool:
        return session.expires_at is not None and self.clock() + after >= session.expires_at

    async def _put_once(self, http: httpx.AsyncClient, session: UploadSession,
                        attempt: int) -> _Failure | None:
        self.progress(0, self.total)
        headers = {**session.headers, "Content-Length": str(self.total)}
        request = http.build_request(session.method, session.url, headers=headers,
                                     content=self._body())
        try:
            # Streamed and closed unread: the status is the answer (storage error bodies
            # are XML for people), and a huge one is never loaded.
            response = await http.send(request, stream=True)
            await response.aclose()
        except httpx.TransportError as exc:
            host = urllib.parse.urlsplit(session.url).netloc
            return _Failure(NetworkError(f"the upload to {host} broke off: {_short(exc)}"),
                            retry=True)
        return self._judge(response, session, attempt)

    async def _body(self) -> AsyncIterator[bytes]:
        """The file from byte 0, read off the event loop, one chunk in memory at a time."""
        chunks = self.doc.chunks()
        sent = 0
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                yield chunk
                sent += len(chunk)
                self.progress(sent, self.total)
        finally:
            with contextlib.suppress(ValueError):  # cancelled while a read was running
                chunks.close()

    def _judge(self, response: httpx.Response, session: UploadSession,
               attempt: int) -> _Failure | None:
        status = response.status_code
        if 200 <= status < 300:
            return None
        seen = f"the storage server answered HTTP {status} {response.reason_phrase}".rstrip()
        if status == 410:
            raise _Expired(f"the upload URL has expired (HTTP {status})")
        # A URL accepted before, or past its time, has expired; a first refusal is final.
        if status == 403 and (attempt > 1 or self._expired(session)):
            raise _Expired(f"the upload URL is no longer accepted (HTTP {status})")
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            return _Failure(ServerError(f"{seen}, a redirect to {where} (not followed)",
                                        status=status), retry=False)
        if status in RETRY_STATUSES:
            wait = parse_retry_after(response.headers)
            if wait is not None and wait > MAX_RETRY_AFTER:
                return _Failure(ServerError(f"{seen} and asks to wait {wait:.0f}s; not waiting "
                                            "that long", status=status), retry=False)
            return _Failure(ServerError(seen, status=status), retry=True, delay=wait)
        kind = RejectedError if status == 413 else ServerError
        error = kind(f"{seen}: the upload was refused", status=status)
        if status == 403:  # a first refusal: the signed URL itself (its signature) is bad
            error.hint = ("storage did not accept the signed upload URL the API gave; run "
                          "the command again for a new upload session")
        return _Failure(error, retry=False)

    async def _complete(self, session: UploadSession) -> dict[str, str]:
        sha256 = self.doc.sha256()  # the PUT computed it; no second read
        path = f"/v1/files/upload/{urllib.parse.quote(session.file_id, safe='')}/complete"
        try:
            result = await self.client.request("POST", path, json_body={"sha256": sha256},
                                               mutating=True)
        except RetabError as exc:
            raise self._completion_error(exc) from None
        return mime_data(result.data, request_id=result.request_id)

    def _completion_error(self, exc: RetabError) -> Exception:
        if exc.status == 410:
            return _Expired("the upload session expired before it was completed (HTTP 410)")
        if exc.status == 422:
            return RejectedError(
                f"the upload of {self.doc.label} was refused at completion: the server's copy "
                f"does not match the file's size or sha256 ({exc.message})",
                status=422, request_id=exc.request_id, file=self.doc.label,
                hint="did the file change while it was being sent? run the command again")
        return exc


def _given_up(failure: _Failure, attempts: int) -> RetabError:
    error = failure.error
    if failure.retry and attempts > 1:
        error.message = f"{error.message} (gave up after {attempts} attempts)"
    return error


def _storage_client(url: str) -> httpx.AsyncClient:
    """A client for the signed URL: no API key, no default headers, no redirects."""
    loopback = is_loopback(urllib.parse.urlsplit(url).hostname or "")
    http = httpx.AsyncClient(follow_redirects=False, trust_env=not loopback,
                             timeout=PUT_TIMEOUT)
    # httpx adds Accept, Accept-Encoding, Connection and User-Agent unless told not to:
    # a signed URL gets exactly the headers the session names (plus Host, Content-Length).
    for name in list(http.headers):
        del http.headers[name]
    return http


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ---- the API's answers ------------------------------------------------------------------------


def _bad(what: str) -> BadResponseError:
    return BadResponseError(f"unusable response: {what}")


def parse_session(data: Any, *, size: int, mask: Callable[[str], str] = str,
                  allow_insecure_http: bool = False) -> UploadSession:
    """Check `CreateFileUploadResponse` before anything is sent to its URL."""
    if not isinstance(data, dict):
        raise _bad("an upload session must be a JSON object")
    file_id, url = data.get("fileId"), data.get("uploadUrl")
    if not isinstance(file_id, str) or not _is_id(file_id):
        raise _bad("the upload session has no valid 'fileId'")
    if not isinstance(url, str):
        raise _bad("the upload session has no 'uploadUrl'")
    check_upload_url(url, allow_insecure_http=allow_insecure_http)
    method = data.get("uploadMethod") or "PUT"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _bad("the upload session's 'uploadMethod' is not PUT or POST")
    headers = _upload_headers(data.get("uploadHeaders") or {}, size, mask)
    return UploadSession(file_id, url, method.upper(), headers,
                         _timestamp(data.get("expiresAt")))


def _upload_headers(raw: Any, size: int, mask: Callable[[str], str]) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise _bad("the upload session's 'uploadHeaders' is not an object")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if not (isinstance(value, str) and _HEADER_NAME.fullmatch(name) and value.isascii()
                and value.isprintable()):
            raise _bad("the upload session's 'uploadHeaders' holds an invalid header")
        if mask(value) != value:
            raise _bad("the upload session asks to send the API key to the upload URL; "
                       "refusing")
        if name.lower() == "content-length":
            if value.strip() != str(size):
                raise _bad(f"the upload session expects {value} bytes; the file has {size}")
            continue  # set by the sender, once
        headers[name] = value
    return headers


def check_upload_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """https, or http to a loopback host only; never credentials in the URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _bad("the upload URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _bad("the upload URL is not an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise _bad("the upload URL carries credentials")
    if parts.scheme == "http" and not (is_loopback(parts.hostname) or allow_insecure_http):
        raise BadResponseError(
            f"refusing to upload over plain http to {parts.hostname}: the upload URL must be "
            "https (http is for loopback hosts only)")
    return url


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def mime_data(data: Any, *, request_id: str | None = None) -> dict[str, str]:
    """`MIMEData {filename, url}` as the partition's `document`, checked."""
    if (isinstance(data, dict) and isinstance(data.get("filename"), str)
            and isinstance(data.get("url"), str) and data["filename"] and data["url"]):
        return {"filename": data["filename"], "url": data["url"]}
    error = _bad("a MIMEData needs 'filename' and 'url' strings")
    error.request_id = request_id
    raise error


def _is_id(value: str) -> bool:
    try:
        validate_id(value)
    except UsageError:
        return False
    return True


async def document_from_file_id(client: Client, file_id: str) -> dict[str, str]:
    """The `document` for a stored file: its link's `mime_data`, else {filename, url}."""
    path = f"/v1/files/{urllib.parse.quote(validate_file_id(file_id), safe='')}/download-link"
    try:
        result = await client.request("GET", path)
    except NotFoundError as exc:
        exc.message = f"file {file_id}: {exc.message}"
        exc.hint = exc.hint or "files belong to the API key that uploaded them"
        raise
    data = result.data
    if isinstance(data, dict) and data.get("mime_data") is not None:
        return mime_data(data["mime_data"], request_id=result.request_id)
    if isinstance(data, dict):
        link = {"filename": data.get("filename"), "url": data.get("download_url")}
        with contextlib.suppress(BadResponseError):
            return mime_data(link)
    error = _bad("a file link needs 'mime_data', or 'filename' and 'download_url'")
    error.request_id = result.request_id
    raise error
