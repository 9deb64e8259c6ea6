"""Documents to send: type sniffing, refusals, the size cap, stdin, data: and https:// URLs."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retab_cli import documents
from retab_cli.documents import (
    MAX_BODY,
    MAX_STDIN,
    MAX_UPLOAD,
    Document,
    from_path,
    from_stdin,
    from_url,
    inline_body_size,
    plan_transport,
    sniff,
)
from retab_cli.errors import UsageError

from cli_support import Warnings
from upload_support import CountingSha, count_sha256

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(40))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(40))
GIF87 = b"GIF87a\x01\x00\x01\x00\x80\x00\x00"
GIF89 = b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(20)
TIFF_LE = b"II*\x00\x08\x00\x00\x00" + bytes(10)
TIFF_BE = b"MM\x00*\x00\x00\x00\x08" + bytes(10)
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(20)
TEXT = "Invoice No. 42\nTotal: 10 €\n".encode()
BINARY = b"\x00\x01\x02\x03\xfe\xff binary \x00"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"




def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- sniff -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PDF, "application/pdf"),
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF87, "image/gif"),
        (GIF89, "image/gif"),
        (WEBP, "image/webp"),
        (TIFF_LE, "image/tiff"),
        (TIFF_BE, "image/tiff"),
        (ZIP, "application/zip"),
        (TEXT, "text/plain"),
        (b"plain ascii", "text/plain"),
        (BINARY, None),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"hello \xff world", None),
    ],
)
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime


def test_text_cut_in_the_middle_of_a_character_is_still_text() -> None:
    sample = ("é" * 3000).encode()[: documents.SNIFF_BYTES - 1]  # ends on half of "é"
    with pytest.raises(UnicodeDecodeError):
        sample.decode()
    assert sniff(sample) == "text/plain"
    euro = ("x" * 10 + "€").encode()
    assert sniff(euro[:-1]) == "text/plain"
    assert sniff(euro[:-2]) == "text/plain"


def test_invalid_utf8_at_the_end_is_not_text() -> None:
    # \xff can never start a character: a binary tail, not a cut character.
    assert sniff(b"short \xff") is None
    assert sniff(b"short \xc3\x28") is None


# ---- from_path ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("scan.pdf", PDF, "application/pdf"),
        ("SCAN.PDF", PDF, "application/pdf"),
        ("img.png", PNG, "image/png"),
        ("photo.jpg", JPEG, "image/jpeg"),
        ("photo.jpeg", JPEG, "image/jpeg"),
        ("anim.gif", GIF89, "image/gif"),
        ("pic.webp", WEBP, "image/webp"),
        ("fax.tif", TIFF_LE, "image/tiff"),
        ("fax.tiff", TIFF_BE, "image/tiff"),
        ("letter.docx", ZIP, DOCX),
        ("archive.zip", ZIP, "application/zip"),
        ("notes.txt", TEXT, "text/plain"),
        ("table.csv", b"a,b\n1,2\n", "text/csv"),
        ("mail.eml", b"From: a@b\n\nhi\n", "message/rfc822"),
        ("README", TEXT, "text/plain"),
        ("noext", PDF, "application/pdf"),
        ("pdf-named.bin", PDF, "application/pdf"),
    ],
)
def test_from_path_types_by_bytes_and_extension(
    tmp_path: Path, warnings: Warnings, name: str, data: bytes, mime: str
) -> None:
    path = write(tmp_path, name, data)
    doc = from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert doc.mime_type == mime
    assert doc.filename == name
    assert doc.size == len(data)
    assert doc.label == str(path)
    assert doc.path == path
    assert warnings == []


def test_unknown_binary_passes_as_octet_stream_with_a_warning(
    tmp_path: Path, warnings: Warnings
) -> None:
    path = write(tmp_path, "blob.dat", BINARY)
    doc = from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert doc.mime_type == "application/octet-stream"
    assert warnings == [
        f"warning: cannot tell the type of {path}; sending it as application/octet-stream "
        "(use --mime-type to set it)"
    ]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("report.pdf", TEXT, "is named .pdf but is not a PDF (its bytes look like text)"),
        ("image.png", PDF, "is named .png but is not a PNG image (its bytes look like a PDF)"),
        ("photo.jpg", PNG, "is named .jpg but is not a JPEG image (its bytes look like a PNG image)"),
        ("scan.pdf", BINARY, "is named .pdf but is not a PDF (its bytes look like unrecognised data)"),
        ("letter.docx", PDF, "is named .docx but is not .docx (its bytes look like a PDF)"),
        ("anim.gif", ZIP, "is named .gif but is not a GIF image (its bytes look like a ZIP archive)"),
    ],
)
def test_contradictions_are_refused(
    tmp_path: Path, warnings: Warnings, name: str, data: bytes, message: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(UsageError) as caught:
        from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == f"{path} {message}"
    assert caught.value.file == str(path)
    assert caught.value.hint == "pass --mime-type TYPE if you are sure"
    assert caught.value.exit_code == 2


def test_mime_type_overrides_sniffing_and_contradictions(tmp_path: Path, warnings: Warnings) -> None:
    path = write(tmp_path, "report.pdf", TEXT)
    doc = from_path(str(path), filename=None, mime_type="text/markdown", warn=warnings)
    assert doc.mime_type == "text/markdown"
    blob = write(tmp_path, "blob.dat", BINARY)
    doc = from_path(str(blob), filename=None, mime_type="application/x-thing", warn=warnings)
    assert doc.mime_type == "application/x-thing"
    assert warnings == []


def test_filename_is_the_basename(tmp_path: Path, warnings: Warnings) -> None:
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    path = write(sub, "invoice.pdf", PDF)
    doc = from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert doc.filename == "invoice.pdf"
    doc = from_path(str(path), filename="other/dir/renamed.pdf", mime_type=None, warn=warnings)
    assert doc.filename == "renamed.pdf"


def test_filename_given_decides_the_expected_type(tmp_path: Path, warnings: Warnings) -> None:
    path = write(tmp_path, "upload.bin", TEXT)
    with pytest.raises(UsageError, match=r"is named \.pdf but is not a PDF"):
        from_path(str(path), filename="upload.pdf", mime_type=None, warn=warnings)


def test_missing_file(tmp_path: Path, warnings: Warnings) -> None:
    missing = str(tmp_path / "nope.pdf")
    with pytest.raises(UsageError) as caught:
        from_path(missing, filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == f"no such file: {missing}"
    assert caught.value.file == missing


def test_directory_refused(tmp_path: Path, warnings: Warnings) -> None:
    with pytest.raises(UsageError) as caught:
        from_path(str(tmp_path), filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == f"{tmp_path} is a directory, not a document"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_refused_without_blocking(tmp_path: Path, warnings: Warnings) -> None:
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    with pytest.raises(UsageError) as caught:
        from_path(str(fifo), filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == f"{fifo} is not a regular file"


def test_empty_file_refused(tmp_path: Path, warnings: Warnings) -> None:
    path = write(tmp_path, "empty.pdf", b"")
    with pytest.raises(UsageError) as caught:
        from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == f"{path} is empty"


def _sparse(path: Path, size: int) -> Path:
    subprocess.run(["truncate", "-s", str(size), str(path)], check=True)
    return path


def test_upload_limit_checked_before_reading(
    tmp_path: Path, warnings: Warnings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _sparse(tmp_path / "huge.pdf", MAX_UPLOAD + 1)

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_open)
    monkeypatch.setattr(Path, "read_bytes", no_open)
    with pytest.raises(UsageError) as caught:
        from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == f"{path} is larger than 5 GiB, the largest document this tool uploads"
    assert caught.value.hint == "pass --url https://... to a copy the API can fetch"
    assert caught.value.file == str(path)
    assert caught.value.exit_code == 2


def _pdf_of_size(tmp_path: Path, name: str, size: int) -> Path:
    path = _sparse(tmp_path / name, size)
    with path.open("r+b") as fh:
        fh.write(PDF)
    return path


def test_exactly_the_upload_limit_is_accepted_without_reading_it_whole(
    tmp_path: Path, warnings: Warnings
) -> None:
    path = _pdf_of_size(tmp_path, "big.pdf", MAX_UPLOAD)
    doc = from_path(str(path), filename=None, mime_type=None, warn=warnings)
    assert (doc.mime_type, doc.size, doc.data) == ("application/pdf", MAX_UPLOAD, None)
    assert plan_transport(doc, "auto") == "upload"


def test_file_changed_after_checking_is_refused_on_read(tmp_path: Path, warnings: Warnings) -> None:
    path = write(tmp_path, "grows.pdf", PDF)
    doc = from_path(str(path), filename=None, mime_type=None, warn=warnings)
    path.write_bytes(PDF + b"more")
    for read in (doc.data_url, doc.sha256, lambda: list(doc.chunks())):
        with pytest.raises(UsageError) as caught:
            read()
        assert caught.value.message == (f"{path} changed while it was being read "
                                        f"(it had {len(PDF)} bytes when checked)")
        assert caught.value.file == str(path)


def test_file_removed_after_checking_is_a_usage_error(tmp_path: Path, warnings: Warnings) -> None:
    path = write(tmp_path, "gone.pdf", PDF)
    doc = from_path(str(path), filename=None, mime_type=None, warn=warnings)
    path.unlink()
    with pytest.raises(UsageError) as caught:
        doc.data_url()
    assert caught.value.message == f"cannot read {path}: No such file or directory"


# ---- data_url ------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [PDF, PNG, bytes(range(256)) * 3 + PDF])
def test_data_url_round_trips_the_bytes(tmp_path: Path, warnings: Warnings, data: bytes) -> None:
    path = write(tmp_path, "doc.bin", data)
    doc = from_path(str(path), filename=None, mime_type="application/pdf", warn=warnings)
    url = doc.data_url()
    prefix = "data:application/pdf;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix):], validate=True) == data


# ---- stdin ---------------------------------------------------------------------------------


def test_stdin_needs_a_filename(warnings: Warnings) -> None:
    stream = io.BytesIO(PDF)
    with pytest.raises(UsageError) as caught:
        from_stdin(stream, filename=None, mime_type=None, warn=warnings)
    assert caught.value.message == "reading the document from stdin needs --filename NAME"
    assert stream.tell() == 0


def test_stdin_document(warnings: Warnings) -> None:
    doc = from_stdin(io.BytesIO(PDF), filename="in/scan.pdf", mime_type=None, warn=warnings)
    assert (doc.label, doc.filename, doc.mime_type, doc.size) == ("-", "scan.pdf", "application/pdf",
                                                                  len(PDF))
    assert doc.data_url() == "data:application/pdf;base64," + base64.b64encode(PDF).decode()


def test_stdin_empty_or_contradicting(warnings: Warnings) -> None:
    with pytest.raises(UsageError, match=r"^the document on stdin is empty$"):
        from_stdin(io.BytesIO(b""), filename="a.pdf", mime_type=None, warn=warnings)
    with pytest.raises(UsageError) as caught:
        from_stdin(io.BytesIO(TEXT), filename="a.pdf", mime_type=None, warn=warnings)
    assert caught.value.message == "stdin is named .pdf but is not a PDF (its bytes look like text)"


def test_stdin_over_the_cap(warnings: Warnings) -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = b"a" * len(buffer)
            return len(buffer)

    with pytest.raises(UsageError) as caught:
        from_stdin(io.BufferedReader(Endless()), filename="a.txt", mime_type=None, warn=warnings)
    assert caught.value.message == "stdin holds more than 32 MiB, the most read from stdin"
    assert caught.value.hint == "save it to a file and pass its path (big files are uploaded)"


def test_stdin_at_the_limit_is_kept_and_uploaded_from_memory(warnings: Warnings) -> None:
    data = PDF + bytes(MAX_STDIN - len(PDF))
    doc = from_stdin(io.BytesIO(data), filename="scan.pdf", mime_type=None, warn=warnings)
    assert doc.size == MAX_STDIN
    assert plan_transport(doc, "auto") == "upload"
    assert b"".join(doc.chunks()) == data
    assert doc.sha256() == hashlib.sha256(data).hexdigest()


# ---- URLs ----------------------------------------------------------------------------------


def test_https_url_is_passed_through() -> None:
    url = "https://files.example.com/path/to/Invoice%20March.pdf?sig=abc"
    doc = from_url(url, filename=None, mime_type=None)
    assert (doc.url, doc.filename, doc.mime_type, doc.size) == (url, "Invoice March.pdf",
                                                                "application/pdf", None)
    assert doc.data_url() == url


def test_http_url_is_accepted() -> None:
    doc = from_url("http://127.0.0.1:8000/a.png", filename=None, mime_type=None)
    assert (doc.filename, doc.mime_type) == ("a.png", "image/png")


def test_url_filename_falls_back_to_the_host_and_is_a_basename() -> None:
    assert from_url("https://example.com/", filename=None, mime_type=None).filename == "example.com"
    doc = from_url("https://example.com/x", filename="dir/name.txt", mime_type="text/plain")
    assert (doc.filename, doc.mime_type) == ("name.txt", "text/plain")
    assert from_url("https://example.com/x", filename=None, mime_type=None).mime_type == \
        "application/octet-stream"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/a.pdf", "file:///etc/passwd", "javascript:alert(1)", "example.com/a.pdf",
     "https://", "https:///a.pdf", "", "https://[::1/a.pdf"],
)
def test_bad_url_schemes_refused(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        from_url(url, filename=None, mime_type=None)
    assert caught.value.message == f"invalid --url {url!r}: expected https://... or data:..."


@pytest.mark.parametrize(
    "url", ["https://user:secret@example.com/a.pdf", "https://token@example.com/a.pdf",
            "https://:pw@example.com/a.pdf"],
)
def test_credentials_in_urls_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        from_url(url, filename=None, mime_type=None)
    assert caught.value.message == "invalid --url: credentials in the URL are not allowed"


def _data_url(data: bytes, mime: str = "application/pdf") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_data_url_is_validated_and_passed_through() -> None:
    url = _data_url(PDF)
    doc = from_url(url, filename="sub/scan.pdf", mime_type=None)
    assert (doc.label, doc.filename, doc.mime_type, doc.size, doc.url) == (
        "data URL", "scan.pdf", "application/pdf", len(PDF), url)
    assert doc.data_url() == url
    assert from_url("data:;base64,aGk=", filename="a", mime_type=None).mime_type == \
        "application/octet-stream"
    assert from_url(url, filename="a.pdf", mime_type="image/png").mime_type == "image/png"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:application/pdf;base64,%%%not-base64", "invalid data URL: the data is not valid base64"),
        ("data:application/pdf;base64,aGk", "invalid data URL: the data is not valid base64"),
        ("data:application/pdf;base64,", "invalid data URL: the document is empty"),
        ("data:text/plain,hello", "invalid data URL: expected data:<type>;base64,<data>"),
        ("data:application/pdf;base64", "invalid data URL: expected data:<type>;base64,<data>"),
    ],
)
def test_bad_data_urls(url: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        from_url(url, filename="a.pdf", mime_type=None)
    assert caught.value.message == message


def test_data_url_needs_a_filename() -> None:
    with pytest.raises(UsageError) as caught:
        from_url(_data_url(PDF), filename=None, mime_type=None)
    assert caught.value.message == "a data: URL needs --filename NAME"


def test_documents_module_stays_light() -> None:
    code = ("import sys, retab_cli.documents; "
            "print(sorted(m for m in ('httpx', 'rich', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- body size and transport -----------------------------------------------------------------


def _encode(body: object) -> bytes:
    """The client's JSON encoding (retab_cli.client._encode), restated to keep httpx out."""
    return json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 100, 3001])
