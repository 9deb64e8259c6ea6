"""The journal: rows and runs, keys claimed before sending, versions, retries, refusals."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from retab_cli.batch.hashing import Digest, LocalError
from retab_cli.batch.journal import Journal, default_path, idempotency_key
from retab_cli.batch.params import Params
from retab_cli.batch.shard import Shard
from retab_cli.errors import UsageError

from .conftest import PARAMS


def digest(content: bytes, pages: int = 1) -> Digest:
    return Digest(hashlib.sha256(content).hexdigest(), len(content), 1_700_000_000_000_000_000,
                  "application/pdf", pages)


def fake_clock() -> Iterator[str]:
    for second in count():
        yield f"2024-05-01T00:{second // 60:02d}:{second % 60:02d}.000Z"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    clock = fake_clock()
    with Journal.open(tmp_path / "j.sqlite3", PARAMS, sources=["docs"],
                      now=lambda: next(clock)) as opened:
        yield opened


A, B = digest(b"%PDF- a", 3), digest(b"%PDF- b", 2)


def test_a_new_journal_records_its_parameters(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "new" / "j.sqlite3", PARAMS, sources=["docs", "more"],
                      shard=Shard(2, 3)) as journal:
        meta = journal.meta
    assert meta["schema_version"] == "1"
    assert json.loads(meta["params"]) == {
        "key": "invoice number", "instructions": "split the invoices", "model": "retab-small",
        "n_consensus": 1, "allow_overlap": True, "bust_cache": False}
    assert meta["params_hash"] == hashlib.sha256(meta["params"].encode()).hexdigest()
    assert json.loads(meta["sources"]) == ["docs", "more"] and meta["shard"] == "2/3"


def test_a_document_goes_from_hashed_to_completed(journal: Journal) -> None:
    row = journal.record_digest("a.pdf", "/docs/a.pdf", A)
    assert (row.status, row.attempt, row.sha256, row.pages, row.duplicate) == (
        "hashed", 1, A.sha256, 3, False)
    key = journal.claim_send(row)
    assert key == idempotency_key(A.sha256, PARAMS.digest(), 1, "a.pdf")
    assert key.startswith("retab-batch-") and len(key) == 44
    sending = journal.row("a.pdf")
    assert sending is not None and sending.status == "sending"
    assert sending.idempotency_key == key and sending.claimed_at is not None
    assert journal.claim_send(row) == key  # claiming again changes nothing
    assert row.run_id is not None
    journal.record_created(row.run_id, "prtn_1", "queued")
    assert list(journal.in_flight()) == [(row.run_id, "prtn_1")]
    journal.record_status(row.run_id, "completed", credits=3.0, chunks=2)
    done = journal.row("a.pdf")
    assert done is not None
    assert (done.status, done.partition_id, done.credits, done.chunks) == (
        "completed", "prtn_1", 3.0, 2)
    assert done.sent_at is not None and done.finished_at is not None
    assert list(journal.in_flight()) == []
    journal.record_split("a.pdf", "out/a.pdf", "f" * 64)
    split = journal.row("a.pdf")
    assert split is not None and (split.split_dir, split.manifest_sha256) == ("out/a.pdf", "f" * 64)


def test_identical_bytes_share_one_run(journal: Journal) -> None:
    first = journal.record_digest("a.pdf", "/docs/a.pdf", A)
    second = journal.record_digest("copy/a.pdf", "/docs/copy/a.pdf", A)
    assert second.run_id == first.run_id
    assert (first.duplicate, second.duplicate) == (False, True)
    assert journal.claim_send(second) == journal.claim_send(first)
    assert first.run_id is not None
    journal.record_created(first.run_id, "prtn_1", "completed")
    both = [journal.row(p) for p in ("a.pdf", "copy/a.pdf")]
    assert [(r.status, r.partition_id) for r in both if r] == [("completed", "prtn_1")] * 2


def test_changed_bytes_are_a_new_version_with_a_new_key(journal: Journal) -> None:
    old = journal.record_digest("a.pdf", "/docs/a.pdf", A)
    assert old.run_id is not None
    journal.claim_send(old)
    journal.record_created(old.run_id, "prtn_1", "completed")
    journal.record_split("a.pdf", "out/a.pdf", "f" * 64)
    again = journal.record_digest("a.pdf", "/docs/a.pdf", A)  # same bytes: nothing changes
    assert (again.run_id, again.status, again.split_dir) == (old.run_id, "completed", "out/a.pdf")
    new = journal.record_digest("a.pdf", "/docs/a.pdf", B)
    assert new.run_id != old.run_id and new.status == "hashed" and new.split_dir is None
    assert journal.claim_send(new) == idempotency_key(B.sha256, PARAMS.digest(), 1, "a.pdf")
    back = journal.record_digest("a.pdf", "/docs/a.pdf", A)  # old bytes again: old run
    assert (back.run_id, back.status) == (old.run_id, "completed")


def test_a_document_leaving_a_run_hands_it_to_another(journal: Journal) -> None:
    journal.record_digest("a.pdf", "/d/a.pdf", A)
    journal.record_digest("b.pdf", "/d/b.pdf", A)
    journal.record_digest("a.pdf", "/d/a.pdf", B)
    row = journal.row("b.pdf")
    assert row is not None and row.owner == "b.pdf" and not row.duplicate
    journal.record_local_error("b.pdf", "/d/b.pdf", LocalError("empty", "b.pdf is empty"))
    journal.record_digest("c.pdf", "/d/c.pdf", A)  # a run nobody owned is taken
    row = journal.row("c.pdf")
    assert row is not None and row.owner == "c.pdf" and row.attempt == 1


def test_local_errors_are_rows_and_heal_when_the_file_is_fixed(journal: Journal) -> None:
    bad = journal.record_local_error("x.pdf", "/d/x.pdf",
                                     LocalError("unreadable_pdf", "unreadable PDF x.pdf: ..."))
    assert (bad.status, bad.error_code, bad.error_message, bad.run_id) == (
        "local_error", "unreadable_pdf", "unreadable PDF x.pdf: ...", None)
    good = journal.record_digest("x.pdf", "/d/x.pdf", A)
    assert (good.status, good.error_code, good.error_message) == ("hashed", None, None)


def test_discovered_rows_keep_their_state_until_read(journal: Journal) -> None:
    journal.discover("a.pdf", "/d/a.pdf")
    journal.record_digest("b.pdf", "/d/b.pdf", B)
    journal.discover("b.pdf", "/d/b.pdf")
    assert [(r.relpath, r.status) for r in journal.rows()] == [
        ("a.pdf", "discovered"), ("b.pdf", "hashed")]


def test_retry_failed_gives_failed_and_cancelled_runs_one_new_attempt(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal.open(path, PARAMS, sources=["d"]) as journal:
        for name, content in (("a.pdf", A), ("b.pdf", B)):
            row = journal.record_digest(name, f"/d/{name}", content)
            assert row.run_id is not None
            journal.claim_send(row)
            journal.record_created(row.run_id, f"prtn_{name[0]}", "queued")
        journal.record_status(1, "failed", error_code="unreadable_document", error_message="no")
        journal.record_status(2, "completed")
        journal.record_digest("copy.pdf", "/d/copy.pdf", A)
        # Without --retry-failed a failed run is final.
        assert journal.record_digest("a.pdf", "/d/a.pdf", A).status == "failed"
    with Journal.open(path, PARAMS, sources=["d"]) as journal:
        retried = journal.record_digest("a.pdf", "/d/a.pdf", A, retry_failed=True)
        assert (retried.attempt, retried.status, retried.error_code) == (2, "hashed", None)
        key = journal.claim_send(retried)
        assert key == idempotency_key(A.sha256, PARAMS.digest(), 2, "a.pdf")
        assert key != idempotency_key(A.sha256, PARAMS.digest(), 1, "a.pdf")
        # The same bytes at another path join attempt 2, even once it has failed too.
        assert retried.run_id is not None
        journal.record_status(retried.run_id, "failed")
        copy = journal.record_digest("copy.pdf", "/d/copy.pdf", A, retry_failed=True)
        assert (copy.attempt, copy.run_id) == (2, retried.run_id)
        # A completed run is never retried.
        assert journal.record_digest("b.pdf", "/d/b.pdf", B, retry_failed=True).attempt == 1
    with Journal.open(path, PARAMS, sources=["d"]) as journal:
        journal.record_status(3, "cancelled")
        assert journal.record_digest("a.pdf", "/d/a.pdf", A, retry_failed=True).attempt == 3


def test_other_parameters_are_refused_naming_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal.open(path, PARAMS, sources=["d"]).close()
    other = Params(key="invoice number", instructions="split the invoices",
                   model="retab-large", n_consensus=3)
    with pytest.raises(UsageError) as caught:
        Journal.open(path, other, sources=["d"])
    assert caught.value.message == (
        f"journal {path} was written with other parameters (hash {PARAMS.digest()[:12]} "
        f"there, {other.digest()[:12]} here): model: \"retab-small\" there, \"retab-large\" "
        "here; n_consensus: 1 there, 3 here")
    assert caught.value.hint == "use another --journal (or the same parameters)"
    assert caught.value.exit_code == 2
    Journal.open(path, PARAMS, sources=["elsewhere"]).close()  # sources may change


def test_another_shard_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal.open(path, PARAMS, sources=["d"], shard=Shard(1, 3)).close()
    with pytest.raises(UsageError, match=r"belongs to shard 1/3, not 2/3"):
        Journal.open(path, PARAMS, sources=["d"], shard=Shard(2, 3))


def test_files_that_are_not_journals_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all, just some bytes" * 100)
    with pytest.raises(UsageError, match=r"^cannot open journal .*junk.sqlite3: file is not a "
                                         r"database$"):
        Journal.open(junk, PARAMS, sources=["d"])
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(UsageError, match=r"is an SQLite file but not a batch journal"):
        Journal.open(other, PARAMS, sources=["d"])
    with pytest.raises(UsageError, match=r"other.sqlite3 is not a batch journal"):
        Journal.read(other)
    with pytest.raises(UsageError, match=r"^no such journal: "):
        Journal.read(tmp_path / "missing.sqlite3")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    Journal.open(path, PARAMS, sources=["d"]).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")
    with pytest.raises(UsageError, match=r"has schema version 2; this retab reads version 1"):
        Journal.open(path, PARAMS, sources=["d"])


def test_one_writer_at_a_time_and_readers_alongside(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal.open(path, PARAMS, sources=["d"]) as writer:
        writer.record_digest("a.pdf", "/d/a.pdf", A)
        with pytest.raises(UsageError, match=r"is in use by another batch"):
            Journal.open(path, PARAMS, sources=["d"])
        with Journal.read(path) as reader:
            rows = reader.rows()
            first = next(rows)
            writer.record_digest("b.pdf", "/d/b.pdf", B)  # a reader does not block writes
            assert first.relpath == "a.pdf"
            assert [r.relpath for r in reader.rows()] == ["a.pdf", "b.pdf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.sqlite3"]  # one file left


def test_uploads_are_kept_by_sha256(journal: Journal) -> None:
    assert journal.upload(A.sha256) is None
    mime = {"filename": "a.pdf", "url": "https://files.example/a"}
    journal.record_upload(A.sha256, mime)
    assert journal.upload(A.sha256) == mime


def test_unchanged_compares_size_and_mtime(journal: Journal) -> None:
    row = journal.record_digest("a.pdf", "/d/a.pdf", A)
    assert row.unchanged(A.size, A.mtime_ns)
    assert not row.unchanged(A.size + 1, A.mtime_ns)
    assert not row.unchanged(A.size, A.mtime_ns + 1)


def test_the_default_path_is_in_the_data_dir_and_names_the_batch(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    path = default_path([a, b], PARAMS, env=env)
    assert path.parent == tmp_path / "data" / "retab" / "batch"
    assert path.name.endswith(".sqlite3") and len(path.stem) == 16
    assert default_path([f"{b}/", a], PARAMS, env=env) == path  # resolved, order-free
    assert default_path([a], PARAMS, env=env) != path
    assert default_path([a, b], PARAMS, Shard(1, 2), env=env) != path
    assert default_path([a, b], Params(key="other"), env=env) != path


def test_claim_sends_claims_a_group_at_once(journal: Journal) -> None:
    rows = [journal.record_digest(name, f"/d/{name}", content)
            for name, content in (("a.pdf", A), ("b.pdf", B), ("copy.pdf", A))]
    keys = journal.claim_sends(rows)
    assert keys == [idempotency_key(d.sha256, PARAMS.digest(), 1, name)
                    for d, name in ((A, "a.pdf"), (B, "b.pdf"), (A, "a.pdf"))]  # a twin
    assert [r.status for r in journal.rows()] == ["sending"] * 3
    unhashed = journal.record_local_error("x.pdf", "/d/x.pdf", LocalError("empty", "x"))
    with pytest.raises(ValueError, match=r"^x\.pdf has no run to send$"):
        journal.claim_sends([rows[0], unhashed])
