"""Cutting a document into one file per chunk of a completed run, plus manifest.json.

The manifest is `{"partition_id", "document", "chunks": [{"key", "pages", "file",
"sha256"}]}` (DESIGN §9): `file` relative to the output directory, named from the
sanitised chunk key in output order. PDFs are cut with pypdf, text on form feeds.
Each file is written to a temporary name and renamed, and nothing existing is
replaced unless asked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from retab_cli import errors
from retab_cli.errors import UsageError

MANIFEST = "manifest.json"


def safe_name(key: str, used: set[str]) -> str:
    """A file stem from a chunk key: no path separators, no hidden files, no clashes."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "chunk"
    stem = stem[:100]
    name, n = stem, 2
    while name.lower() in used:
        name, n = f"{stem}-{n}", n + 1
    used.add(name.lower())
    return name


def write_chunks(raw: dict[str, Any], source: Path, content: bytes, target: Path, *,
                 overwrite: bool, force: bool) -> dict[str, Any]:
    """Write the chunk files and the manifest; refuse anything that would lose data."""
    import hashlib
    import json

    check_run(raw, source, content, force=force)
    pages = _pages(source, content)
    plan = plan_files(raw, pages, source)
    _refuse_clobber(target, [name for _, _, name in plan] + [MANIFEST], overwrite)
    target.mkdir(parents=True, exist_ok=True)
    entries = []
    for key, wanted, name in plan:
        data = pages.join(wanted)
        _write(target / name, data)
        entries.append({"key": key, "pages": wanted, "file": name,
                        "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"partition_id": raw.get("id"), "document": os.path.basename(source),
                "chunks": entries}
    _write(target / MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=True) + "\n").encode())
    return manifest


def check_run(raw: dict[str, Any], source: Path, content: bytes, *, force: bool) -> None:
    """The run completed, and partitioned these very bytes (its file id), unless `force`."""
    import hashlib

    status = raw.get("status")
    if status != "completed":
        raise errors.RetabError(f"run {raw.get('id')} is {status}, not completed; nothing to split",
                                exit_code=errors.exit_for_status(str(status)),
                                hint="add --wait to wait for it")
    expected = (raw.get("file") or {}).get("id")
    actual = "file_" + hashlib.blake2b(content, digest_size=8).hexdigest()
    if expected and expected != actual and not force:
        raise UsageError(f"{source} is not the document run {raw.get('id')} partitioned "
                         f"(file id {actual}, the run saw {expected})",
                         hint="pass the same file, or --force to split it anyway")


def plan_files(raw: dict[str, Any], pages: Pages, source: Path) -> list[tuple[str, list[int], str]]:
    """(chunk key, its pages, file name) for each chunk, in output order."""
    used: set[str] = set()
    plan = []
    for chunk in raw.get("output") or []:
        wanted = [p for p in chunk.get("pages", []) if isinstance(p, int)]
        bad = [p for p in wanted if not 1 <= p <= len(pages.items)]
        if bad:
            raise UsageError(f"chunk {chunk.get('key')!r} names page {bad[0]}, but "
                             f"{source} has {len(pages.items)} pages")
        name = safe_name(str(chunk.get("key", "")), used) + pages.suffix
        plan.append((str(chunk.get("key", "")), wanted, name))
    return plan


def _refuse_clobber(target: Path, names: list[str], overwrite: bool) -> None:
    if overwrite or not target.exists():
        return
    existing = [n for n in names if (target / n).exists()]
    if existing:
        raise UsageError(f"{target / existing[0]} already exists"
                         + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""),
                         hint="add --overwrite to replace them, or choose another --out-dir")


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Pages:
    """A document cut into pages, and how to put chosen pages back together."""

    def __init__(self, items: list[Any], suffix: str, joiner: Any) -> None:
        self.items = items
        self.suffix = suffix
        self._joiner = joiner

    def join(self, numbers: list[int]) -> bytes:
        data: bytes = self._joiner([self.items[n - 1] for n in numbers])
        return data


def _pages(source: Path, content: bytes) -> Pages:
    if content.startswith(b"%PDF-"):
        return _pdf_pages(source, content)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source}: only PDF and text documents can be split") from None
    suffix = source.suffix or ".txt"
    return Pages(text.split("\f"), suffix, lambda parts: "\f".join(parts).encode())


def _pdf_pages(source: Path, content: bytes) -> Pages:
    import io

    from pypdf import PdfReader, PdfWriter
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        pages = list(reader.pages)
    except (PdfReadError, ValueError, OSError) as exc:
        raise UsageError(f"{source} is not a readable PDF: {exc}") from None

    def join(chosen: list[Any]) -> bytes:
        writer = PdfWriter()
        for page in chosen:
            writer.add_page(page)
        buffer = io.BytesIO()
        writer.write(buffer)
        return buffer.getvalue()

    return Pages(pages, ".pdf", join)