@pytest.mark.parametrize(("name", "mime"), [("scan.pdf", "application/pdf"),
                                            ("Rechnung März \U0001f4c4.pdf", "application/pdf"),
                                            ('odd"name\\.txt', 'text/x-"quoted"')])
def test_inline_body_size_is_exact(tmp_path: Path, warnings: Warnings, size: int, name: str,
                                   mime: str) -> None:
    path = write(tmp_path, "doc.bin", (PDF * 200)[:size])
    doc = from_path(str(path), filename=name, mime_type=mime, warn=warnings)
    rest = {"key": "invoice number", "instructions": "Split it ✂", "background": True}
    body = {"document": {"filename": doc.filename, "url": doc.data_url()}, **rest}
    assert inline_body_size(doc, envelope=len(_encode(rest))) == len(_encode(body))
    assert inline_body_size(doc, envelope=0) == len(_encode({"document": body["document"]})) - 1


def _sized(tmp_path: Path, size: int, name: str = "big.pdf") -> Document:
    path = _pdf_of_size(tmp_path, name, size)
    return from_path(str(path), filename=None, mime_type=None, warn=lambda _: None)


MIB = 1024 * 1024


def test_auto_sends_20_mib_inline_and_uploads_30_mib(tmp_path: Path) -> None:
    assert plan_transport(_sized(tmp_path, 20 * MIB, "a.pdf"), "auto") == "inline"
    assert plan_transport(_sized(tmp_path, 30 * MIB, "b.pdf"), "auto") == "upload"


