"""Sending one journaled document: its body (inline, or uploaded through the files API),
its claimed Idempotency-Key, and the look-up that replaces a key the service forgot.

Every resend of a run is the same request: the filename and type come from the first
claim (`Journal.sent_as`), the parameters from the journal's, the bytes are checked
against the sha256 journaled, and an upload's MIMEData is reused by sha256. So the
service replays the run it made instead of making a second one, for as long as it keeps
keys (24 h on the emulator). A claim older than that is looked up in the listing first.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retab_cli.batch.journal import Journal, Row
from retab_cli.batch.params import Params
from retab_cli.creating import CreateOptions, default_instructions
from retab_cli.documents import Document, bytes_held, plan_transport
from retab_cli.errors import UsageError
from retab_cli.parsing import parse_time

if TYPE_CHECKING:
    from retab_cli.client import Client

KEY_LIFETIME = timedelta(hours=23)  # under the 24 h the service keeps an Idempotency-Key
CLOCK_SKEW = timedelta(minutes=5)   # between this machine and the service


def batch_params(key: str, instructions: str | None, model: str | None, consensus: int | None,
                 no_overlap: bool, bust_cache: bool) -> Params:
    """The journal's parameters: exactly what goes in every body (the instructions
    spelled out, so a later default can never change what a resent key carries)."""
    return Params(key=key, instructions=instructions or default_instructions(key), model=model,
                  n_consensus=consensus or 1, allow_overlap=not no_overlap,
                  bust_cache=bust_cache)


def create_options(params: Params) -> CreateOptions:
    """The create engine's options for these parameters, always in the background."""
    return CreateOptions(key=params.key, instructions=params.instructions, model=params.model,
                         consensus=None if params.n_consensus == 1 else params.n_consensus,
                         no_overlap=not params.allow_overlap, bust_cache=params.bust_cache,
                         background=True)


@dataclass(frozen=True)
class Outgoing:
    """A claimed row's document as its first claim sends it, and how it travels."""

    document: Document
    transport: str  # "inline" or "upload" (documents.plan_transport, --upload auto)

    @property
    def held(self) -> int:
        """The bytes it keeps in memory while it is sent (documents.bytes_held)."""
        return bytes_held(self.document, self.transport)


def outgoing(journal: Journal, row: Row) -> Outgoing:
    document = _document(journal, row)
    return Outgoing(document, plan_transport(document, "auto"))


async def send_document(client: Client, options: CreateOptions, journal: Journal, row: Row,
                        key: str, out: Outgoing) -> dict[str, Any]:
    """Create the run of a claimed row (or find the one its forgotten key made)."""
    assert row.sha256 is not None
    document = out.document
    filename = document.filename
    if out.transport == "upload":
        document = await _uploaded(client, journal, document, row.sha256)
    body = await asyncio.to_thread(_body, options, document, row.sha256)
    if _key_forgotten(row.claimed_at):
        earlier = await find_earlier_run(client, options, row, filename)
        if earlier is not None:
            return earlier
    result = await client.create(body, idempotency_key=key)
    data: dict[str, Any] = result.data
    return data


def held_while_sent(journal: Journal, row: Row) -> int:
    """The bytes a claimed row's document keeps in memory while it is sent."""
    return outgoing(journal, row).held


def _document(journal: Journal, row: Row) -> Document:
    """The document as its first claim sends it (the filename and type fixed then)."""
    assert row.run_id is not None
    filename, mime_type = journal.sent_as(row.run_id)
    return Document(label=row.relpath, filename=filename, mime_type=mime_type,
                    size=row.size, path=Path(row.source))


def _body(options: CreateOptions, document: Document, sha256: str) -> dict[str, Any]:
    body = options.body(document)  # reads an inline document whole, hashing it on the way
    if document.path is not None and document.url is None and document.known_sha256 != sha256:
        raise UsageError(f"{document.label} changed after it was read; run the batch again "
                         "to send the new version", file=document.label)
    return body


async def _uploaded(client: Client, journal: Journal, document: Document,
                    sha256: str) -> Document:
    """Too big to go inline: the files API's MIMEData, uploaded once per sha256."""
    from retab_cli.uploads import upload

    mime_data = journal.upload(sha256)
    if mime_data is None:
        mime_data = await upload(client, document)
        journal.record_upload(sha256, mime_data)
    return Document(label=document.label, filename=str(mime_data["filename"]),
                    mime_type=document.mime_type, size=None, url=str(mime_data["url"]))


def _key_forgotten(claimed_at: str | None, now: datetime | None = None) -> bool:
    claimed = parse_time(claimed_at) if claimed_at else None
    if claimed is None:
        return False
    return (now or datetime.now(UTC)) - claimed > KEY_LIFETIME


async def find_earlier_run(client: Client, options: CreateOptions, row: Row,
                           filename: str) -> dict[str, Any] | None:
    """The run an old claim made, if the create reached the service: same filename, key,
    file (bytes) and a creation after the claim, found by listing from the claim's day."""
    from retab_cli.paging import Listing, ListQuery

    claimed = parse_time(row.claimed_at)
    assert claimed is not None
    file_id = await asyncio.to_thread(_file_id, Path(row.source))
    query = ListQuery(filename=filename, from_date=claimed.date().isoformat(), order="asc",
                      limit=None)
    async for page in Listing(client, query).pages():
        for item in page:
            if _made_by(item, options, filename, file_id, claimed - CLOCK_SKEW):
                return item
    return None


def _made_by(item: dict[str, Any], options: CreateOptions, filename: str, file_id: str,
             since: datetime) -> bool:
    file = item.get("file")
    file = file if isinstance(file, dict) else {}
    created = parse_time(item.get("created_at"))
    return (file.get("filename") == filename and file.get("id") in (file_id, None)
            and item.get("key") == options.key and created is not None and created >= since)


def _file_id(path: Path) -> str:
    """The service's file id: BLAKE2b (8 bytes) of the file's bytes (api-contract.md)."""
    digest = hashlib.blake2b(digest_size=8)
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    return "file_" + digest.hexdigest()
