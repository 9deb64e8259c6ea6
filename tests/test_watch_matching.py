"""`watch --all-matching [filters]`: every matching active run, from one snapshot listed
with cancel's and delete's machinery (commands/_matching.py), against the emulator."""

from __future__ import annotations

import csv
import io

import pytest
from test_watch_e2e import FAST, Watch, create, settled

from cli_support import Cli


def listed_statuses(cli: Cli) -> list[str]:
    """The status of each list query sent (the emulator logs the query string)."""
    found = []
    for request in cli.emu.requests():
        if request["method"] == "GET" and request["path"] == "/v1/partitions":
            found.append(request["query"].get("status", ""))
    return found


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
    assert sorted(listed_statuses(cli)) == ["in_progress", "pending", "queued"]
    assert cli("partitions", "cancel", other, "-q").exit_code == 0


@pytest.mark.parametrize("mode", ["table", "json", "jsonl", "csv"])
def test_no_match_is_a_note_and_exit_0(cli: Cli, mode: str) -> None:
    result = cli.run("partitions", "watch", "--all-matching", "--filename", "none-", "-o", mode)
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "no partitions match; nothing to watch\n"


def test_without_filters_it_watches_every_active_run(cli: Cli) -> None:
    cli.emu.seed(3, status="completed")
    result = cli("partitions", "watch", "--all-matching", "-q")
    assert (result.exit_code, result.stdout) == (0, "")
    assert sorted(listed_statuses(cli)) == ["in_progress", "pending", "queued"]


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


@pytest.mark.parametrize(("args", "message"), [
    ([], "no partition ids given (pass ids, - for stdin, or --all-matching with filters)"),
    (["prtn_a", "--status", "failed"], "--status/--filename/--since/--until need "
                                       "--all-matching"),
    (["prtn_a", "--all-matching"], "give either ids or --all-matching, not both"),
    (["--all-matching", "--status", "done"], "invalid --status 'done'"),
])
def test_usage_errors(cli: Cli, args: list[str], message: str) -> None:
    result = cli("partitions", "watch", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert cli.emu.requests() == []