def test_a_25_mib_file_is_not_sent_inline(tmp_path: Path) -> None:
    # Regression: the old check compared raw bytes with 32 MiB; base64 makes this body
    # 33.3 MiB, which the API refuses with 413.
    doc = _sized(tmp_path, 25 * MIB)
    assert inline_body_size(doc) > MAX_BODY
    assert plan_transport(doc, "auto") == "upload"
    with pytest.raises(UsageError) as caught:
        plan_transport(doc, "never")
    assert caught.value.message == (f"{doc.label} would make a 33.3 MiB request body inline "
                                    "(base64), over the API's 32 MiB limit")
    assert caught.value.hint == ("use --upload auto to send it through the files API, or pass "
                                 "--url https://... to a copy the API can fetch")
    assert (caught.value.file, caught.value.exit_code) == (doc.label, 2)


def test_the_cap_is_on_the_whole_body_inclusive(tmp_path: Path) -> None:
    doc = _sized(tmp_path, 23 * MIB)
    fits = MAX_BODY - inline_body_size(doc, envelope=0)
    assert plan_transport(doc, "never", envelope=fits) == "inline"
    assert plan_transport(doc, "auto", envelope=fits) == "inline"
    assert plan_transport(doc, "auto", envelope=fits + 1) == "upload"
    with pytest.raises(UsageError, match="over the API's 32 MiB limit"):
        plan_transport(doc, "never", envelope=fits + 1)


