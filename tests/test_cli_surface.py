"""The command line as a new user meets it (issue 9): bare groups, hoisting, help pages."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from retab_cli.app import app, hoist_globals
from retab_cli.parsing import parse_time

from cli_support import SAMPLE_PDF, Cli, run_isolated


@pytest.mark.parametrize("group", [[], ["partitions"], ["auth"]])
def test_a_bare_group_prints_its_help_and_exits_0(tmp_path: Path, group: list[str]) -> None:
    result = run_isolated(tmp_path, *group)
    helped = run_isolated(tmp_path, *group, "--help")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == helped.stdout
    assert result.stdout.startswith(f"Usage: {' '.join(['retab', *group])} [OPTIONS] COMMAND")


# ---- global options given after the subcommand ----------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    (["partitions", "list", "--api-key", "K", "--debug", "-o", "json"],
     ["--api-key", "K", "--debug", "partitions", "list", "-o", "json"]),
    (["auth", "login", "--with-key", "--profile=staging"],
     ["--profile=staging", "auth", "login", "--with-key"]),
    # a value that looks like a global option is the value
    (["partitions", "create", "--key", "--debug", "x.pdf"],
     ["partitions", "create", "--key", "--debug", "x.pdf"]),
    (["partitions", "get", "--", "--debug"], ["partitions", "get", "--", "--debug"]),
    # the emulator and its exec declare --api-key: theirs, never hoisted
    (["emulator", "--api-key", "K", "exec", "--api-key", "J", "--", "retab", "--api-key", "Z"],
     ["emulator", "--api-key", "K", "exec", "--api-key", "J", "--", "retab", "--api-key", "Z"]),
    (["emulator", "--port", "0", "--debug"], ["--debug", "emulator", "--port", "0"]),
])
def test_only_options_the_command_does_not_declare_are_hoisted(args: list[str],
                                                               expected: list[str]) -> None:
    assert hoist_globals(args) == expected


@pytest.mark.parametrize("where", [["emulator", "exec"], ["emulator"]])
def test_emulator_api_key_configures_the_emulator(tmp_path: Path, where: list[str]) -> None:
    args = ([*where, "--api-key", "rt_test_custom_key"] if where[-1] == "exec"
            else [*where, "--api-key", "rt_test_custom_key", "exec"])
    result = run_isolated(tmp_path, *args, "--", sys.executable, "-c",
                          "import os; print(os.environ['RETAB_API_KEY'])")
    assert (result.exit_code, result.stdout) == (0, "rt_test_custom_key\n"), result.stderr


# ---- help pages ----------------------------------------------------------------------------


def _pages(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], bool]]:
    """Every command path of the tree, and whether it is a group."""
    subs = getattr(command, "commands", {})
    return [(path, bool(subs)),
            *(page for name, sub in subs.items() for page in _pages(sub, (*path, name)))]


PAGES = _pages(typer.main.get_command(app))
PYTHON_TYPE = re.compile(r"<[a-z_]+(?:\[[a-z_, |\[\]]+\])?>")  # <str>, <list[str]>, <int>


def help_page(path: tuple[str, ...]) -> tuple[str, list[str]]:
    result = CliRunner().invoke(app, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout, result.stdout.splitlines()


@pytest.mark.parametrize(("path", "is_group"), PAGES,
                         ids=[" ".join(path) or "retab" for path, _ in PAGES])
def test_help_shows_metavars_never_python_types(path: tuple[str, ...], is_group: bool) -> None:
    text, lines = help_page(path)
    usage = lines[0]
    assert usage.startswith(" ".join(("Usage: retab", *path)).rstrip() + " [OPTIONS]")
    assert PYTHON_TYPE.search(text) is None, text
    assert "{" not in usage and "}" not in usage, usage
    assert usage.endswith("COMMAND [ARGS]...") == is_group, usage


def test_help_of_the_commands_users_meet_first() -> None:
    assert help_page(("completion",))[1][0] == "Usage: retab completion [OPTIONS] SHELL"
    get_page = help_page(("partitions", "get"))[1]
    assert get_page[0] == "Usage: retab partitions get [OPTIONS] ID..."
    assert "  ID...  Partition ids, or - to read them from stdin.  [required]" in get_page
    create_page = help_page(("partitions", "create"))[0]
    assert create_page.splitlines()[0] == "Usage: retab partitions create [OPTIONS] [FILE]..."
    key_help = re.search(r"--key KEY\s+(.*?)\n  -", create_page, re.S)
    assert key_help is not None and "[required]" in key_help.group(1)


# ---- list filters: times, letter case, suggestions -----------------------------------------


MINUTE = timedelta(minutes=1)
ROOT = Path(__file__).resolve().parent.parent


def test_since_in_hours_filters_created_at_exactly(cli: Cli) -> None:
    cli.emu.seed(200)
    everything = cli("partitions", "list", "--all", "-o", "json").json()
    cli.emu.clear_requests()
    result = cli("partitions", "list", "--all", "--since", "36h", "-o", "json")
    assert result.exit_code == 0, result.stderr
    cutoff = datetime.now(UTC) - timedelta(hours=36)
    # The API's day filter is a whole day: the tool drops what lies before 36 h ago. (A
    # minute's slack either side: the tool read the clock a moment before this test.)
    shown = {r["id"] for r in result.json()}
    created = {r["id"]: parse_time(r["created_at"]) for r in everything}
    assert None not in created.values()
    newer = {pid for pid, at in created.items() if at is not None and at >= cutoff + MINUTE}
    older = {pid for pid, at in created.items() if at is not None and at < cutoff - MINUTE}
    assert newer <= shown and not shown & older
    assert newer and older
    sent = [r for r in cli.emu.requests() if r["path"] == "/v1/partitions"]
    assert {r["query"]["from_date"] for r in sent} == {cutoff.date().isoformat()}


def test_an_rfc3339_until_and_an_upper_case_order(cli: Cli) -> None:
    cli.emu.seed(50)
    everything = cli("partitions", "list", "--all", "-o", "json").json()
    middle = everything[25]["created_at"]
    result = cli("partitions", "list", "--all", "--until", middle, "--order", "ASC", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in result.json()] == [r["id"] for r in reversed(everything[25:])]


def test_a_mistyped_status_suggests_the_closest(cli: Cli) -> None:
    result = cli("partitions", "list", "--status", "complete")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "error: invalid --status 'complete': choose from pending, queued, in_progress, "
        "completed, failed, cancelled",
        "hint: did you mean 'completed'?"]


# ---- --no-progress ---------------------------------------------------------------------------


def stderr_on_a_terminal(cli: Cli, *args: str, env: dict[str, str] | None = None
                         ) -> tuple[int, str, str]:
    """Run with stderr on a terminal (a pty), stdout a pipe; what each one got."""
    master, slave = pty.openpty()
    merged = {**os.environ, **{k: v for k, v in cli.env.items() if v}, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "retab_cli", *args], env=merged,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen: list[bytes] = []
    reader = threading.Thread(target=_drain_pty, args=(master, screen))
    reader.start()
    out, _ = proc.communicate(timeout=60)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(screen).decode(errors="replace")


def _drain_pty(master: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the last writer closed the terminal
            return
        if not chunk:
            return
        into.append(chunk)


@pytest.mark.parametrize("silenced", [[], ["--no-progress"], ["RETAB_NO_PROGRESS=1"]])
def test_no_progress_silences_the_upload_bar_on_a_terminal(cli: Cli, tmp_path: Path,
                                                           silenced: list[str]) -> None:
    files = []
    for name in ("a.pdf", "b.pdf"):
        (tmp_path / name).write_bytes(SAMPLE_PDF.read_bytes())
        files.append(str(tmp_path / name))
    flags = [s for s in silenced if s.startswith("--")]
    env = dict(s.split("=", 1) for s in silenced if "=" in s)
    code, out, screen = stderr_on_a_terminal(
        cli, *flags, "partitions", "create", *files, "--key", "k", "--background", "-o", "table",
        env=env)
    assert code == 0, screen
    assert out.count("prtn_") == 2
    assert ("uploading" in screen) is (not silenced), screen


def test_no_progress_keeps_errors_and_warnings(cli: Cli) -> None:
    result = cli.run("--no-progress", "--color", "NEVER", "--api-key", cli.emu.api_key,
                     "partitions", "get", "prtn_missing")
    assert (result.exit_code, result.stdout) == (6, "")
    lines = result.stderr.splitlines()
    assert lines[0].startswith("warning: --api-key on the command line is visible")
    assert lines[1].startswith("error: prtn_missing: ")


def test_output_modes_and_shells_in_any_letter_case(cli: Cli) -> None:
    cli.emu.seed(2)
    listed = cli("partitions", "list", "-o", "JSON")
    assert listed.exit_code == 0 and len(listed.json()) == 2
    typo = cli("partitions", "list", "-o", "tabel")
    assert (typo.exit_code, typo.stdout) == (2, "")
    assert typo.stderr.splitlines() == [
        "error: invalid output mode 'tabel': choose from auto, table, json, jsonl, ids, csv",
        "hint: did you mean 'table'?"]
    assert cli("completion", "Bash").stdout == (ROOT / "completions" / "retab.bash").read_text()
    unknown = cli.run("completion", "tcsh")
    assert (unknown.exit_code, unknown.stderr) == (
        2, "error: invalid shell 'tcsh': choose from bash, zsh, fish\n")


def test_an_unknown_model_is_warned_about_and_still_sent(cli: Cli) -> None:
    result = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--model", "retab-huge",
                 "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["body"]["model"] == "retab-huge"
    assert result.stderr.splitlines()[0] == (
        "warning: --model 'retab-huge' is not a tier this version knows (retab-micro, "
        "retab-small, retab-large); sending it anyway")
    known = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--model", "retab-small",
                "--dry-run")
    assert "warning" not in known.stderr


# ---- --fields naming what no object has ------------------------------------------------------


@pytest.mark.parametrize("mode", ["json", "jsonl", "table"])
def test_a_field_no_object_has_is_one_warning(cli: Cli, mode: str) -> None:
    made = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "-q").stdout.strip()
    result = cli("partitions", "get", made, "--fields", "nope,id,file.nope,file.filename",
                 "-o", mode)
    assert result.exit_code == 0, result.stderr
    seen = ", ".join(cli("partitions", "get", made, "--json").json())
    assert result.stderr.splitlines() == [
        f"warning: no object shown has nope, file.nope (--fields); top-level fields seen: {seen}"]
    listed = cli("partitions", "list", "--fields", "id,status", "-o", mode)
    assert "warning" not in listed.stderr


def test_nothing_shown_no_fields_warning(cli: Cli) -> None:
    result = cli("partitions", "list", "--fields", "nope")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "[]\n", "")


@pytest.mark.parametrize("silenced", [[], ["--no-progress"], ["RETAB_NO_PROGRESS=1"]])
def test_no_progress_silences_watch_change_lines_in_json_lines(cli: Cli,
                                                               silenced: list[str]) -> None:
    made = cli("partitions", "create", str(SAMPLE_PDF), "--key", "k", "--background",
               "-q").stdout.strip()
    flags = [s for s in silenced if s.startswith("--")]
    env = dict(s.split("=", 1) for s in silenced if "=" in s)
    result = cli(*flags, "partitions", "watch", made, "-o", "jsonl", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.jsonl()[-1]["status"] == "completed"
    changes = [line for line in result.stderr.splitlines() if f"{made} " in line and "(" in line]
    assert bool(changes) is (not silenced), result.stderr
    assert "completed" in result.stderr.splitlines()[-1]  # the summary still prints
