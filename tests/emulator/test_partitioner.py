"""The partitioner, documents and PDF writer, in-process."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pypdf
import pytest

from retab_cli.emulator import documents, partitioner, sample_pdf_path
from retab_cli.emulator.documents import Document, DocumentFailure, DocumentTooLarge, DocumentUrlError
from retab_cli.emulator.fetch import Fetcher
from retab_cli.emulator.partitioner import consensus, credits, page_texts, partition
from retab_cli.emulator.pdfgen import make_pdf
from retab_cli.urls import is_loopback

from .helpers import EXPECTED_CHUNKS, INVOICE_PAGES, data_url


def pdf_pages(pages: list[str]) -> list[str]:
    return page_texts(make_pdf(pages), "application/pdf")


def test_three_invoices_over_seven_pages_give_three_chunks() -> None:
    assert partition(pdf_pages(INVOICE_PAGES), "invoice number", True) == EXPECTED_CHUNKS


def test_sample_pdf_is_valid_and_partitions_to_three_chunks() -> None:
    data = sample_pdf_path().read_bytes()
    reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
    assert len(reader.pages) == 7
    pages = page_texts(data, "application/pdf")
    assert partition(pages, "invoice number", True) == EXPECTED_CHUNKS


@pytest.mark.parametrize(
    "text",
    [
        "Invoice No. 7",
        "INVOICE NO. 7",
        "Invoice #7",
        "Invoice # 7",
        "invoice  number:\n7",
        "Invoice Nr. 7",
        "Invoice number 7",
        "Invoice No.: 7",
        "Invoice #: 7",
    ],
)
def test_number_variants(text: str) -> None:
    assert partition([text], "invoice number", True) == [{"key": "7", "pages": [1]}]


def test_key_is_a_whole_word_and_value_stays_on_its_line() -> None:
    assert partition(["Invoices: 3 pending"], "invoice", True) == []
    # "INVOICE" alone on a line does not take the next line's first word.
    assert partition(["INVOICE\nInvoice number: A-1"], "invoice", True) == [{"key": "A-1", "pages": [1]}]


def test_trailing_punctuation_is_trimmed_so_values_resume() -> None:
    pages = ["Order ref: R-1.", "Order ref: R-2", "Order ref: R-1"]
    assert partition(pages, "order ref", True) == [
        {"key": "R-1", "pages": [1, 3]},
        {"key": "R-2", "pages": [2]},
    ]


def test_leading_pages_join_the_first_chunk() -> None:
    pages = ["cover letter", "terms", "Invoice number: A", "more", "Invoice number: B"]
    assert partition(pages, "invoice number", True) == [
        {"key": "A", "pages": [1, 2, 3, 4]},
        {"key": "B", "pages": [5]},
    ]


def test_resume_of_an_earlier_value_joins_its_chunk() -> None:
    pages = ["Invoice number: A", "x", "Invoice number: B", "Invoice number: A", "y"]
    assert partition(pages, "invoice number", True) == [
        {"key": "A", "pages": [1, 2, 4, 5]},
        {"key": "B", "pages": [3]},
    ]


def test_overlap_on_and_off() -> None:
    pages = [
        "Invoice number: A",
        "end of A. Invoice number: B",
        "more B",
        "Invoice number: C\nInvoice number: D",
    ]
    # A page with a value starts that value's chunk (it leaves the running one).
    assert partition(pages, "invoice number", True) == [
        {"key": "A", "pages": [1]},
        {"key": "B", "pages": [2, 3]},
        {"key": "C", "pages": [4]},
        {"key": "D", "pages": [4]},
    ]
    # Without overlap the first value on a page takes it; the last runs on.
    assert partition([*pages, "tail"], "invoice number", False) == [
        {"key": "A", "pages": [1]},
        {"key": "B", "pages": [2, 3]},
        {"key": "C", "pages": [4]},
        {"key": "D", "pages": [5]},
    ]


def test_no_value_anywhere_gives_no_chunks() -> None:
    assert partition(pdf_pages(["nothing", "here"]), "invoice number", True) == []
    assert partition(["Invoice number: A"], "   ", True) == []


def test_plain_text_pages_split_on_form_feed() -> None:
    text = "Invoice number: A\fmore\fInvoice number: B\f"
    pages = page_texts(text.encode(), "text/plain")
    assert len(pages) == 3
    assert partition(pages, "invoice number", True) == [
        {"key": "A", "pages": [1, 2]},
        {"key": "B", "pages": [3]},
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\0" * 20,
        b"\xff\xd8\xff\xe0" + b"\0" * 20,
        b"GIF89a" + b"\0" * 10,
        b"RIFF\0\0\0\0WEBPVP8 ",
        b"II*\x00" + b"\0" * 10,
    ],
)
def test_images_are_one_page_without_text(data: bytes) -> None:
    assert page_texts(data, "") == [""]


@pytest.mark.parametrize(
    ("data", "mime", "code"),
    [
        (b"", "application/pdf", "empty_document"),
        (b"%PDF-1.4\n garbage \x00\x01 no xref", "application/pdf", "unreadable_document"),
        (make_pdf(["a", "b"])[:200], "application/pdf", "unreadable_document"),
        (b"plain words", "application/pdf", "unreadable_document"),
        (bytes(range(256)) * 4, "application/octet-stream", "unreadable_document"),
        (b"\x00\x01\x02 binary", "text/plain", "unreadable_document"),
        (b"PK\x03\x04 zip", "application/zip", "unsupported_document"),
    ],
)
def test_unreadable_documents_fail_with_a_code(data: bytes, mime: str, code: str) -> None:
    with pytest.raises(DocumentFailure) as caught:
        page_texts(data, mime)
    assert caught.value.code == code
    assert caught.value.message


def test_consensus_shapes() -> None:
    assert consensus(EXPECTED_CHUNKS, 1, "prtn_x") is None
    for n in range(2, 9):
        result = consensus(EXPECTED_CHUNKS, n, f"prtn_{n}")
        assert result is not None
        assert len(result["choices"]) == n
        assert result["choices"][0] == EXPECTED_CHUNKS
        assert len(result["likelihoods"]) == len(EXPECTED_CHUNKS)
        for chunk, likelihood in zip(EXPECTED_CHUNKS, result["likelihoods"], strict=True):
            assert 0 <= likelihood["key"] <= 1
            assert len(likelihood["pages"]) == len(chunk["pages"])
            # The majority agrees with the output.
            assert all(share > 0.5 for share in likelihood["pages"])
    # Deterministic per seed, and with three votes or more one of them dissents.
    assert consensus(EXPECTED_CHUNKS, 5, "prtn_a") == consensus(EXPECTED_CHUNKS, 5, "prtn_a")
    result = consensus(EXPECTED_CHUNKS, 3, "prtn_a")
    assert result is not None and any(vote != EXPECTED_CHUNKS for vote in result["choices"])
    assert consensus([], 3, "prtn_a") == {"choices": [[], [], []], "likelihoods": []}


def test_credits_by_tier() -> None:
    assert credits(7, 1, "retab-micro") == 1.4
    assert credits(7, 3, "retab-small") == 21.0
    assert credits(7, 2, "retab-large") == 42.0


def test_data_urls() -> None:
    document = documents.parse_document_url(data_url(b"hello", "text/plain"))
    assert document == Document(data=b"hello", mime_type="text/plain")
    assert documents.parse_document_url("data:,a%20b") == Document(data=b"a b", mime_type="")
    for bad in [
        "data:application/pdf;base64,@@@",
        "data:application/pdf;base64",
        "ftp://x/y",
        "hello",
        "data:not a type;base64,AA==",
    ]:
        with pytest.raises(DocumentUrlError):
            documents.parse_document_url(bad)


def test_inline_size_cap_is_checked_before_decoding() -> None:
    size = documents.MAX_DOCUMENT_BYTES
    over = "A" * ((size // 3 + 1) * 4)
    with pytest.raises(DocumentTooLarge):
        documents.parse_document_url("data:application/pdf;base64," + over)


def test_remote_urls() -> None:
    assert documents.parse_document_url("https://example.com/a.pdf") == documents.RemoteUrl(
        "https://example.com/a.pdf", loopback=False
    )
    for host in ["localhost", "127.0.0.1", "127.9.9.9", "[::1]"]:
        remote = documents.parse_document_url(f"http://{host}:1/a.pdf")
        assert isinstance(remote, documents.RemoteUrl) and remote.loopback, host
    assert not is_loopback("127.0.0.1.evil.com")
    with pytest.raises(DocumentFailure) as caught:
        asyncio.run(Fetcher(1.0).fetch("o", documents.RemoteUrl("https://example.com/a.pdf", False), None))
    assert caught.value.code == "remote_fetch_unsupported"
    with pytest.raises(DocumentUrlError):
        documents.parse_document_url("http://127.0.0.1:99999/a.pdf")


def test_reported_mime_prefers_the_declared_type() -> None:
    pdf = make_pdf(["x"])
    assert documents.reported_mime("application/pdf", pdf, "a.bin") == "application/pdf"
    assert documents.reported_mime("", pdf, "a.bin") == "application/pdf"
    assert documents.reported_mime("application/octet-stream", b"zz", "notes.txt") == "text/plain"


def test_pdfgen_escapes_and_key_pattern() -> None:
    pages = pdf_pages(["a (b) c \\ d"])
    assert pages[0].strip() == "a (b) c \\ d"
    assert partitioner.key_pattern("") is None


class CountingFile(io.RawIOBase):
    """A seekable file of `size` bytes (a PDF header, then zeros) that counts what is read."""

    def __init__(self, head: bytes, size: int) -> None:
        self.head, self.size, self.position, self.read_bytes = head, size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        count = max(0, min(len(buffer), self.size - self.position))
        data = bytearray(count)
        head = self.head[self.position : self.position + count]
        data[: len(head)] = head
        buffer[:count] = data
        self.position += count
        self.read_bytes += count
        return count


def test_a_big_damaged_pdf_is_refused_without_reading_it_all() -> None:
    size = 64 * 1024 * 1024
    for read in (partitioner.page_count, partitioner.read_pages):
        raw = CountingFile(b"%PDF-1.7\n", size)
        stream = io.BufferedReader(raw)
        if read is partitioner.page_count:
            assert read(stream, "application/pdf") is None
        else:
            with pytest.raises(DocumentFailure) as caught:
                read(stream, "application/pdf")
            assert caught.value.code == "unreadable_document" and "%%EOF" in caught.value.message
        assert raw.read_bytes < 1024 * 1024  # the header and the last 64 KiB, not 64 MiB
