"""A batch SIGKILLed at five moments (hashing, creating, watching, splitting, and one
more), resumed each time: exactly one run per document, every chunk file right."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

from .corpus import check_chunks, make_corpus
from .support import batch_args, creates, emulator_runs, report, spawn
from cli_support import Cli
from emulator_support import Emulator

DOCUMENTS = 500


def run_until(cli: Cli, args: list[str], event: str, nth: int) -> int:
    """Run the batch and SIGKILL it right after its nth `event`; the events it printed."""
    proc = spawn(cli, *args)
    assert proc.stdout is not None
    seen = printed = 0
    for line in proc.stdout:
        printed += 1
        if json.loads(line)["event"] == event:
            seen += 1
            if seen == nth:
                break
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert seen == nth, f"the batch ended before its {nth}th {event} event (saw {seen})"
    assert proc.returncode == -signal.SIGKILL
    return printed


def test_killed_five_times_and_resumed(cli: Cli, emu: Emulator, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "docs", DOCUMENTS, awkward=False)
    journal, out = tmp_path / "j.sqlite3", tmp_path / "out"
    args = batch_args(corpus.root, journal, "--split-to", str(out), "-o", "jsonl",
                      "--no-progress")
    rng = random.Random(20240501)
    moments = [("hashed", rng.randint(20, 120)),   # reading the first documents
               ("created", rng.randint(20, 80)),   # creating
               ("status", rng.randint(20, 80)),    # watching
               ("split", rng.randint(10, 60)),     # writing chunk files
               (rng.choice(["hashed", "created", "ended", "split"]), rng.randint(5, 40))]
    for event, nth in moments:
        assert run_until(cli, args, event, nth) > 0
    final = cli(*args)
    assert final.exit_code == 0, final.stderr
    summary = final.jsonl()[-1]
    assert summary["documents"] == {"completed": DOCUMENTS}, summary

    runs = emulator_runs(emu)
    assert len(runs) == DOCUMENTS  # never a second run for a document
    assert len(creates(emu)) == DOCUMENTS  # one key a document: resends replayed it
    rows = report(cli, journal)
    assert [r["path"] for r in rows] == sorted(corpus.distinct)
    assert {r["partition_id"] for r in rows} == {run["id"] for run in runs}
    for row in rows:
        assert row["status"] == "completed", row
        assert check_chunks(out, row["path"])["partition_id"] == row["partition_id"]
    leftovers = [p for p in out.rglob(".*")]
    assert leftovers == []  # no half-written split survives a resume