def test_always_uploads_even_small_documents_and_urls_go_as_they_are(tmp_path: Path) -> None:
    small = _sized(tmp_path, 100)
    assert plan_transport(small, "always") == "upload"
    assert plan_transport(small, "never") == "inline"
    url = from_url("https://example.com/a.pdf", filename=None, mime_type=None)
    assert [plan_transport(url, mode) for mode in ("auto", "always", "never")] == ["url"] * 3


def test_unknown_upload_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        plan_transport(_sized(tmp_path, 100), "sometimes")
    assert caught.value.message == "--upload must be one of auto, always, never (got 'sometimes')"


def test_data_url_refuses_a_document_too_big_for_any_body(tmp_path: Path) -> None:
    doc = _sized(tmp_path, 25 * MIB)
    with pytest.raises(UsageError, match=r"would make a 33\.3 MiB request body inline"):
        doc.data_url()


# ---- streaming and the checksum --------------------------------------------------------------


@pytest.fixture
def counting_sha(monkeypatch: pytest.MonkeyPatch) -> type[CountingSha]:
    return count_sha256(monkeypatch)


def test_chunks_stream_the_file_and_hash_it_on_the_way(tmp_path: Path,
                                                       counting_sha: type[CountingSha]) -> None:
    data = bytes(range(256)) * 40 + PDF
    path = write(tmp_path, "doc.bin", data)
    doc = from_path(str(path), filename=None, mime_type="application/pdf", warn=lambda _: None)
    assert doc.known_sha256 is None
    chunks = list(doc.chunks(chunk_size=1000))
    assert [len(c) for c in chunks] == [1000] * 10 + [len(data) - 10000]
    assert b"".join(chunks) == data
    expected = hashlib.new("sha256", data).hexdigest()
    assert doc.known_sha256 == doc.sha256() == expected
    assert counting_sha.fed == len(data)


