"""`watch --all-matching [filters]`: the runs listed once, then watched as ids are,
in-process against the emulator (the same snapshot code as cancel and delete)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from test_watch_e2e import FAST, Watch, create, settled

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


# ---- through a real process: every output mode, cancel, --fail-fast, --timeout ------


def test_watches_the_matching_active_runs_and_nothing_else(cli: Cli) -> None:
    first, second = (create(cli, "stuck", filename=f"batch-{n}.pdf") for n in (1, 2))
    done = create(cli, filename="batch-3.pdf")
    other = create(cli, "stuck", filename="other.pdf")
    settled(cli, done)
    cli.emu.clear_requests()
    watch = Watch(cli, "partitions", "watch", "--all-matching", "--filename", "batch-", *FAST,
                  "-o", "json")
    watch.wait_for_stderr(f"{first} in_progress")
    watch.wait_for_stderr(f"{second} in_progress")
    assert cli("partitions", "cancel", first, second, "-q").exit_code == 0
    result = watch.finish()

    assert result.exit_code == 5, result.stderr
    finals = result.json()
    assert sorted(f["id"] for f in finals) == sorted([first, second])
    assert {f["status"] for f in finals} == {"cancelled"}
    assert done not in result.stderr and other not in result.stderr
    assert {s for r in lists_sent(cli) for s in r["query"]["status"].split(",")} == {
        "pending", "queued", "in_progress"}
    assert cli("partitions", "cancel", other, "-q").exit_code == 0


@pytest.mark.parametrize("mode", ["table", "json", "jsonl", "csv"])
def test_no_match_is_a_note_and_exit_0(cli: Cli, mode: str) -> None:
    result = cli.run("partitions", "watch", "--all-matching", "--filename", "none-", "-o", mode)
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no partitions match; nothing to watch\n"


def test_a_status_given_replaces_the_active_ones_and_csv_shows_each_run(cli: Cli) -> None:
    cli.emu.seed(3, status="completed", filename_prefix="s-")
    cli.emu.seed(2, status="failed", filename_prefix="s-")
    wanted = set(cli("partitions", "list", "--all", "--status", "completed", "-q").stdout.split())
    result = cli.run("partitions", "watch", "--all-matching", "--status", "completed",
                     "--filename", "s-", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {row["id"] for row in rows} == wanted
    assert {row["status"] for row in rows} == {"completed"}


def test_fail_fast_stops_at_the_first_failed_match(cli: Cli) -> None:
    failed = create(cli, "failed", filename="ff-1.pdf")
    stuck = create(cli, "stuck", filename="ff-2.pdf")
    settled(cli, failed)
    # The stuck run never ends: that the watch exits at all shows --fail-fast stopped it.
    result = cli.run("partitions", "watch", "--all-matching", "--status", "in_progress",
                     "--status", "failed", "--filename", "ff-", "--fail-fast", "-o", "jsonl")
    assert result.exit_code == 3, result.stderr
    assert {f["id"]: f["status"] for f in result.jsonl()} == {failed: "failed",
                                                               stuck: "in_progress"}
    assert result.stderr_json()["error"]["type"] == "run_failed"
    assert cli("partitions", "cancel", stuck, "-q").exit_code == 0


def test_timeout_ends_the_watch_with_8_and_a_json_error(cli: Cli) -> None:
    stuck = create(cli, "stuck", filename="t-1.pdf")
    result = cli.run("partitions", "watch", "--all-matching", "--filename", "t-",
                     "--timeout", "1s", "-o", "jsonl")
    assert result.exit_code == 8, result.stderr
    assert result.stderr_json()["error"]["type"] == "timeout"
    assert cli("partitions", "cancel", stuck, "-q").exit_code == 0
