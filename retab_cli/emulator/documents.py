"""Turning a create request's `document.url` into bytes and a MIME type.

Three outcomes, matching what the real service plausibly does:
- a malformed URL (bad data URL, bad base64, an unsupported scheme) is refused at
  validation time: `DocumentUrlError`, a 422 with FastAPI's error shape;
- an inline document over 32 MiB decoded is refused with a 413: `DocumentTooLarge`;
- anything found while fetching (a host the emulator will not reach, a failed fetch,
  a remote document over the cap; see fetch.py) is the run's own failure:
  `DocumentFailure`, a 201 whose partition has `status: failed` and a `PrimitiveError`.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from retab_cli.urls import is_loopback

MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
GENERIC_MIME = "application/octet-stream"

_WHITESPACE = re.compile(rb"\s+")


class DocumentUrlError(ValueError):
    """The URL cannot be a document: the request is invalid (422)."""


class DocumentTooLarge(Exception):
    """An inline document decodes to more than the cap (413)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the inline document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")
        self.size = size


class DocumentFailure(Exception):
    """The run fails with this PrimitiveError code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Document:
    data: bytes
    mime_type: str


@dataclass(frozen=True)
class StoredDocument:
    """One of the emulator's own uploaded files, read from disk."""

    path: Path
    mime_type: str  # as declared at upload
    file_id: str


@dataclass(frozen=True)
class RemoteUrl:
    url: str
    loopback: bool

    @property
    def port(self) -> int:
        parts = urllib.parse.urlsplit(self.url)
        return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def parse_document_url(url: str) -> Document | RemoteUrl:
    """Decode a data URL now; leave an http(s) URL for `fetch`."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _decode_data_url(url)
    if scheme in ("http", "https"):
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 (raises on a port that is not one)
        except ValueError:  # `http://[zz/`, `http://host:99999/`
            raise DocumentUrlError("the document URL has an invalid host or port") from None
        if not parts.hostname:
            raise DocumentUrlError("the document URL has no host")
        return RemoteUrl(url=url, loopback=is_loopback(parts.hostname))
    raise DocumentUrlError("the document URL must be a data: URL or an http(s) URL")


def _decode_data_url(url: str) -> Document:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise DocumentUrlError("the data URL has no comma before its payload")
    params = [p.strip() for p in header.split(";")]
    mime = params[0].lower()
    if mime and not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", mime):
        raise DocumentUrlError(f"the data URL has an invalid media type: {params[0][:100]!r}")
    if "base64" in (p.lower() for p in params[1:]):
        data = _decode_base64(payload)
    else:
        data = urllib.parse.unquote_to_bytes(payload)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise DocumentTooLarge(len(data))
    return Document(data=data, mime_type=mime)


def _decode_base64(payload: str) -> bytes:
    raw = _WHITESPACE.sub(b"", payload.encode("ascii", errors="replace"))
    # Refuse before decoding: 4 base64 characters carry 3 bytes.
    estimate = len(raw) * 3 // 4 - raw[-2:].count(b"=")
    if estimate > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(estimate)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DocumentUrlError(f"the data URL's base64 payload is invalid: {exc}") from None


def sniff(data: bytes) -> str | None:
    """The MIME type the bytes announce, for the formats the partitioner knows."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


def reported_mime(declared: str, data: bytes, filename: str) -> str:
    """`file.mime_type`: the declared type, else what the bytes or the name say."""
    if declared and declared != GENERIC_MIME:
        return declared
    guessed = sniff(data) or mimetypes.guess_type(filename)[0]
    return guessed or declared or GENERIC_MIME
