"""The command line as a new user meets it (issue 9): bare groups, hoisting, help pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import run_isolated


@pytest.mark.parametrize("group", [[], ["partitions"], ["auth"]])
def test_a_bare_group_prints_its_help_and_exits_0(tmp_path: Path, group: list[str]) -> None:
    result = run_isolated(tmp_path, *group)
    helped = run_isolated(tmp_path, *group, "--help")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == helped.stdout
    assert result.stdout.startswith(f"Usage: {' '.join(['retab', *group])} [OPTIONS] COMMAND")
