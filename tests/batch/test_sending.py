"""Sending one journaled document: the body its parameters make, bytes checked against
the journal, an upload made once per sha256, the look-up rule for forgotten keys."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retab_cli.batch.hashing import Digest
from retab_cli.batch.journal import Journal
from retab_cli.batch.sending import (
    _body,
    _key_forgotten,
    _made_by,
    _uploaded,
    batch_params,
    create_options,
    held_while_sent,
)
from retab_cli.budget import Budget
from retab_cli.client import Client
from retab_cli.creating import default_instructions
from retab_cli.documents import CHUNK, Document
from retab_cli.errors import UsageError

from upload_support import FilesApi, Storage

KEY = "rt_live_upload_secret_0123456789"


@pytest.fixture
def api() -> Iterator[FilesApi]:
    storage = Storage.start()
    files = FilesApi.start(storage, KEY)
    yield files
    files.stop()
    storage.stop()


def test_the_parameters_spell_out_the_body() -> None:
    params = batch_params("invoice number", None, None, None, False, False)
    assert params.instructions == default_instructions("invoice number")
    body = create_options(params).body(Document("a", "a.txt", "text/plain", 1, url="data:,x"))
    assert body == {"document": {"filename": "a.txt", "url": "data:,x"}, "key": "invoice number",
                    "instructions": default_instructions("invoice number"), "background": True}
    tuned = batch_params("k", "split", "retab-large", 3, True, True)
    body = create_options(tuned).body(Document("a", "a.txt", "text/plain", 1, url="data:,x"))
    assert {k: v for k, v in body.items() if k != "document"} == {
        "key": "k", "instructions": "split", "model": "retab-large", "n_consensus": 3,
        "allow_overlap": False, "bust_cache": True, "background": True}


def test_bytes_that_changed_since_they_were_hashed_are_not_sent(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"Invoice number: 1")
    options = create_options(batch_params("k", None, None, None, False, False))
    doc = Document("a.txt", "a.txt", "text/plain", 17, path=path)
    assert _body(options, doc, hashlib.sha256(b"Invoice number: 1").hexdigest())
    path.write_bytes(b"Invoice number: 2")  # same size, other bytes
    changed = Document("a.txt", "a.txt", "text/plain", 17, path=path)
    with pytest.raises(UsageError, match=r"^a\.txt changed after it was read; run the batch "):
        _body(options, changed, hashlib.sha256(b"Invoice number: 1").hexdigest())


def test_an_upload_is_made_once_per_sha256(tmp_path: Path, api: FilesApi) -> None:
    data = b"%PDF-1.7\n" + bytes(range(256)) * 400
    path = tmp_path / "big.pdf"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    journal = Journal.open(tmp_path / "j.sqlite3", batch_params("k", None, None, None, False,
                                                                False), sources=["d"])

    async def twice() -> list[Document]:
        async with Client(api.url, KEY, budget=Budget(0)) as client:
            docs = []
            for name in ("big.pdf", "copy.pdf"):
                doc = Document(name, name, "application/pdf", len(data), path=path)
                docs.append(await _uploaded(client, journal, doc, sha))
            return docs

    first, second = asyncio.run(twice())
    [file_id] = api.sessions
    assert api.paths() == ["POST /v1/files/upload", f"POST /v1/files/upload/{file_id}/complete"]
    assert journal.upload(sha) == {"filename": "big.pdf", "url": f"retab://files/{file_id}"}
    for doc in (first, second):  # the stored file is the document sent
        assert (doc.filename, doc.url, doc.size) == ("big.pdf", f"retab://files/{file_id}", None)
    journal.close()


def test_a_key_is_looked_up_once_the_service_may_have_forgotten_it() -> None:
    now = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)

    def at(hours: float) -> str:
        return (now - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")

    assert _key_forgotten(at(22.9), now) is False
    assert _key_forgotten(at(23.1), now) is True
    assert _key_forgotten(None, now) is False
    options = create_options(batch_params("invoice number", None, None, None, False, False))
    since = now - timedelta(hours=30)
    item = {"key": "invoice number", "created_at": at(29),
            "file": {"id": "file_0011223344556677", "filename": "a.pdf"}}
    assert _made_by(item, options, "a.pdf", "file_0011223344556677", since)
    assert not _made_by(item, options, "a.pdf", "file_ffffffffffffffff", since)  # other bytes
    assert not _made_by(item, options, "b.pdf", "file_0011223344556677", since)
    assert not _made_by({**item, "key": "contract"}, options, "a.pdf",
                        "file_0011223344556677", since)
    assert not _made_by({**item, "created_at": at(31)}, options, "a.pdf",
                        "file_0011223344556677", since)  # made before the claim


def test_a_document_uploaded_holds_one_chunk_of_the_byte_budget_not_its_size(
        tmp_path: Path) -> None:
    """A 40 MiB document goes through the files API, streamed: holding its whole size
    against the 64 MiB budget would make every other send wait for it."""
    small, big = tmp_path / "small.pdf", tmp_path / "big.pdf"
    small.write_bytes(b"%PDF-1.7 small")
    with big.open("wb") as fh:
        fh.write(b"%PDF-1.7\n")
        fh.truncate(40 * 1024 * 1024)  # sparse
    params = batch_params("k", None, None, None, False, False)
    with Journal.open(tmp_path / "j.sqlite3", params, sources=[str(tmp_path)]) as journal:
        held = {}
        for path in (small, big):
            size = path.stat().st_size
            digest = Digest(hashlib.sha256(path.name.encode()).hexdigest(), size, 1,
                            "application/pdf", 1)
            row = journal.record_digest(path.name, str(path), digest)
            journal.claim_send(row)
            claimed = journal.row(path.name)
            assert claimed is not None
            held[path.name] = held_while_sent(journal, claimed)
    assert held == {"small.pdf": small.stat().st_size, "big.pdf": CHUNK}
