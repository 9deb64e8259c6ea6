"""report: shard journals merged by path, rows and totals, CSV and markdown escaping."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest

from retab_cli.batch.hashing import Digest, LocalError
from retab_cli.batch.journal import Journal
from retab_cli.batch.report import (
    FIELDS,
    Totals,
    check_fields,
    markdown_lines,
    merged_rows,
    report_row,
    select,
    tally,
    write_csv,
)
from retab_cli.batch.shard import Shard
from retab_cli.errors import UsageError

from .conftest import PARAMS


def digest(content: bytes, pages: int) -> Digest:
    return Digest(hashlib.sha256(content).hexdigest(), len(content), 1, "text/plain", pages)


def complete(journal: Journal, relpath: str, content: bytes, pages: int, partition_id: str,
             status: str = "completed", **outcome: object) -> None:
    row = journal.record_digest(relpath, f"/docs/{relpath}", digest(content, pages))
    assert row.run_id is not None
    if row.duplicate:
        return
    journal.claim_send(row)
    journal.record_created(row.run_id, partition_id, "queued")
    journal.record_status(row.run_id, status, **outcome)  # type: ignore[arg-type]


PATHS = [f"dir{i % 4}/doc-{i:02d}.txt" for i in range(30)]


def shard_journals(tmp_path: Path) -> list[Path]:
    paths = []
    for index in (1, 2, 3):
        shard = Shard(index, 3)
        path = tmp_path / f"shard-{index}.sqlite3"
        with Journal.open(path, PARAMS, sources=["docs"], shard=shard) as journal:
            for i, relpath in enumerate(PATHS):
                if shard.takes(relpath):
                    complete(journal, relpath, f"doc {i}".encode(), 2, f"prtn_{i:02d}",
                             credits=2.0, chunks=1)
        paths.append(path)
    return paths


def test_three_shard_journals_merge_into_one_report(tmp_path: Path) -> None:
    journals = [Journal.read(p) for p in shard_journals(tmp_path)]
    totals = Totals()
    records = list(tally((report_row(r) for r in merged_rows(journals)), totals))
    assert [r["path"] for r in records] == sorted(PATHS)
    assert all(sum(1 for j in journals if j.row(p)) == 1 for p in PATHS)  # disjoint
    first = next(r for r in records if r["path"] == "dir0/doc-00.txt")
    assert first == {"path": "dir0/doc-00.txt", "sha256": hashlib.sha256(b"doc 0").hexdigest(),
                     "partition_id": "prtn_00", "status": "completed", "pages": 2,
                     "chunks": 1, "credits": 2.0, "error_code": None,
                     "error_message": None, "output_dir": None}
    assert totals.as_dict() == {"documents": 30, "statuses": {"completed": 30}, "runs": 30,
                                "pages": 60, "chunks": 30, "credits": 60.0, "dollars": 0.6}
    assert totals.summary() == ("30 documents: 30 completed; 30 runs, 60 pages, 30 chunks, "
                                "60 credits ($0.60)")
    for journal in journals:
        journal.close()


def test_the_newest_attempt_wins_a_conflict(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    with Journal.open(old, PARAMS, sources=["d"]) as journal:
        complete(journal, "a.txt", b"a", 1, "prtn_old", "failed", error_code="boom")
        complete(journal, "only-old.txt", b"o", 1, "prtn_o")
    with Journal.open(new, PARAMS, sources=["d"]) as journal:
        complete(journal, "a.txt", b"a", 1, "prtn_a1", "failed")
        row = journal.record_digest("a.txt", "/d/a.txt", digest(b"a", 1), retry_failed=True)
        assert row.run_id is not None and row.attempt == 2
        journal.claim_send(row)
        journal.record_created(row.run_id, "prtn_new", "completed")
    for order in ([new, old], [old, new]):
        readers = [Journal.read(p) for p in order]
        rows = list(merged_rows(readers))
        assert [(r.relpath, r.partition_id, r.attempt) for r in rows] == [
            ("a.txt", "prtn_new", 2), ("only-old.txt", "prtn_o", 1)]
        for reader in readers:
            reader.close()


def test_duplicates_local_errors_and_pending_rows(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    with Journal.open(path, PARAMS, sources=["d"]) as journal:
        complete(journal, "a.txt", b"same", 3, "prtn_a", credits=3.0, chunks=2)
        complete(journal, "copy.txt", b"same", 3, "prtn_a")
        journal.record_local_error("bad.pdf", "/d/bad.pdf",
                                   LocalError("unreadable_pdf", "unreadable PDF bad.pdf: x"))
        journal.record_digest("later.txt", "/d/later.txt", digest(b"later", 1))
        journal.record_split("a.txt", "out/a.txt", "0" * 64)
    with Journal.read(path) as journal:
        totals = Totals()
        records = list(tally((report_row(r) for r in merged_rows([journal])), totals))
    assert [select(r, ("path", "partition_id", "status", "chunks", "error_code", "output_dir"))
            for r in records] == [
        {"path": "a.txt", "partition_id": "prtn_a", "status": "completed", "chunks": 2,
         "error_code": None, "output_dir": "out/a.txt"},
        {"path": "bad.pdf", "partition_id": None, "status": "local_error", "chunks": None,
         "error_code": "unreadable_pdf", "output_dir": None},
        {"path": "copy.txt", "partition_id": "prtn_a", "status": "completed", "chunks": 2,
         "error_code": None, "output_dir": None},
        {"path": "later.txt", "partition_id": None, "status": "hashed", "chunks": None,
         "error_code": None, "output_dir": None}]
    # The shared run is paid once; both documents' chunks are files of their own.
    assert totals.as_dict() == {
        "documents": 4, "statuses": {"completed": 2, "hashed": 1, "local_error": 1},
        "runs": 1, "pages": 3, "chunks": 4, "credits": 3.0, "dollars": 0.03}


HOSTILE = {"path": "=cmd|' /C calc'!A0.txt", "sha256": "ab" * 32, "partition_id": "prtn_1",
           "status": "failed", "pages": 2, "chunks": None, "credits": 0.4,
           "error_code": "@bad", "error_message": 'line one\nline "two", -3\x1b[31m red',
           "output_dir": "+out/a|b`c`"}


def test_csv_is_rfc_4180_and_defuses_formulas() -> None:
    out = io.StringIO(newline="")
    write_csv([HOSTILE], FIELDS, out)
    text = out.getvalue()
    assert text.endswith("\r\n") and text.count("\r\n") == 2
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    assert header == list(FIELDS)
    assert row == ["'=cmd|' /C calc'!A0.txt", "ab" * 32, "prtn_1", "failed", "2", "", "0.4",
                   "'@bad", 'line one\\nline "two", -3\\x1b[31m red', "'+out/a|b`c`"]
    assert '"line one\\nline ""two"", -3\\x1b[31m red"' in text  # quotes doubled


def test_csv_leaves_negative_numbers_alone() -> None:
    out = io.StringIO(newline="")
    write_csv([{"pages": -1, "path": "-rf"}], ["pages", "path"], out)
    assert out.getvalue() == "pages,path\r\n-1,'-rf\r\n"


def test_markdown_escapes_pipes_backticks_and_markup() -> None:
    totals = Totals()
    lines = list(markdown_lines(tally([HOSTILE], totals), ["path", "pages", "credits",
                                                           "error_message", "output_dir"],
                                totals))
    assert lines == [
        "| path | pages | credits | error_message | output_dir |",
        "| --- | ---: | ---: | --- | --- |",
        "| =cmd\\|' /C calc'!A0.txt | 2 | 0.4 | line one\\\\nline \"two\", -3\\\\x1b\\[31m red "
        "| +out/a\\|b\\`c\\` |",
        "",
        "**Totals:** 1 document: 1 failed; 1 run, 2 pages, 0 chunks, 0.4 credits ($0.00)"]


def test_fields_are_checked_and_may_be_comma_separated() -> None:
    assert check_fields(None) == FIELDS
    assert check_fields(["path,status", " credits "]) == ("path", "status", "credits")
    with pytest.raises(UsageError) as caught:
        check_fields(["path,colour"])
    assert caught.value.message == ("unknown field 'colour' for report; choose from "
                                    + ", ".join(FIELDS))
    assert caught.value.exit_code == 2
