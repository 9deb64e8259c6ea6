"""A tiny dependency-free PDF writer: one Helvetica text stream per page.

Enough for the shipped sample and for tests that need PDFs with known text per
page; pypdf reads these back with `extract_text()`.
"""

from __future__ import annotations

from collections.abc import Sequence

_PAGE_WIDTH = 612
_PAGE_HEIGHT = 792
_MARGIN = 72
_FONT_SIZE = 12
_LEADING = 16


def make_pdf(pages: Sequence[str]) -> bytes:
    """A PDF with one page per string; lines of each string become lines of text."""
    page_count = len(pages)
    # Objects 1-3 are fixed; each page then takes a page object and a content stream.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(page_count))
    bodies: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {page_count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for index, text in enumerate(pages):
        content_ref = 5 + 2 * index
        bodies.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_WIDTH} {_PAGE_HEIGHT}] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_ref} 0 R >>"
            ).encode()
        )
        stream = _content_stream(text)
        bodies.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return _assemble(bodies)


def _content_stream(text: str) -> bytes:
    top = _PAGE_HEIGHT - _MARGIN
    parts = [f"BT /F1 {_FONT_SIZE} Tf {_LEADING} TL {_MARGIN} {top} Td".encode()]
    for line in text.split("\n"):
        parts.append(b"(" + _escape(line) + b") Tj T*")
    parts.append(b"ET")
    return b"\n".join(parts)


def _escape(line: str) -> bytes:
    # Helvetica with WinAnsiEncoding covers Latin-1; anything else becomes "?".
    raw = line.encode("latin-1", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _assemble(bodies: list[bytes]) -> bytes:
    # The binary comment on line 2 tells transfer tools the file is binary.
    chunks = [b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"]
    offsets: list[int] = []
    position = len(chunks[0])
    for number, body in enumerate(bodies, start=1):
        obj = b"%d 0 obj\n" % number + body + b"\nendobj\n"
        offsets.append(position)
        chunks.append(obj)
        position += len(obj)
    size = len(bodies) + 1
    xref = [b"xref\n0 %d\n" % size, b"0000000000 65535 f \n"]
    xref.extend(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, position)
    return b"".join(chunks) + b"".join(xref) + trailer
