"""`watch --all-matching [filters]`: the runs listed once, then watched as ids are,
in-process against the emulator (the same snapshot code as cancel and delete)."""

from __future__ import annotations

from typing import Any

import pytest

from cli_support import SAMPLE_PDF, Cli


def created(cli: Cli, filename: str, outcome: str | None = None) -> str:
    """One run of the sample under `filename`; `outcome` "stuck" keeps it in progress."""
    if outcome is not None:
        cli.emu.next_create(outcome)
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", "invoice number",
                 "--filename", filename, "--wait" if outcome != "stuck" else "--background",
                 "-q")
    assert result.exit_code in (0, 3), result.stderr
    return result.stdout.strip()


def lists_sent(cli: Cli) -> list[dict[str, Any]]:
    return [r for r in cli.emu.requests()
            if r["method"] == "GET" and r["path"] == "/v1/partitions"]


def test_active_runs_by_default_watched_until_the_timeout(cli: Cli) -> None:
    stuck = {created(cli, "w-a.pdf", "stuck"), created(cli, "w-b.pdf", "stuck")}
    created(cli, "w-done.pdf")  # completed: not watched
    created(cli, "other.pdf", "stuck")  # another name: not watched
    cli.emu.clear_requests()
    result = cli("partitions", "watch", "--all-matching", "--filename", "w-", "--timeout",
                 "300ms", "-o", "json")
    assert result.exit_code == 8, result.stderr
    assert {run["id"] for run in result.json()} == stuck
    assert {run["status"] for run in result.json()} <= {"pending", "queued", "in_progress"}
    assert result.stderr.splitlines()[0] == "2 partition(s) match"
    asked = [r["query"] for r in lists_sent(cli)]
    assert asked and all(q["filename"] == "w-" for q in asked)
    assert {s for q in asked for s in q["status"].split(",")} == {"pending", "queued",
                                                                   "in_progress"}


def test_a_status_chooses_ended_runs_and_their_exit_code(cli: Cli) -> None:
    failed = created(cli, "f-1.pdf", "failed")
    created(cli, "f-2.pdf")
    result = cli("partitions", "watch", "--all-matching", "--status", "failed", "-o", "jsonl")
    assert result.exit_code == 3, result.stderr
    assert [run["id"] for run in result.jsonl()] == [failed]


def test_all_matching_alone_watches_every_active_run(cli: Cli) -> None:
    stuck = created(cli, "any.pdf", "stuck")
    created(cli, "ended.pdf")
    result = cli("partitions", "watch", "--all-matching", "--timeout", "200ms", "-q")
    assert result.exit_code == 8, result.stderr
    assert result.stdout.split() == [stuck]


def test_nothing_matching_is_a_note_and_success(cli: Cli) -> None:
    created(cli, "done.pdf")
    result = cli("partitions", "watch", "--all-matching", "--filename", "done", "-o", "json")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no partitions match; nothing to watch\n"


@pytest.mark.parametrize(("args", "message"), [
    (["prtn_a", "--all-matching"], "give either ids or --all-matching, not both"),
    (["prtn_a", "--filename", "x"], "--status/--filename/--since/--until need --all-matching"),
    ([], "no partition ids given (pass ids, - for stdin, or --all-matching with filters)"),
    (["--all-matching", "--status", "finished"], "invalid --status 'finished'"),
])
def test_usage_errors_send_nothing(cli: Cli, args: list[str], message: str) -> None:
    result = cli("partitions", "watch", *args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"error: {message}")
    assert cli.emu.requests() == []
