"""The command line as a new user meets it (issue 9): bare groups, hoisting, help pages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from retab_cli.app import hoist_globals

from cli_support import run_isolated


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
