"""Documents to send: files, stdin or URLs, checked and typed before anything is sent."""

from __future__ import annotations

import base64
import binascii
import os
import stat
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from retab_cli.errors import UsageError

MAX_INLINE = 32 * 1024 * 1024
SNIFF_BYTES = 4096

# Extensions whose type is certain enough that other bytes are a contradiction.
_STRICT = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_TEXT = {
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".xml": "application/xml",
    ".eml": "message/rfc822",
}
_NAMES = {
    "application/pdf": "a PDF",
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "image/tiff": "a TIFF image",
    "application/zip": "a ZIP archive",
    "text/plain": "text",
    "application/octet-stream": "unrecognised binary data",
}


@dataclass
class Document:
    """One document: where it comes from, the name and type sent, and how to read it."""

    label: str            # what the user gave (path, '-', or URL), for messages
    filename: str         # basename sent to the API
    mime_type: str
    size: int | None      # bytes, when known before reading
    url: str | None = None          # a URL sent as is (https:// or data:)
    path: Path | None = None        # a file read at send time
    data: bytes | None = None       # stdin, already read

    def data_url(self) -> str:
        """The `document.url` value: a remote URL as is, or the bytes inline."""
        if self.url is not None:
            return self.url
        content = self.data if self.data is not None else self._read()
        return f"data:{self.mime_type};base64,{base64.b64encode(content).decode()}"

    def _read(self) -> bytes:
        assert self.path is not None
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {self.label}: {exc.strerror}",
                             file=self.label) from None
        if len(content) > MAX_INLINE:
            raise _too_large(self.label)
        return content


def _too_large(label: str) -> UsageError:
    return UsageError(f"{label} is larger than 32 MiB, the limit for inline documents",
                      file=label, hint="upload it somewhere the API can fetch and pass "
                                       "--url https://...")


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes show, or None when they say nothing certain."""
    signatures = (
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"II*\x00", "image/tiff"),
        (b"MM\x00*", "image/tiff"),
        (b"PK\x03\x04", "application/zip"),
        (b"{\\rtf", "application/rtf"),
    )
    for magic, mime in signatures:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if _looks_like_text(head):
        return "text/plain"
    return None


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text; a byte that
        # can never be UTF-8 (even near the end) is not.
        return exc.reason == "unexpected end of data" and exc.start >= len(head) - 3
    return True


def decide_type(name: str, head: bytes, override: str | None, warn: Callable[[str], None],
                label: str) -> str:
    """The MIME type to send: --mime-type, else the bytes, refusing contradictions."""
    if override:
        return override
    ext = os.path.splitext(name)[1].lower()
    seen = sniff(head)
    expected = _STRICT.get(ext)
    if expected:
        container_ok = seen == "application/zip" and expected.startswith(
            "application/vnd.openxmlformats")
        if seen != expected and not container_ok:
            what = _NAMES.get(seen or "", "unrecognised data") if seen else "unrecognised data"
            raise UsageError(f"{label} is named {ext} but is not {_NAMES.get(expected, ext)} "
                             f"(its bytes look like {what})", file=label,
                             hint="pass --mime-type TYPE if you are sure")
        return expected
    if seen == "text/plain":
        return _TEXT.get(ext, "text/plain")
    if seen:
        return seen
    warn(f"warning: cannot tell the type of {label}; sending it as application/octet-stream "
         "(use --mime-type to set it)")
    return "application/octet-stream"


def from_path(path_text: str, *, filename: str | None, mime_type: str | None,
              warn: Callable[[str], None]) -> Document:
    path = Path(path_text)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path_text}", file=path_text) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path_text}: {exc.strerror}", file=path_text) from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{path_text} is a directory, not a document", file=path_text)
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{path_text} is not a regular file", file=path_text)
    if info.st_size == 0:
        raise UsageError(f"{path_text} is empty", file=path_text)
    if info.st_size > MAX_INLINE:
        raise _too_large(path_text)
    head = _head(path, path_text)
    name = os.path.basename(filename) if filename else path.name
    mime = decide_type(name, head, mime_type, warn, path_text)
    return Document(label=path_text, filename=name, mime_type=mime, size=info.st_size,
                    path=path)


def _head(path: Path, label: str) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise UsageError(f"cannot read {label}: {exc.strerror}", file=label) from None


def from_stdin(stream: BinaryIO, *, filename: str | None, mime_type: str | None,
               warn: Callable[[str], None]) -> Document:
    if not filename:
        raise UsageError("reading the document from stdin needs --filename NAME")
    data = stream.read(MAX_INLINE + 1)
    if len(data) > MAX_INLINE:
        raise _too_large("stdin")
    if not data:
        raise UsageError("the document on stdin is empty", file="-")
    mime = decide_type(filename, data[:SNIFF_BYTES], mime_type, warn, "stdin")
    return Document(label="-", filename=os.path.basename(filename), mime_type=mime,
                    size=len(data), data=data)


def from_url(url: str, *, filename: str | None, mime_type: str | None) -> Document:
    """An https:// URL the service fetches itself, or a data: URL passed through."""
    if url.startswith("data:"):
        return _from_data_url(url, filename=filename, mime_type=mime_type)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. "Invalid IPv6 URL"
        parts = urllib.parse.SplitResult("", "", "", "", "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"invalid --url {url!r}: expected https://... or data:...")
    if parts.username or parts.password:
        raise UsageError("invalid --url: credentials in the URL are not allowed")
    name = (os.path.basename(filename) if filename else None) or os.path.basename(
        urllib.parse.unquote(parts.path)) or parts.hostname
    guessed = _STRICT.get(os.path.splitext(name)[1].lower()) or _TEXT.get(
        os.path.splitext(name)[1].lower(), "application/octet-stream")
    return Document(label=url, filename=name, mime_type=mime_type or guessed, size=None,
                    url=url)


def _from_data_url(url: str, *, filename: str | None, mime_type: str | None) -> Document:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise UsageError("invalid data URL: expected data:<type>;base64,<data>")
    declared = header[len("data:"):-len(";base64")] or "application/octet-stream"
    try:
        content = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("invalid data URL: the data is not valid base64") from None
    if not content:
        raise UsageError("invalid data URL: the document is empty")
    if len(content) > MAX_INLINE:
        raise _too_large("the data URL")
    if not filename:
        raise UsageError("a data: URL needs --filename NAME")
    return Document(label="data URL", filename=os.path.basename(filename),
                    mime_type=mime_type or declared, size=len(content), url=url)
