"""Documents to send: files, stdin or URLs, checked and typed before anything is sent."""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import stat
import urllib.parse
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from retab_cli.errors import UsageError
from retab_cli.parsing import UPLOAD_MODES as UPLOAD_MODES  # re-exported: the engine's list

MAX_BODY = 32 * 1024 * 1024      # the API's cap on a whole JSON request body
MAX_UPLOAD = 5 * 1024 ** 3       # the largest local file uploaded (one signed PUT, as S3 allows)
MAX_STDIN = MAX_BODY             # stdin is held in memory: read at most this much
ENVELOPE = 16 * 1024             # allowance for the body's other fields (key, instructions, ...)
SNIFF_BYTES = 4096
CHUNK = 256 * 1024  # bytes read at a time when streaming a file
MIB = 1024 * 1024


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
    """One document: where it comes from, the name and type sent, and how to read it.

    A file is kept as its path and size and read at send time: whole only when it goes
    inline (under the body cap), in chunks when it is uploaded.
    """

    label: str            # what the user gave (path, '-', or URL), for messages
    filename: str         # basename sent to the API
    mime_type: str
    size: int | None      # bytes, when known before reading
    url: str | None = None          # a URL sent as is (https:// or data:)
    path: Path | None = None        # a file read at send time
    data: bytes | None = None       # stdin, already read
    file_id: str | None = None      # a file stored by the files API (--file-id)
    _sha256: str | None = field(default=None, repr=False, compare=False)
    _hasher: Any = field(default=None, repr=False, compare=False)
    _hashed: int = field(default=0, repr=False, compare=False)  # bytes fed to _hasher

    def data_url(self) -> str:
        """The `document.url` value: a remote URL as is, or the bytes inline."""
        if self.url is not None:
            return self.url
        # The document field alone over the cap can never be sent inline (the planner,
        # which knows the whole body, normally refuses earlier).
        if inline_body_size(self, envelope=0) > MAX_BODY:
            raise _too_large_inline(self, inline_body_size(self, envelope=0))
        content = self.data if self.data is not None else b"".join(self.chunks())
        return self._data_url_prefix() + base64.b64encode(content).decode()

    def _data_url_prefix(self) -> str:
        return f"data:{self.mime_type};base64,"

    @property
    def known_sha256(self) -> str | None:
        """The SHA-256 if it has been computed already (a full read or upload did it)."""
        return self._sha256

    def sha256(self) -> str:
        """The SHA-256 of the bytes, computed once: by an earlier full pass, or now."""
        if self._sha256 is None:
            for _ in self.chunks():
                pass
        assert self._sha256 is not None
        return self._sha256

    def chunks(self, chunk_size: int = CHUNK) -> Generator[bytes, None, None]:
        """The bytes from the first one, `chunk_size` at a time, hashed on the way.

        Each byte is hashed once over all passes: a pass restarted from byte 0 (an
        upload retry) only hashes what earlier passes did not reach.
        """
        with self._open() as source:
            total = self._size()
            offset = 0
            while offset < total:
                chunk = source.read(min(chunk_size, total - offset))
                if not chunk:
                    raise self._changed()
                self._hash(offset, chunk)
                offset += len(chunk)
                yield chunk
            if source.read(1):
                raise self._changed()

    def _hash(self, offset: int, chunk: bytes) -> None:
        end = offset + len(chunk)
        if self._sha256 is not None or end <= self._hashed:
            return
        if self._hasher is None:
            import hashlib

            self._hasher = hashlib.sha256()
        self._hasher.update(memoryview(chunk)[self._hashed - offset:])
        self._hashed = end
        if end == self.size:
            self._sha256 = self._hasher.hexdigest()
            self._hasher = None

    def _open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path is None:
            raise ValueError(f"{self.label} is a URL: there are no bytes to read")
        try:
            # Unbuffered: what was read is what the file held, no read-ahead copy.
            source = self.path.open("rb", buffering=0)
        except OSError as exc:
            raise UsageError(f"cannot read {self.label}: {exc.strerror}",
                             file=self.label) from None
        if os.fstat(source.fileno()).st_size != self.size:
            source.close()
            raise self._changed()
        return source

    def _size(self) -> int:
        if self.size is None:
            raise ValueError(f"{self.label} has no known size")
        return self.size

    def _changed(self) -> UsageError:
        return UsageError(f"{self.label} changed while it was being read "
                          f"(it had {self.size} bytes when checked)", file=self.label,
                          hint="run the command again once the file is complete")


