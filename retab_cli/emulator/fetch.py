"""Fetching a document URL on loopback (the only hosts the emulator reaches).

Fetches run on the event loop, not in worker threads, under one deadline for the
whole fetch (connect, headers and body: a server dripping a byte a second cannot
hold one for ever), and at most `FETCHES_PER_KEY` at a time per API key: one key's
slow document server delays that key's creates only, never another key's.

The emulator never fetches itself (any loopback address on its own port): its
control API would hand one key another key's request log, and its stored files
are read from disk instead (files.py).
"""

from __future__ import annotations

import asyncio

import httpx

from retab_cli.emulator.documents import MAX_DOCUMENT_BYTES, Document, DocumentFailure, RemoteUrl
from retab_cli.emulator.keyed import KeyedLocks

FETCHES_PER_KEY = 4


class Fetcher:
    def __init__(self, deadline_s: float, per_key: int = FETCHES_PER_KEY) -> None:
        self.deadline_s = deadline_s
        self._slots = KeyedLocks(size=per_key)

    async def fetch(self, owner: str, remote: RemoteUrl, own_port: int | None) -> Document:
        """The document's bytes and type, or DocumentFailure saying why not."""
        if not remote.loopback:
            raise DocumentFailure(
                "remote_fetch_unsupported",
                "the emulator only fetches documents from loopback hosts; send the bytes as a data URL",
            )
        if remote.port == own_port:
            raise DocumentFailure("self_fetch_refused", "the emulator does not fetch its own URLs")
        async with self._slots.hold(("fetch", owner)):
            try:
                async with asyncio.timeout(self.deadline_s):
                    return await _get(remote.url)
            except TimeoutError:
                raise DocumentFailure(
                    "remote_fetch_timeout", f"fetching the document took longer than {self.deadline_s:g} s"
                ) from None


async def _get(url: str) -> Document:
    # No redirects (one could lead off loopback), no proxy, no environment settings.
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=None) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code >= 300:
                    raise DocumentFailure(
                        "remote_fetch_failed", f"fetching the document gave HTTP {response.status_code}"
                    )
                data = await _read_capped(response)
                content_type = response.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise DocumentFailure("remote_fetch_failed", f"fetching the document failed: {exc}") from None
    return Document(data=data, mime_type=content_type.split(";")[0].strip().lower())


async def _read_capped(response: httpx.Response) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise DocumentFailure("document_too_large", f"the document is over {MAX_DOCUMENT_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)
