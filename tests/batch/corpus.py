"""Generated folders of documents for the batch's end-to-end tests and benchmark.

`make_corpus(root, n)` writes n distinct documents (PDF and text in turn, 1 to 3
invoices each, in nested directories) plus, when asked, the awkward ones a real folder
has: byte-identical copies, a corrupt PDF, an empty file and one that is not a
document. Everything is a pure function of the index, so two calls write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retab_cli.emulator.pdfgen import make_pdf


@dataclass
class Corpus:
    root: Path
    distinct: list[str] = field(default_factory=list)    # relative paths of distinct documents
    copies: dict[str, str] = field(default_factory=dict)  # copy -> the document it copies
    refused: dict[str, str] = field(default_factory=dict)  # relative path -> error code

    @property
    def documents(self) -> list[str]:
        return sorted([*self.distinct, *self.copies, *self.refused])


def document(index: int, *, pages: int | None = None) -> tuple[str, bytes]:
    """The index-th document: its relative path and bytes (PDF for even, text for odd)."""
    count = pages if pages is not None else 1 + index % 3
    texts = [f"Invoice number: INV-{index:05d}-{page // 2}\nPage {page + 1} of document {index}"
             for page in range(count)]
    folder = f"batch-{index % 7}/part-{index % 3}"
    if index % 2 == 0:
        return f"{folder}/doc-{index:05d}.pdf", make_pdf(texts)
    return f"{folder}/doc-{index:05d}.txt", "\f".join(texts).encode()


def make_corpus(root: Path, count: int, *, awkward: bool = True,
                pages: int | None = None) -> Corpus:
    corpus = Corpus(root)
    for index in range(count):
        relpath, content = document(index, pages=pages)
        _write(root / relpath, content)
        corpus.distinct.append(relpath)
    if awkward:
        for index in (0, 1, 5):  # byte-identical copies elsewhere
            relpath, content = document(index, pages=pages)
            copy = f"copies/again-{index}{Path(relpath).suffix}"
            _write(root / copy, content)
            corpus.copies[copy] = relpath
        _write(root / "broken/corrupt.pdf", b"%PDF-1.4\n this is not really a PDF \n%%EOF\n")
        _write(root / "broken/empty.txt", b"")
        _write(root / "broken/noise.pdf", b"\x00\x01 just bytes")
        corpus.refused = {"broken/corrupt.pdf": "unreadable_pdf", "broken/empty.txt": "empty",
                          "broken/noise.pdf": "type_mismatch"}
    return corpus


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def check_chunks(out: Path, relpath: str) -> dict[str, Any]:
    """The manifest of a split document, after checking every file's sha256 against it."""
    folder = out / relpath
    manifest = json.loads((folder / "manifest.json").read_text())
    for chunk in manifest["chunks"]:
        data = (folder / chunk["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == chunk["sha256"], (relpath, chunk)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [c["file"] for c in manifest["chunks"]] + ["manifest.json"])
    return dict(manifest)
