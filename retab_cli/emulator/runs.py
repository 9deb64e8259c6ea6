"""Building partition runs: analysing the document, timing, the stored record."""

from __future__ import annotations

import hashlib
import io
import json
import random
import secrets
from dataclasses import dataclass
from typing import Any, BinaryIO

from retab_cli.emulator import documents, partitioner
from retab_cli.emulator.documents import Document, DocumentFailure, StoredDocument
from retab_cli.emulator.lifecycle import derive_status, format_time, present, schedule
from retab_cli.emulator.store import Run

ID_PREFIX = "prtn_"
ID_LENGTH = 21
_HOUR_US = 3_600 * 1_000_000
_DAY_US = 24 * _HOUR_US


@dataclass(frozen=True)
class Analysis:
    file: dict[str, str]
    pages: int
    output: list[dict[str, Any]]
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Request:
    """The validated create request, as the run needs it."""

    owner: str
    filename: str
    key: str
    instructions: str
    model: str
    n_consensus: int
    allow_overlap: bool
    background: bool


def new_partition_id() -> str:
    # token_urlsafe draws from [A-Za-z0-9_-]; 16 bytes give 22 characters.
    return ID_PREFIX + secrets.token_urlsafe(16)[:ID_LENGTH]


def file_id(data: bytes) -> str:
    return "file_" + hashlib.blake2b(data, digest_size=8).hexdigest()


def analyse(
    document: Document | StoredDocument | DocumentFailure, filename: str, key: str, allow_overlap: bool
) -> Analysis:
    """Read the pages and partition them (blocking: use a thread)."""
    if isinstance(document, DocumentFailure):
        return _failed(_file_ref(file_id(b""), b"", "", filename), document)
    if isinstance(document, StoredDocument):
        try:
            stream = document.path.open("rb")
        except OSError:  # its storage was reset (or removed by hand) since
            failure = DocumentFailure("file_not_found", f"the bytes of {document.file_id} are gone")
            return _failed(_file_ref(document.file_id, b"", "", filename), failure)
        with stream:
            return _analyse(stream, document.file_id, document.mime_type, filename, key, allow_overlap)
    inline = io.BytesIO(document.data)
    return _analyse(inline, file_id(document.data), document.mime_type, filename, key, allow_overlap)


def _analyse(
    stream: BinaryIO, ident: str, declared: str, filename: str, key: str, allow_overlap: bool
) -> Analysis:
    head = stream.read(16)
    stream.seek(0)
    file = _file_ref(ident, head, declared, filename)
    try:
        pages = partitioner.read_pages(stream, declared)
    except DocumentFailure as failure:
        return _failed(file, failure)
    output = partitioner.partition(pages, key, allow_overlap)
    return Analysis(file=file, pages=len(pages), output=output, error=None)


def _failed(file: dict[str, str], failure: DocumentFailure) -> Analysis:
    return Analysis(file=file, pages=1, output=[], error=_error(failure.code, failure.message))


def _file_ref(ident: str, head: bytes, declared: str, filename: str) -> dict[str, str]:
    """`file`: inline bytes are named by their BLAKE2b, a stored file by its id."""
    return {"id": ident, "filename": filename, "mime_type": documents.reported_mime(declared, head, filename)}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": None}


def build_run(
    request: Request,
    analysis: Analysis,
    *,
    run_id: str,
    created_us: int,
    speed: float,
    outcome: str | None,
    sync_cap_s: float | None,
) -> Run:
    queued_until, done = schedule(run_id, analysis.pages, speed, created_us, sync_cap_s)
    final_status = "failed" if analysis.error else "completed"
    error = analysis.error
    if outcome == "failed":
        final_status = "failed"
        error = _error("emulated_failure", "failure forced by the emulator's control API (next-create)")
    elif outcome == "cancelled":
        final_status = "cancelled"
    record = {
        "id": run_id,
        "file": analysis.file,
        "model": request.model,
        "key": request.key,
        "instructions": request.instructions,
        "n_consensus": request.n_consensus,
        "allow_overlap": request.allow_overlap,
        "output": analysis.output,
        "error": error,
        "consensus": partitioner.consensus(analysis.output, request.n_consensus, run_id),
        "credits": partitioner.credits(analysis.pages, request.n_consensus, request.model),
        "created_at": format_time(created_us),
    }
    return Run(
        id=run_id,
        owner=request.owner,
        created_us=created_us,
        filename_lower=request.filename.lower(),
        queued_until_us=queued_until,
        done_us=None if outcome == "stuck" else done,
        final_status=final_status,
        record=json.dumps(record),
    )


def render(run: Run, now: int, include_output: bool = True) -> dict[str, Any]:
    status = derive_status(now, run.queued_until_us, run.done_us, run.final_status)
    return present(json.loads(run.record), status, include_output)


def seed_runs(owner: str, count: int, status: str | None, prefix: str, now: int) -> list[Run]:
    """`count` terminal runs spread over the last 30 days, with distinct times.

    The newest is an hour old, so every run has ended by now."""
    rng = random.Random(count)
    step = max(1, (30 * _DAY_US - _HOUR_US) // count)
    start = now - 30 * _DAY_US
    mix = ("completed",) * 8 + ("failed", "cancelled")
    runs = []
    for index in range(count):
        created = start + index * step + rng.randrange(step)
        final = status or rng.choice(mix)
        runs.append(_seed_run(owner, index, created, final, prefix, rng))
    return runs


def _seed_run(owner: str, index: int, created: int, final: str, prefix: str, rng: random.Random) -> Run:
    run_id = new_partition_id()
    filename = f"{prefix}{index:06d}.pdf"
    pages = rng.randint(1, 12)
    split = rng.randint(1, pages)
    output = [{"key": f"INV-{index:06d}-A", "pages": list(range(1, split + 1))}]
    if split < pages:
        output.append({"key": f"INV-{index:06d}-B", "pages": list(range(split + 1, pages + 1))})
    error = _error("unreadable_document", "the PDF could not be read") if final == "failed" else None
    record = {
        "id": run_id,
        "file": {"id": file_id(filename.encode()), "filename": filename, "mime_type": "application/pdf"},
        "model": "retab-small",
        "key": "invoice number",
        "instructions": "Split the document into invoices.",
        "n_consensus": 1,
        "allow_overlap": True,
        "output": output,
        "error": error,
        "consensus": None,
        "credits": partitioner.credits(pages, 1, "retab-small"),
        "created_at": format_time(created),
    }
    done = created + 3_000_000 + pages * 500_000
    return Run(
        id=run_id,
        owner=owner,
        created_us=created,
        filename_lower=filename.lower(),
        queued_until_us=created + 1_000_000,
        done_us=done,
        final_status=final,
        record=json.dumps(record),
    )
