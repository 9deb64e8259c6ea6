"""`retab partitions report`: every output mode, --fields, merging, and bad input."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from retab_cli.batch.hashing import Digest, LocalError
from retab_cli.batch.journal import Journal
from retab_cli.batch.shard import WHOLE, Shard

from .conftest import PARAMS
from cli_support import Cli
from emulator_support import Emulator

SUMMARY = ("4 documents: 2 completed, 1 failed, 1 local_error; 3 runs, 6 pages, 3 chunks, "
           "6 credits ($0.06)")


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def write_journal(path: Path, shard: Shard | None = None) -> Path:
    """Three runs (one failed) and a local error, or the part of them a shard takes."""
    with Journal.open(path, PARAMS, sources=["d"], shard=shard or WHOLE) as j:
        for i in range(3):
            relpath = f"dir/doc-{i}.txt"
            if shard and not shard.takes(relpath):
                continue
            content = f"x{i}".encode()
            row = j.record_digest(relpath, f"/d/{relpath}",
                                  Digest(sha(content), len(content), 1, "text/plain", 2))
            assert row.run_id is not None
            j.claim_send(row)
            j.record_created(row.run_id, f"prtn_{i:021d}", "queued")
            j.record_status(row.run_id, "completed" if i else "failed", credits=2.0, chunks=1,
                            error_code=None if i else "boom",
                            error_message=None if i else "it broke")
            if i == 2:
                j.record_split(relpath, f"out/{relpath}", "0" * 64)
        if shard is None or shard.takes("bad.pdf"):
            j.record_local_error("bad.pdf", "/d/bad.pdf",
                                 LocalError("unreadable_pdf", "unreadable PDF bad.pdf: x"))
    return path


def row(path: str, **values: object) -> dict[str, object]:
    base: dict[str, object] = dict.fromkeys(
        ("sha256", "partition_id", "status", "pages", "chunks", "credits", "error_code",
         "error_message", "output_dir"))
    return {"path": path, **base, **values}


EXPECTED = [
    row("bad.pdf", status="local_error", error_code="unreadable_pdf",
        error_message="unreadable PDF bad.pdf: x"),
    row("dir/doc-0.txt", sha256=sha(b"x0"), partition_id="prtn_" + "0" * 21, status="failed",
        pages=2, chunks=1, credits=2.0, error_code="boom", error_message="it broke"),
    row("dir/doc-1.txt", sha256=sha(b"x1"), partition_id="prtn_" + "0" * 20 + "1",
        status="completed", pages=2, chunks=1, credits=2.0),
    row("dir/doc-2.txt", sha256=sha(b"x2"), partition_id="prtn_" + "0" * 20 + "2",
        status="completed", pages=2, chunks=1, credits=2.0, output_dir="out/dir/doc-2.txt"),
]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """report reads files only: no emulator behind this one."""
    return Cli(Emulator("http://127.0.0.1:9", "rt_test_unused", None), tmp_path)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return write_journal(tmp_path / "j.sqlite3")


def test_json_is_one_array_of_rows_and_the_totals_go_to_stderr(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "-o", "json")
    assert result.exit_code == 0
    assert result.json() == EXPECTED
    assert result.stderr == SUMMARY + "\n"


def test_jsonl_is_one_row_per_line(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "-o", "jsonl")
    assert (result.exit_code, result.jsonl(), result.stderr) == (0, EXPECTED, SUMMARY + "\n")


def test_fields_narrow_json(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "--json", "--fields", "path,status")
    assert result.exit_code == 0
    assert result.json() == [{"path": r["path"], "status": r["status"]} for r in EXPECTED]


def test_the_table_shows_the_chosen_columns_path_last(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "-o", "table")
    assert result.exit_code == 0 and result.stderr == SUMMARY + "\n"
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "PAGES", "CHUNKS", "CREDITS", "PARTITION_ID",
                                "ERROR_CODE", "PATH"]
    assert lines[1].split() == ["local_error", "-", "-", "-", "-", "unreadable_pdf", "bad.pdf"]
    assert lines[2].split() == ["failed", "2", "1", "2", "prtn_" + "0" * 21, "boom",
                                "dir/doc-0.txt"]
    assert len(lines) == 5
    narrowed = cli("partitions", "report", str(journal), "-o", "table", "--fields",
                   "path,output_dir")
    assert [line.split() for line in narrowed.stdout.splitlines()] == [
        ["PATH", "OUTPUT_DIR"], ["bad.pdf", "-"], ["dir/doc-0.txt", "-"], ["dir/doc-1.txt", "-"],
        ["dir/doc-2.txt", "out/dir/doc-2.txt"]]


def test_csv_has_every_column_by_default(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "-o", "csv")
    assert result.exit_code == 0 and result.stderr == SUMMARY + "\n"
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert [r["path"] for r in rows] == [r["path"] for r in EXPECTED]
    assert rows[1] == {"path": "dir/doc-0.txt", "sha256": sha(b"x0"),
                       "partition_id": "prtn_" + "0" * 21, "status": "failed", "pages": "2",
                       "chunks": "1", "credits": "2", "error_code": "boom",
                       "error_message": "it broke", "output_dir": ""}


def test_csv_lines_end_in_crlf_on_the_real_stdout(cli: Cli, journal: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "retab_cli", "partitions", "report",
                           str(journal), "-o", "csv", "--fields", "path,status"],
                          capture_output=True, check=True)
    assert proc.stdout == (b"path,status\r\nbad.pdf,local_error\r\ndir/doc-0.txt,failed\r\n"
                           b"dir/doc-1.txt,completed\r\ndir/doc-2.txt,completed\r\n")


def test_csv_is_also_taken_from_retab_output(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "--fields", "path",
                 env={"RETAB_OUTPUT": "csv"})
    assert (result.exit_code, result.stdout) == (
        0, "path\nbad.pdf\ndir/doc-0.txt\ndir/doc-1.txt\ndir/doc-2.txt\n")  # CRLF: above


def test_markdown_carries_its_totals_and_leaves_stderr_quiet(cli: Cli, journal: Path) -> None:
    result = cli("partitions", "report", str(journal), "-o", "markdown", "--fields",
                 "path,status,credits")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [
        "| path | status | credits |", "| --- | --- | ---: |",
        "| bad.pdf | local\\_error |  |", "| dir/doc-0.txt | failed | 2 |",
        "| dir/doc-1.txt | completed | 2 |", "| dir/doc-2.txt | completed | 2 |", "",
        "**Totals:** " + SUMMARY.replace("local_error", "local\\_error")]


def test_three_shard_journals_merge_into_the_whole(cli: Cli, tmp_path: Path) -> None:
    shards = [write_journal(tmp_path / f"s{i}.sqlite3", Shard(i, 3)) for i in (1, 2, 3)]
    result = cli("partitions", "report", *map(str, shards), "--json")
    assert result.exit_code == 0
    assert result.json() == EXPECTED and result.stderr == SUMMARY + "\n"


def test_an_empty_journal_says_so(cli: Cli, tmp_path: Path) -> None:
    Journal.open(tmp_path / "e.sqlite3", PARAMS, sources=["d"]).close()
    table = cli("partitions", "report", str(tmp_path / "e.sqlite3"), "-o", "table")
    assert (table.exit_code, table.stdout) == (0, "")
    assert table.stderr.splitlines() == [
        "no documents in the journal",
        "0 documents: none; 0 runs, 0 pages, 0 chunks, 0 credits ($0.00)"]
    as_json = cli("partitions", "report", str(tmp_path / "e.sqlite3"), "-o", "json")
    assert (as_json.exit_code, as_json.json()) == (0, [])


def test_journals_of_different_batches_are_merged_with_a_warning(cli: Cli, tmp_path: Path,
                                                                journal: Path) -> None:
    other = tmp_path / "other.sqlite3"
    with Journal.open(other, PARAMS.__class__(key="contract"), sources=["d"]):
        pass
    result = cli("partitions", "report", str(journal), str(other), "-o", "jsonl")
    assert result.exit_code == 0 and result.jsonl() == EXPECTED
    assert result.stderr.splitlines()[0] == (
        "warning: these journals were written with different parameters; merging them by "
        "path anyway")


@pytest.mark.parametrize(("args", "message"), [
    (["--fields", "path,colour"], "error: unknown field 'colour' for report; choose from path, "
                                  "sha256, partition_id, status, pages, chunks, credits, "
                                  "error_code, error_message, output_dir"),
    (["-o", "ids"], "error: invalid output mode 'ids': choose from auto, table, json, jsonl, csv, "
                    "markdown"),
    (["-o", "csv", "--json"], "error: conflicting output options: choose one of -o and --json"),
    (["-o", "xml"], "error: invalid output mode 'xml': choose from auto, table, json, jsonl, csv, "
                    "markdown"),
    (["-o", "markdwn"], "error: invalid output mode 'markdwn': choose from auto, table, json, jsonl, "
                        "csv, markdown"),
])
def test_bad_options_are_one_line_and_exit_2(cli: Cli, journal: Path, args: list[str],
                                             message: str) -> None:
    result = cli("partitions", "report", str(journal), *args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[0] == message


def test_a_missing_or_foreign_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    missing = cli("partitions", "report", str(tmp_path / "nope.sqlite3"), "-o", "json")
    assert (missing.exit_code, missing.stdout) == (2, "")
    assert missing.stderr.splitlines()[0] == f"error: no such journal: {tmp_path}/nope.sqlite3"
    assert missing.stderr_json()["error"]["type"] == "usage"
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not sqlite at all, just text " * 100)
    result = cli("partitions", "report", str(foreign), "-o", "csv")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"error: cannot open journal {foreign}: ")
    assert "Traceback" not in result.stderr


def test_a_closed_stdout_ends_the_report_quietly(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "j.sqlite3")
    proc = subprocess.run(
        f"{sys.executable} -m retab_cli partitions report {journal} -o jsonl | head -1",
        shell=True, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(Path.cwd())})
    assert json.loads(proc.stdout) == EXPECTED[0]
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr
