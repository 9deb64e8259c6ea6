"""Ctrl-C and SIGTERM on a real batch process: 130 / 143, the journal consistent, the
resume command printed, runs cancelled only with --cancel-on-interrupt."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from retab_cli.batch.journal import Journal
from retab_cli.errors import UsageError

from .corpus import make_corpus
from .support import KEY, batch_args, creates, emulator_runs, report, spawn
from cli_support import Cli
from emulator_support import Emulator, wait_until


def until_created(proc: subprocess.Popen[str], count: int) -> None:
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if json.loads(line)["event"] == "created":
            seen += 1
            if seen == count:
                return
    raise AssertionError(f"the batch ended after {seen} creates")


def statuses(journal: Path) -> list[str]:
    """The journal's document statuses, none while the batch is still creating it."""
    try:
        with Journal.read(journal) as opened:
            return [row.status for row in opened.rows()]
    except UsageError:  # the file exists, its tables are not committed yet
        return []


def test_ctrl_c_while_watching_leaves_the_runs_and_resumes(cli: Cli, emu: Emulator,
                                                           tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 3, awkward=False)
    journal = tmp_path / "j.sqlite3"
    emu.next_create("stuck", times=3)
    proc = spawn(cli, *batch_args(corpus.root, journal, "-o", "jsonl", "--no-progress"))
    until_created(proc, 3)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    lines = stderr.splitlines()
    # -o jsonl asked for JSON: the error line, then the same as a JSON object.
    assert ("error: interrupted; the journal is up to date; 3 run(s) still running were not "
            "cancelled") in lines
    assert json.loads(lines[-2])["error"]["type"] == "interrupted"
    assert (f"to resume: retab partitions batch {corpus.root} --key '{KEY}' --journal {journal}"
            in lines)
    assert "Traceback" not in stderr
    runs = emulator_runs(emu)
    assert len(runs) == 3 and all(r["status"] not in ("cancelled", "completed") for r in runs)
    rows = report(cli, journal)  # the journal reads back whole, each run recorded
    assert {r["partition_id"] for r in rows} == {r["id"] for r in runs}
    assert all(r["status"] in ("pending", "queued", "in_progress") for r in rows)
    # Resumed: the created runs are watched (here cancelled elsewhere), nothing is resent.
    cancel = cli("partitions", "cancel", *(r["id"] for r in runs), "-q")
    assert cancel.exit_code == 0, cancel.stderr
    emu.clear_requests()
    resumed = cli(*batch_args(corpus.root, journal, "-o", "json"))
    assert resumed.exit_code == 5 and resumed.json()["documents"] == {"cancelled": 3}
    assert creates(emu) == []


def test_sigterm_with_cancel_on_interrupt_cancels_the_active_runs(cli: Cli, emu: Emulator,
                                                                  tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 3, awkward=False)
    journal = tmp_path / "j.sqlite3"
    emu.next_create("stuck", times=3)
    proc = spawn(cli, *batch_args(corpus.root, journal, "-o", "jsonl", "--no-progress",
                                  "--cancel-on-interrupt"))
    until_created(proc, 3)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "cancel-on-interrupt: sent 3 of 3 cancels" in stderr.splitlines()
    assert "error: interrupted; the journal is up to date" in stderr.splitlines()
    assert all(r["status"] == "cancelled" for r in emulator_runs(emu))
    emu.clear_requests()
    resumed = cli(*batch_args(corpus.root, journal, "-o", "json"))
    assert resumed.exit_code == 5 and creates(emu) == []
    retried = cli(*batch_args(corpus.root, journal, "--retry-failed", "-o", "json"))
    assert retried.exit_code == 0 and retried.json()["documents"] == {"completed": 3}
    assert len(creates(emu)) == 3


def test_ctrl_c_while_creating_then_resume_makes_no_second_run(cli: Cli, emu: Emulator,
                                                               tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", 3, awkward=False)
    journal = tmp_path / "j.sqlite3"
    emu.add_fault(path="/v1/partitions$", method="POST", delay=5.0, times=3)  # slow creates
    proc = spawn(cli, *batch_args(corpus.root, journal, "--no-progress"))
    wait_until(lambda: journal.exists() and statuses(journal).count("sending") == 3,
               timeout=30, interval=0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert f"to resume: retab partitions batch {corpus.root}" in stderr
    with Journal.read(journal) as opened:  # claimed: a create may be on the wire
        claimed = {row.relpath: row.idempotency_key for row in opened.rows()}
        assert [row.status for row in opened.rows()] == ["sending"] * 3
    resumed = cli(*batch_args(corpus.root, journal, "-o", "json"))
    assert resumed.exit_code == 0, resumed.stderr
    assert len(emulator_runs(emu)) == 3
    # The resumed creates carry the keys claimed before the interrupt.
    assert {c["headers"]["idempotency-key"] for c in creates(emu)} == set(claimed.values())
    assert {r["path"]: r["status"] for r in report(cli, journal)} == dict.fromkeys(
        claimed, "completed")
