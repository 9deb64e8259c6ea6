"""What a batch shows: progress (live on a terminal, a plain line every 30 s otherwise,
none with --no-progress), -q, GitHub Actions output; and a claim older than the
service's memory of keys, looked up before it is sent again."""

from __future__ import annotations

import asyncio
import io
import re
import sqlite3
from contextlib import redirect_stderr
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_watch_e2e import run_in_script

from retab_cli.batch.progress import Progress
from retab_cli.batch.ui import PLAIN_EVERY, plain_lines
from retab_cli.render import Renderer

from .corpus import make_corpus
from .support import batch_args, creates, emulator_runs, report, spawn
from cli_support import Cli
from emulator_support import Emulator

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_progress_line_says_where_the_batch_is() -> None:
    progress = Progress(started=100.0, discovered=120, hashed=118, sending=4, running=30,
                        completed=80, failed=2, local_errors=1, credits=81.5)
    assert progress.line(140.0) == (
        "batch: 120 found so far, 118 read, 4 sending, 30 running, 80 completed, 2 failed, "
        "1 refused · 81.5 credits · 2.1 documents/s · 40s")
    progress.walked = True
    assert progress.line(140.0).endswith(" · 2.1 documents/s · 40s · ETA 17s")


def test_off_a_terminal_a_plain_line_every_30_seconds() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError

    env = SimpleNamespace(renderer=Renderer("json"))
    batch = SimpleNamespace(progress=Progress(discovered=5, hashed=5))
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(asyncio.CancelledError):
        asyncio.run(plain_lines(env, batch, sleep=sleep))  # type: ignore[arg-type]
    assert slept == [PLAIN_EVERY] * 3 and PLAIN_EVERY == 30.0
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("batch: 5 found so far, 5 read") for line in lines)


def test_no_progress_and_quiet(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 3, awkward=False)
    journal = tmp_path / "j.sqlite3"
    normal = cli(*batch_args(corpus.root, journal, "--dry-run"))
    assert normal.exit_code == 0
    result = cli(*batch_args(corpus.root, journal, "--no-progress", "-o", "json"))
    assert result.exit_code == 0
    assert not [line for line in result.stderr.splitlines() if line.startswith("batch: ")]
    assert result.stderr.splitlines()[0] == f"journal: {journal}"
    quiet = cli(*batch_args(corpus.root, journal, "-q"))
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert sorted(quiet.stdout.split()) == sorted(r["id"] for r in emulator_runs(emu))


def test_github_actions_gets_a_step_summary_and_annotations(cli: Cli, emu: Emulator,
                                                            tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_corpus(docs, 2, awkward=False)
    (docs / "empty.txt").write_bytes(b"")
    emu.next_create("failed")
    summary = tmp_path / "summary.md"
    result = cli(*batch_args(docs, tmp_path / "j.sqlite3"),
                 env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 3
    rows = {r["path"]: r for r in report(cli, tmp_path / "j.sqlite3")}
    [failed] = [p for p, r in rows.items() if r["status"] == "failed"]
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::")]
    assert annotations == [  # in path order
        f"::error title=partition run failed::{rows[failed]['partition_id']} "
        f"({failed}) failed: {rows[failed]['error_code']}: {rows[failed]['error_message']}",
        "::error title=partition run local_error::empty.txt (empty.txt) local_error: empty: "
        "empty.txt is empty"]
    text = summary.read_text().splitlines()
    assert text[:4] == ["### retab batch", "",
                        "Documents that did not complete (the first 50 at most):", ""]
    assert text[4] == "| path | status | partition_id | error_code | error_message |"
    assert len([line for line in text if line.startswith("| ")]) == 2 + 2
    # Which of the two documents failed is up to the order their creates arrived in.
    assert text[-2].startswith("**Totals:** 3 documents: 1 completed, 1 failed, "
                               "1 local\\_error; 2 runs, 3 pages, 1 chunk, ")


def test_a_claim_the_service_forgot_is_looked_up_before_sending(cli: Cli, emu: Emulator,
                                                                tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 2, awkward=False)
    journal = tmp_path / "j.sqlite3"
    assert cli(*batch_args(corpus.root, journal)).exit_code == 0
    made = {r["path"]: r["partition_id"] for r in report(cli, journal)}

    def forget_answers(days_ago: int) -> None:
        """As if killed after sending, days ago: claimed, no partition id recorded."""
        with sqlite3.connect(journal) as conn:
            conn.execute("UPDATE runs SET partition_id = NULL, status = 'sending', "
                         "finished_at = NULL, claimed_at = strftime('%Y-%m-%dT%H:%M:%fZ', "
                         f"'now', '-{days_ago} days')")

    forget_answers(2)
    emu.clear_requests()
    found = cli(*batch_args(corpus.root, journal, "-o", "json"))
    assert found.exit_code == 0, found.stderr
    assert creates(emu) == []  # found by listing: nothing resent
    assert {r["path"]: r["partition_id"] for r in report(cli, journal)} == made
    # Within the service's memory of keys the create is simply resent (and replayed).
    forget_answers(0)
    emu.clear_requests()
    assert cli(*batch_args(corpus.root, journal)).exit_code == 0
    assert len(creates(emu)) == 2 and len(emulator_runs(emu)) == 2, creates(emu)
    # Forgotten and never made: the listing finds nothing, so it is sent.
    emu.reset()
    forget_answers(2)
    assert cli(*batch_args(corpus.root, journal)).exit_code == 0
    assert len(creates(emu)) == 2 and len(emulator_runs(emu)) == 2, emu.requests()


def test_a_live_display_on_a_terminal_and_ctrl_c(cli: Cli, emu: Emulator,
                                                 tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 2, awkward=False)
    journal = tmp_path / "j.sqlite3"
    emu.next_create("stuck", times=2)
    code, received = run_in_script(cli, *batch_args(corpus.root, journal, "-o", "table"),
                                   ctrl_c_when="2 running")
    assert code == 130, received
    assert "\x1b[?25l" in received  # the live display hid the cursor, then showed it again
    assert received.rindex("\x1b[?25h") > received.rindex("\x1b[?25l"), received
    text = [line.strip() for line in ANSI.sub("", received).replace("\r", "\n").splitlines()
            if line.strip()]
    assert any(line.startswith("batch: 2 found · 2 read · 0 sending · 2 running") for line in text)
    assert text[-1].startswith(f"to resume: retab partitions batch {corpus.root} ")
    assert "interrupted; the journal is up to date; 2 run(s) still running were not cancelled" \
        in text


def test_progress_lines_are_plain_when_stderr_is_a_pipe(cli: Cli, emu: Emulator,
                                                        tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 2, awkward=False)
    proc = spawn(cli, *batch_args(corpus.root, tmp_path / "j.sqlite3"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "\x1b" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("batch: ")]
    assert line.startswith("batch: 2 found, 2 read, 0 sending, 0 running, 2 completed, 0 failed")
