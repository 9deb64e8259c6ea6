"""`partitions batch` end to end against the emulator: a folder of a few hundred
documents to runs, chunk files and a report; exactly one run per distinct document."""

from __future__ import annotations

import json
from pathlib import Path

from retab_cli.batch.journal import Journal

from .corpus import check_chunks, make_corpus
from .support import KEY, batch_args, creates, emulator_runs, report
from cli_support import Cli
from emulator_support import Emulator


def test_a_folder_of_hundreds_of_documents(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 240)
    journal, out = tmp_path / "j.sqlite3", tmp_path / "out"
    result = cli(*batch_args(corpus.root, journal, "--split-to", str(out), "-o", "json"))
    assert result.exit_code == 3, result.stderr  # three documents refused locally
    summary = result.json()
    assert summary["documents"] == {"completed": 243, "local_error": 3}
    assert summary["exit_code"] == 3 and summary["stopped"] is None
    assert summary["totals"]["runs"] == 240
    assert summary["requests"] == len(emu.requests()) and summary["rate_limited"] == 0
    lines = result.stderr.splitlines()
    assert lines[0] == f"journal: {journal}"
    assert sorted(line for line in lines if line.startswith("skipped: ")) == [
        "skipped: broken/empty.txt is empty",
        "skipped: broken/noise.pdf is named .pdf but is not a PDF (its bytes look like "
        "unrecognised data)",
        "skipped: unreadable PDF broken/corrupt.pdf: startxref not found"]
    assert "246 documents: 243 completed, 3 local_error; 240 runs" in result.stderr

    rows = {row["path"]: row for row in report(cli, journal)}
    assert sorted(rows) == corpus.documents
    for relpath, code in corpus.refused.items():
        assert (rows[relpath]["status"], rows[relpath]["error_code"]) == ("local_error", code)
    for copy, original in corpus.copies.items():  # identical bytes: one run between them
        assert rows[copy]["partition_id"] == rows[original]["partition_id"]
        assert rows[copy]["output_dir"] == str(out / copy)
    runs = emulator_runs(emu)
    assert len(runs) == 240 and len(creates(emu)) == 240  # one create per distinct document
    assert {run["id"] for run in runs} == {rows[p]["partition_id"] for p in corpus.distinct}
    by_id = {run["id"]: run for run in runs}
    for relpath in [*corpus.distinct, *corpus.copies]:
        row = rows[relpath]
        assert row["status"] == "completed" and row["output_dir"] == str(out / relpath)
        manifest = check_chunks(out, relpath)
        assert manifest["partition_id"] == row["partition_id"]
        assert len(manifest["chunks"]) == row["chunks"] == (row["pages"] + 1) // 2
        run = by_id[row["partition_id"]]
        assert run["key"] == KEY and run["status"] == "completed"
        assert run["file"]["filename"] in (Path(relpath).name,
                                           Path(corpus.copies.get(relpath, relpath)).name)


def test_running_it_again_sends_nothing(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 12)
    journal, out = tmp_path / "j.sqlite3", tmp_path / "out"
    first = cli(*batch_args(corpus.root, journal, "--split-to", str(out)))
    assert first.exit_code == 3, first.stderr
    before = report(cli, journal)
    emu.clear_requests()
    again = cli(*batch_args(corpus.root, journal, "--split-to", str(out), "-o", "json"))
    assert again.exit_code == 3 and again.json()["documents"] == {"completed": 15,
                                                                   "local_error": 3}
    assert emu.requests() == []  # done and split: not a single request
    assert report(cli, journal) == before


def test_jsonl_events_follow_each_document(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    corpus = make_corpus(docs, 2, awkward=False)
    (docs / "empty.txt").write_bytes(b"")
    result = cli(*batch_args(docs, tmp_path / "j.sqlite3", "--split-to", str(tmp_path / "o"),
                             "-o", "jsonl"))
    assert result.exit_code == 3, result.stderr
    events = result.jsonl()
    by_path: dict[str, list[str]] = {}
    for event in events[:-1]:
        by_path.setdefault(event["path"], []).append(event["event"])
    assert by_path["empty.txt"] == ["local_error"]
    for relpath in corpus.distinct:
        seen = by_path[relpath]
        assert seen[:2] == ["hashed", "created"] and seen[-2:] == ["ended", "split"]
        assert set(seen[2:-2]) <= {"status"}
    last = next(e for e in events if e["path"] == corpus.distinct[0] and e["event"] == "split")
    assert last["status"] == "completed" and last["output_dir"] == str(tmp_path / "o" /
                                                                        corpus.distinct[0])
    assert events[-1]["event"] == "summary" and events[-1]["exit_code"] == 3
    assert events[-1]["documents"] == {"completed": 2, "local_error": 1}


def test_dry_run_prints_the_plan_and_sends_nothing(cli: Cli, emu: Emulator,
                                                   tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 9)
    journal = tmp_path / "j.sqlite3"
    plan = cli(*batch_args(corpus.root, journal, "--dry-run", "--model", "retab-large",
                           "--consensus", "2", "-o", "json"))
    assert plan.exit_code == 0, plan.stderr
    pages = sum(1 + i % 3 for i in range(9))
    assert plan.json() == {
        "journal": str(journal), "shard": "1/1", "documents": 15, "duplicates": 3, "done": 0,
        "in_flight": 0, "local_errors": 3, "to_send": 9, "pages": pages,
        "credits": pages * 2 * 3.0, "dollars": pages * 2 * 3.0 / 100, "model": "retab-large",
        "tier_known": True}
    assert emu.requests() == [] and not journal.exists()
    table = cli(*batch_args(corpus.root, journal, "--dry-run", "-o", "table"))
    assert table.stdout.splitlines()[:3] == [f"journal: {journal}", "documents: 15",
                                             "duplicates (identical bytes and parameters): 3"]
    assert table.stderr.endswith("dry run: nothing sent\n")


def test_a_journal_of_other_parameters_is_refused(cli: Cli, emu: Emulator,
                                                  tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 2, awkward=False)
    journal = tmp_path / "j.sqlite3"
    assert cli(*batch_args(corpus.root, journal)).exit_code == 0
    emu.clear_requests()
    other = cli("partitions", "batch", str(corpus.root), "--key", "contract number",
                "--journal", str(journal))
    assert other.exit_code == 2 and other.stdout == ""
    error = other.stderr.splitlines()[1]
    assert error.startswith(f"error: journal {journal} was written with other parameters")
    assert 'key: "invoice number" there, "contract number" here' in error
    assert other.stderr.splitlines()[2] == "hint: use another --journal (or the same parameters)"
    assert emu.requests() == []


def test_nothing_found_is_bad_input(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.bin").write_bytes(b"\x00")
    result = cli(*batch_args(tmp_path / "docs", tmp_path / "j.sqlite3"))
    assert result.exit_code == 2
    assert (f"error: no documents found in {tmp_path / 'docs'} (check the paths and "
            "--include/--exclude)") in result.stderr.splitlines()


def test_bad_options_are_refused_before_anything(cli: Cli, emu: Emulator,
                                                 tmp_path: Path) -> None:
    docs = str(tmp_path)
    for args, message in (
            (["--shard", "4/3"], "error: invalid --shard '4/3': expected I/N with 1 <= I <= N, "
                                 "e.g. 2/3"),
            (["--max-duration", "5x"], "error: invalid --max-duration"),
            (["--max-failures", "-1"], "error: --max-failures must be 0 (never stop) or more"),
            (["--consensus", "9"], "error: --consensus must be between 1 and 8 (got 9)"),
            (["--include", "a/**b"], "error: invalid --include 'a/**b': '**' must be a whole "
                                     "path segment")):
        result = cli("partitions", "batch", docs, "--key", KEY, *args)
        assert (result.exit_code, result.stdout) == (2, ""), args
        assert result.stderr.startswith(message), (args, result.stderr)
    missing_key = cli("partitions", "batch", docs)
    assert missing_key.exit_code == 2 and "--key is required" in missing_key.stderr
    assert emu.requests() == []


def test_the_journal_records_what_was_sent(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 1, awkward=False)
    journal = tmp_path / "j.sqlite3"
    assert cli(*batch_args(corpus.root, journal, "--instructions", "one per invoice")
               ).exit_code == 0
    [sent] = creates(emu)
    body = sent["body"]
    assert {k: v for k, v in body.items() if k != "document"} == {
        "key": KEY, "instructions": "one per invoice", "background": True}
    assert body["document"]["filename"] == Path(corpus.distinct[0]).name
    with Journal.read(journal) as opened:
        [row] = list(opened.rows())
        assert sent["headers"]["idempotency-key"] == row.idempotency_key
        assert json.loads(opened.meta["params"])["instructions"] == "one per invoice"
