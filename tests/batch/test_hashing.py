"""Hashing: sha256, size, mtime and pages streamed; bad documents are local errors."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest
from pypdf import PdfWriter

from retab_cli import documents
from retab_cli.batch import hashing
from retab_cli.batch.hashing import Digest, LocalError, hash_document

from cli_support import SAMPLE_PDF


def digest_of(path: Path, mime: str, pages: int) -> Digest:
    data = path.read_bytes()
    return Digest(hashlib.sha256(data).hexdigest(), len(data), path.stat().st_mtime_ns,
                  mime, pages)


def test_a_pdf_counts_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "invoices.pdf"
    path.write_bytes(SAMPLE_PDF.read_bytes())
    assert hash_document(path, "invoices.pdf") == digest_of(path, "application/pdf", 7)


@pytest.mark.parametrize(("text", "pages"), [
    ("one page", 1),
    ("a\fb\fc", 3),
    ("a\fb\f", 2),          # a trailing form feed opens no page (as the service counts)
    ("a\fb\f \n", 2),       # nor one followed by blanks only
    ("a\f\fc", 3),          # an empty page between two is a page
    ("\f", 1),
])
def test_text_pages_are_form_feeds_plus_one(tmp_path: Path, text: str, pages: int) -> None:
    path = tmp_path / "doc.txt"
    path.write_text(text)
    assert hash_document(path, "doc.txt") == digest_of(path, "text/plain", pages)


def test_form_feeds_across_read_blocks_count_the_same(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.txt"
    path.write_text("page one\f" * 40 + "last\f  \f\n")
    whole = hash_document(path, "long.txt")
    monkeypatch.setattr(hashing, "CHUNK", 3)
    monkeypatch.setattr(documents, "SNIFF_BYTES", 5)
    assert hash_document(path, "long.txt") == whole
    assert isinstance(whole, Digest) and whole.pages == 42


def test_an_image_is_one_page_and_json_is_text(tmp_path: Path) -> None:
    png = tmp_path / "scan.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert hash_document(png, "scan.png") == digest_of(png, "image/png", 1)
    data = tmp_path / "data.json"
    data.write_text('{"a": 1}\f{"b": 2}')
    assert hash_document(data, "data.json") == digest_of(data, "application/json", 2)


def test_hashing_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with path.open("wb") as fh:
        for _ in range(16):
            fh.write(b"x" * (1024 * 1024 - 1) + b"\f")
    tracemalloc.start()
    try:
        result = hash_document(path, "big.txt")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, Digest) and result.size == 16 * 1024 * 1024
    assert result.pages == 16
    assert peak < 4 * 1024 * 1024  # a few 1 MiB blocks, never the 16 MiB file


def encrypted_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "content", "code", "message"), [
    ("empty.pdf", b"", "empty", "empty.pdf is empty"),
    ("corrupt.pdf", b"%PDF-1.4\nnot really a PDF",
     "unreadable_pdf", "unreadable PDF corrupt.pdf: Stream has ended unexpectedly"),
    ("half.pdf", SAMPLE_PDF.read_bytes()[:3000],
     "unreadable_pdf", "unreadable PDF half.pdf: Stream has ended unexpectedly"),
    ("locked.pdf", encrypted_pdf(), "encrypted_pdf", "locked.pdf is an encrypted PDF"),
    ("fake.pdf", b"plain text", "type_mismatch",
     "fake.pdf is named .pdf but is not a PDF (its bytes look like text)"),
    ("blob.dat", b"\x00\x01\x02\xff", "unsupported_type",
     "blob.dat: cannot tell its type (not a PDF, an image or text)"),
])
def test_bad_documents_are_local_errors(tmp_path: Path, name: str, content: bytes, code: str,
                                        message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert hash_document(path, name) == LocalError(code, message)


def test_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 11)
    assert hash_document(path, "big.txt", max_bytes=10) == LocalError(
        "too_large", "big.txt is 11 bytes, over the 10-byte limit for a document")


def test_unreadable_paths_are_local_errors(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")  # opened non-blocking: refused, not waited on
    assert hash_document(tmp_path / "pipe.txt", "pipe.txt") == LocalError(
        "not_regular", "pipe.txt is not a regular file")
    assert hash_document(tmp_path / "gone.txt", "gone.txt") == LocalError(
        "unreadable", "cannot read gone.txt: No such file or directory")
    assert hash_document(tmp_path, "dir") == LocalError(
        "unreadable", "cannot read dir: Is a directory")


def test_a_file_without_read_permission_is_a_local_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("x")

    def refuse(*args: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)  # as a chmod 0 file for non-root
    assert hash_document(path, "secret.txt") == LocalError(
        "unreadable", "cannot read secret.txt: Permission denied")
