"""`delete --all-matching` (sharing `cancel --all-matching`'s code) and the bulk commands'
reports, in-process against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from cli_support import SAMPLE_PDF, Cli


def seeded(cli: Cli, count: int, prefix: str, status: str | None = None) -> set[str]:
    cli.emu.seed(count, filename_prefix=prefix, **({"status": status} if status else {}))
    listed = cli("partitions", "list", "--all", "--filename", prefix, "-q")
    assert listed.exit_code == 0, listed.stderr
    return set(listed.stdout.split())


def sent(cli: Cli, method: str) -> list[dict[str, Any]]:
    return [r for r in cli.emu.requests() if r["method"] == method]


@pytest.mark.parametrize(("args", "message"), [
    (["--all-matching", "--yes"], "--all-matching needs at least one filter (--status, "
                                  "--filename, --since, --until)"),
    (["prtn_a", "--all-matching", "--filename", "x"], "give either ids or --all-matching, "
                                                      "not both"),
    (["prtn_a", "--status", "failed"], "--status/--filename/--since/--until need "
                                       "--all-matching"),
    ([], "no partition ids given (pass ids, - for stdin, or --all-matching with filters)"),
    (["--all-matching", "--status", "done"], "invalid --status 'done'"),
])
@pytest.mark.parametrize("verb", ["cancel", "delete"])
def test_all_matching_usage_errors(cli: Cli, verb: str, args: list[str], message: str) -> None:
    result = cli("partitions", verb, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert cli.emu.requests() == []


def test_delete_all_matching_dry_run_lists_every_status_and_sends_nothing(cli: Cli) -> None:
    doomed = seeded(cli, 5, "old-") | seeded(cli, 2, "old-x-", "failed")
    seeded(cli, 3, "keep-")
    cli.emu.clear_requests()
    result = cli("partitions", "delete", "--all-matching", "--filename", "old-", "--dry-run",
                 "-o", "table")
    assert result.exit_code == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(f"DELETE /v1/partitions/{i}"
                                                        for i in doomed)
    assert result.stderr == "dry run: would delete 7 partition(s); nothing sent\n"
    assert sent(cli, "DELETE") == [] and len(sent(cli, "GET")) == 1


def test_delete_all_matching_needs_yes_without_a_terminal(cli: Cli) -> None:
    seeded(cli, 2, "old-")
    result = cli("partitions", "delete", "--all-matching", "--filename", "old-")
    assert result.exit_code == 2
    assert "refusing to go on without --yes" in result.stderr
    assert sent(cli, "DELETE") == []


def test_delete_all_matching_deletes_the_snapshot_only(cli: Cli) -> None:
    doomed = seeded(cli, 4, "old-", "completed") | seeded(cli, 2, "old-f-", "failed")
    kept = seeded(cli, 3, "keep-")
    result = cli("partitions", "delete", "--all-matching", "--filename", "old-", "--yes",
                 "--json")
    assert result.exit_code == 0, result.stderr
    assert sorted(result.json(), key=lambda r: r["id"]) == [
        {"id": i, "deleted": True, "already_deleted": False} for i in sorted(doomed)]
    assert result.stderr == "6 partition(s) match\n"
    assert {r["path"].split("/")[-1] for r in sent(cli, "DELETE")} == doomed
    left = cli("partitions", "list", "--all", "-q").stdout.split()
    assert set(left) == kept


def test_delete_all_matching_with_a_status(cli: Cli) -> None:
    failed = seeded(cli, 2, "a-", "failed")
    seeded(cli, 3, "b-", "completed")
    result = cli("partitions", "delete", "--all-matching", "--status", "failed", "--yes", "-q")
    assert result.exit_code == 0, result.stderr
    assert set(result.stdout.split()) == failed


@pytest.mark.parametrize("verb", ["cancel", "delete"])
def test_all_matching_with_no_match_does_nothing(cli: Cli, verb: str) -> None:
    result = cli("partitions", verb, "--all-matching", "--filename", "nothing-", "--yes")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == f"no partitions match; nothing to {verb}\n"


def test_delete_all_matching_asks_on_a_terminal_with_the_count(cli: Cli) -> None:
    import pty

    doomed = seeded(cli, 3, "old-")
    master, slave = pty.openpty()
    env = {**os.environ, **{k: v for k, v in cli.env.items() if v}}
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", "partitions", "delete",
                             "--all-matching", "--filename", "old-"], env=env, stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(slave)
    os.write(master, b"n\n")
    out, err = proc.communicate(timeout=30)
    os.close(master)
    assert proc.returncode == 1
    assert out == b""
    assert "3 partition(s) match\nDelete 3 partition(s) for good? [y/N]" in err.decode()
    assert "error: nothing deleted" in err.decode()
    assert sent(cli, "DELETE") == []
    assert set(cli("partitions", "list", "--all", "-q").stdout.split()) == doomed


def test_a_stopped_cancel_prints_what_it_did_in_json_too(cli: Cli) -> None:
    """An auth error half-way: the runs already cancelled still reach stdout."""
    cli.emu.next_create("stuck", times=2)
    ids = [cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--background",
               "-q").stdout.strip() for _ in range(2)]
    cli.emu.add_fault(method="POST", path="/cancel$", delay=0)
    cli.emu.add_fault(method="POST", path="/cancel$", status=401)
    result = cli("partitions", "cancel", *ids, "--json")
    assert result.exit_code == 4
    (shown,) = result.json()
    assert shown["status"] == "cancelled" and shown["id"] in ids
    assert "stopped: cancelled 1 of 2" in result.stderr
    assert f"  cancelled (1): {shown['id']}" in result.stderr
    assert f"  not cancelled (1): {(set(ids) - {shown['id']}).pop()}" in result.stderr


@pytest.mark.parametrize("bad", ["prtn_a\nprtn_victim", "../prtn_a", None, 7])
@pytest.mark.parametrize("verb", ["cancel", "delete"])
def test_all_matching_acts_on_nothing_when_the_listing_holds_a_bad_id(cli: Cli, verb: str,
                                                                      bad: Any) -> None:
    good = sorted(seeded(cli, 2, "old-"))
    item = {"object": "partition", "status": "queued"} | ({} if bad is None else {"id": bad})
    listing = {"object": "list", "data": [{"id": good[0]}, item, {"id": good[1]}],
               "list_metadata": {"before": None, "after": None}}
    cli.emu.add_fault(method="GET", path="^/v1/partitions$", status=200, body=listing)
    result = cli("partitions", verb, "--all-matching", "--filename", "old-", "--yes", "-q")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: unusable response: the listing holds an item "
                                    "without a valid id; nothing was done")
    assert sent(cli, "DELETE") == [] and [r for r in sent(cli, "POST")
                                         if r["path"].endswith("/cancel")] == []