def test_a_restarted_pass_hashes_each_byte_once(tmp_path: Path,
                                                counting_sha: type[CountingSha]) -> None:
    data = bytes(range(256)) * 50
    doc = from_path(str(write(tmp_path, "doc.bin", data)), filename=None,
                    mime_type="text/plain", warn=lambda _: None)
    first = doc.chunks(chunk_size=3000)
    next(first), next(first)
    first.close()  # an upload attempt dropped after 6000 bytes
    assert doc.known_sha256 is None
    assert b"".join(doc.chunks(chunk_size=4096)) == data
    assert doc.sha256() == hashlib.new("sha256", data).hexdigest()
    assert counting_sha.fed == len(data)
    list(doc.chunks())  # a known checksum is never recomputed
    assert counting_sha.fed == len(data)


def test_sha256_alone_reads_the_file_once(tmp_path: Path, counting_sha: type[CountingSha]) -> None:
    data = PDF * 1000
    doc = from_path(str(write(tmp_path, "a.pdf", data)), filename=None, mime_type=None,
                    warn=lambda _: None)
    assert doc.sha256() == doc.sha256() == hashlib.new("sha256", data).hexdigest()
    assert counting_sha.fed == len(data)


def test_a_file_cut_short_while_streaming_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "doc.pdf", PDF * 100)
    doc = from_path(str(path), filename=None, mime_type=None, warn=lambda _: None)
    stream = doc.chunks(chunk_size=100)
    next(stream)
    with path.open("r+b") as fh:
        fh.truncate(150)
    with pytest.raises(UsageError, match=r"changed while it was being read"):
        list(stream)
    assert doc.known_sha256 is None


def test_a_url_document_has_no_bytes_to_stream() -> None:
    doc = from_url("https://example.com/a.pdf", filename=None, mime_type=None)
    with pytest.raises(ValueError, match="is a URL"):
        list(doc.chunks())
