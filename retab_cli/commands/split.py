"""`retab partitions split ID --document FILE --out-dir DIR`: one file per chunk."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retab_cli import errors
from retab_cli.commands._common import command
from retab_cli.errors import UsageError
from retab_cli.recent import complete_ids

if TYPE_CHECKING:
    from retab_cli.session import Env

MANIFEST = "manifest.json"


@command(options=("output", "json", "quiet"))
def split(
    env: Env,
    partition_id: Annotated[str, typer.Argument(
        metavar="ID", help="A completed partition run.", autocompletion=complete_ids)],
    document: Annotated[str, typer.Option(
        metavar="FILE", help="The document the run partitioned (PDF or text).")] = "",
    out_dir: Annotated[str, typer.Option(
        metavar="DIR", help="Where to write one file per chunk and manifest.json.")] = "",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace files already in DIR.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Split even if the document is not the one the run saw.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the run to end first.")] = False,
) -> int:
    """Write each chunk of a completed run as its own file, plus manifest.json
    ({partition_id, document, chunks: [{key, pages, file, sha256}]})."""
    from retab_cli.client import validate_id

    validate_id(partition_id)
    source, target = _check_paths(document, out_dir)
    try:
        content = source.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {document}: {exc.strerror}", file=document) from None

    async def main() -> int:
        async with env.client() as client:
            raw = (await client.get(partition_id)).data
            if wait and raw.get("status") not in ("completed", "failed", "cancelled"):
                from retab_cli.commands.watch import watch_until_terminal

                code = await watch_until_terminal(env, client, [raw], None, single=True)
                if code != errors.OK:
                    return code
                raw = (await client.get(partition_id)).data
        manifest = write_chunks(raw, source, content, target, overwrite=overwrite, force=force)
        _show(env, manifest, target)
        return errors.OK

    return env.run(main)


def _check_paths(document: str, out_dir: str) -> tuple[Path, Path]:
    if not document:
        raise UsageError("--document FILE is required: the document the run partitioned")
    if not out_dir:
        raise UsageError("--out-dir DIR is required")
    source = Path(document)
    if not source.is_file():
        raise UsageError(f"{document} is not a regular file", file=document)
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{out_dir} exists and is not a directory")
    return source, target


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
    pages = _pages(source, content)
    chunks = raw.get("output") or []
    used: set[str] = set()
    plan = []
    for chunk in chunks:
        wanted = [p for p in chunk.get("pages", []) if isinstance(p, int)]
        bad = [p for p in wanted if not 1 <= p <= len(pages.items)]
        if bad:
            raise UsageError(f"chunk {chunk.get('key')!r} names page {bad[0]}, but "
                             f"{source} has {len(pages.items)} pages")
        name = safe_name(str(chunk.get("key", "")), used) + pages.suffix
        plan.append((str(chunk.get("key", "")), wanted, name))
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


class _Pages:
    """A document cut into pages, and how to put chosen pages back together."""

    def __init__(self, items: list[Any], suffix: str, joiner: Any) -> None:
        self.items = items
        self.suffix = suffix
        self._joiner = joiner

    def join(self, numbers: list[int]) -> bytes:
        data: bytes = self._joiner([self.items[n - 1] for n in numbers])
        return data


def _pages(source: Path, content: bytes) -> _Pages:
    if content.startswith(b"%PDF-"):
        return _pdf_pages(source, content)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source}: only PDF and text documents can be split") from None
    suffix = source.suffix or ".txt"
    return _Pages(text.split("\f"), suffix, lambda parts: "\f".join(parts).encode())


def _pdf_pages(source: Path, content: bytes) -> _Pages:
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

    return _Pages(pages, ".pdf", join)


def _show(env: Env, manifest: dict[str, Any], target: Path) -> None:
    renderer = env.renderer
    if renderer.mode in ("json", "jsonl"):
        renderer.json(manifest) if renderer.mode == "json" else renderer.jsonl(manifest)
        return
    for entry in manifest["chunks"]:
        path = str(target / entry["file"])
        if renderer.mode == "ids":
            renderer.line(path)
        else:
            from retab_cli.render import sanitize

            pages = ", ".join(str(p) for p in entry["pages"])
            renderer.line(f"{sanitize(path, single_line=True)}  pages {pages}")
    renderer.info(f"wrote {len(manifest['chunks'])} file(s) and {MANIFEST} to {target}")
