"""Read each document once: sha256, size, mtime, type and page count, in bounded memory.

Page counts follow what the service bills (docs/design.md §10): PDFs through pypdf, text split
on form feeds (a trailing form feed opens no page, as the emulator counts), one page for
an image. Office documents (docx, xlsx, pptx) count 1 page: their page count is only
known once rendered, so the estimate is a lower bound for them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from retab_cli import documents
from retab_cli.errors import UsageError

CHUNK = 1024 * 1024
# Larger documents are refused locally: the emulator's default --max-upload (§11).
MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024
_TEXT_TYPES = ("application/json", "application/xml", "message/rfc822")

# pypdf reports recoverable damage through logging; the page count or the error says enough.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Digest:
    sha256: str      # 64 hex characters
    size: int        # bytes read
    mtime_ns: int
    mime_type: str
    pages: int


@dataclass(frozen=True)
class LocalError:
    """Why a document is not sent: a code for the report and a one-line message."""

    code: str
    message: str


def hash_document(path: Path, label: str, *,
                  max_bytes: int = MAX_DOCUMENT_BYTES) -> Digest | LocalError:
    """Digest one file; any reason it cannot be sent comes back as a LocalError."""
    try:
        # Non-blocking, so a FIFO put where a file was is refused instead of waiting.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            return _digest(fh, label, max_bytes)
    except OSError as exc:
        return LocalError("unreadable", f"cannot read {label}: {exc.strerror or exc}")


def _digest(fh: BinaryIO, label: str, max_bytes: int) -> Digest | LocalError:
    info = os.fstat(fh.fileno())
    if not stat.S_ISREG(info.st_mode):
        return LocalError("not_regular", f"{label} is not a regular file")
    if info.st_size == 0:
        return LocalError("empty", f"{label} is empty")
    if info.st_size > max_bytes:
        return LocalError("too_large", f"{label} is {info.st_size} bytes, over the "
                                       f"{max_bytes}-byte limit for a document")
    head = fh.read(documents.SNIFF_BYTES)
    mime = _mime_type(label, head)
    if isinstance(mime, LocalError):
        return mime
    sha, size, form_feeds = _stream(fh, head)
    if size == 0:
        return LocalError("empty", f"{label} is empty")
    pages = _pages(fh, label, mime, form_feeds)
    if isinstance(pages, LocalError):
        return pages
    return Digest(sha, size, info.st_mtime_ns, mime, pages)


def _mime_type(label: str, head: bytes) -> str | LocalError:
    unknown: list[str] = []
    try:
        mime = documents.decide_type(label, head, None, unknown.append, label)
    except UsageError as exc:
        return LocalError("type_mismatch", exc.message)
    if unknown:
        return LocalError("unsupported_type", f"{label}: cannot tell its type (not a PDF, "
                                              "an image or text)")
    return mime


class _FormFeeds:
    """Pages of text as the emulator counts them: form feeds + 1, less a blank last page."""

    def __init__(self) -> None:
        self.count = 0
        self.tail_blank = True   # nothing but whitespace since the last form feed

    def feed(self, block: bytes) -> None:
        last = block.rfind(b"\f")
        if last < 0:
            self.tail_blank = self.tail_blank and not block.strip()
            return
        self.count += block.count(b"\f")
        self.tail_blank = not block[last + 1:].strip()

    @property
    def pages(self) -> int:
        return self.count if self.count and self.tail_blank else self.count + 1


def _stream(fh: BinaryIO, head: bytes) -> tuple[str, int, _FormFeeds]:
    sha = hashlib.sha256()
    feeds = _FormFeeds()
    size = 0
    block = head
    while block:
        sha.update(block)
        feeds.feed(block)
        size += len(block)
        block = fh.read(CHUNK)
    return sha.hexdigest(), size, feeds


def _pages(fh: BinaryIO, label: str, mime: str, feeds: _FormFeeds) -> int | LocalError:
    if mime == "application/pdf":
        fh.seek(0)
        return _pdf_pages(fh, label)
    if mime.startswith("text/") or mime in _TEXT_TYPES:
        return feeds.pages
    return 1


def _pdf_pages(fh: BinaryIO, label: str) -> int | LocalError:
    import pypdf

    try:
        reader = pypdf.PdfReader(fh)
        if reader.is_encrypted and not reader.decrypt(""):
            return LocalError("encrypted_pdf", f"{label} is an encrypted PDF")
        count = len(reader.pages)
    except Exception as exc:  # pypdf raises many types on damaged files
        return LocalError("unreadable_pdf", f"unreadable PDF {label}: {_one_line(exc)}")
    if count == 0:
        return LocalError("unreadable_pdf", f"unreadable PDF {label}: it has no pages")
    return count


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