def inline_body_size(doc: Document, envelope: int = ENVELOPE) -> int:
    """The bytes of a create body carrying `doc` inline, as the client encodes JSON.

    Exact for the `document` field (base64 is 4 bytes per 3, rounded up; the name and
    type as ASCII-escaped JSON); `envelope` stands for the encoded object of the other
    fields (pass its exact length to make the total exact).
    """
    encoded = 4 * ((doc._size() + 2) // 3)
    head = ('{"document":{"filename":' + json.dumps(doc.filename)
            + ',"url":' + json.dumps(doc._data_url_prefix())[:-1])
    return len(head) + encoded + len('"}') + envelope


def plan_transport(doc: Document, upload_mode: str, *, envelope: int = ENVELOPE) -> str:
    """How `doc` travels: "url" (sent as is), "file" (a stored file, --file-id), "inline"
    (in the body) or "upload".

    auto: inline while the body stays under the API's cap, uploaded above it; always:
    uploaded; never: inline, refused when too big for it.
    """
    if upload_mode not in UPLOAD_MODES:
        raise UsageError(f"--upload must be one of auto, always, never (got {upload_mode!r})")
    if doc.url is not None:
        return "url"
    if doc.file_id is not None:
        return "file"
    body = inline_body_size(doc, envelope)
    if upload_mode == "always" or (upload_mode == "auto" and body > MAX_BODY):
        return "upload"
    if body > MAX_BODY:
        raise _too_large_inline(doc, body)
    return "inline"


def bytes_held(doc: Document, transport: str) -> int:
    """The bytes of `doc` in memory while it is sent by `transport`: all of it inline, one
    chunk at a time when uploaded (a big file does not wait for others), none by URL or
    stored file."""
    if transport == "inline":
        return doc.size or 0
    return CHUNK if transport == "upload" else 0


def _too_large_inline(doc: Document, body: int) -> UsageError:
    return UsageError(
        f"{doc.label} would make a {body / MIB:.1f} MiB request body inline (base64), over "
        "the API's 32 MiB limit", file=doc.label,
        hint="use --upload auto to send it through the files API, or pass --url https://... "
             "to a copy the API can fetch")


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
    if info.st_size > MAX_UPLOAD:
        raise UsageError(f"{path_text} is larger than 5 GiB, the largest document this tool "
                         "uploads", file=path_text,
                         hint="pass --url https://... to a copy the API can fetch")
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
    # A pipe cannot be read twice (an upload may restart), so stdin is held in memory.
    data = stream.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise UsageError("stdin holds more than 32 MiB, the most read from stdin", file="-",
                         hint="save it to a file and pass its path (big files are uploaded)")
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
    if len(url) > MAX_BODY:
        raise UsageError("the data URL is larger than 32 MiB, the API's limit for a request "
                         "body", hint="save the document to a file and pass its path "
                                      "(big files are uploaded)")
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
    if not filename:
        raise UsageError("a data: URL needs --filename NAME")
    return Document(label="data URL", filename=os.path.basename(filename),
                    mime_type=mime_type or declared, size=len(content), url=url)


def validate_file_id(value: str) -> str:
    """The id rule of docs/design.md §5, said of a file."""
    from retab_cli.parsing import validate_id

    try:
        return validate_id(value)
    except UsageError as exc:
        exc.message = exc.message.replace("invalid partition id", "invalid file id", 1)
        exc.args = (exc.message,)
        raise


def from_file_id(file_id: str) -> Document:
    """A file the files API already holds: its name and type come with its link."""
    validate_file_id(file_id)
    return Document(label=file_id, filename=file_id, mime_type="", size=None, file_id=file_id)
