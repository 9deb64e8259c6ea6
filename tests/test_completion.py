"""Shell completion: the scripts are current, and ids come from the cache or the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retab_cli.commands.completion import SHELLS, script

from cli_support import Cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("shell", SHELLS)
def test_shipped_scripts_are_current(shell: str) -> None:
    shipped = (ROOT / "completions" / f"retab.{shell}").read_text()
    assert shipped == script(shell).rstrip("\n") + "\n"


def complete(cli: Cli, words: str, env: dict[str, str] | None = None) -> list[str]:
    merged = {**os.environ, **{k: v for k, v in cli.env.items() if v}, **(env or {})}
    merged.update(_RETAB_COMPLETE="complete_bash", COMP_WORDS=words,
                  COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)))
    result = subprocess.run([sys.executable, "-m", "retab_cli"], env=merged,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_commands_options_and_model_tiers(cli: Cli) -> None:
    assert complete(cli, "retab partitions c") == ["create", "cancel"]
    assert complete(cli, "retab partitions create --model retab-") == [
        "retab-micro", "retab-small", "retab-large"]


def test_ids_from_the_cache_then_from_the_api(cli: Cli) -> None:
    made = cli("partitions", "create", str(ROOT / "retab_cli/emulator/data/invoices.pdf"),
               "--key", "invoice number", "-q").stdout.strip()
    assert complete(cli, "retab partitions get prtn_") == [made]  # written by create
    (cli.home / "cache" / "retab" / "recent_ids").unlink()
    assert complete(cli, "retab partitions get prtn_") == [made]  # a miss asks the API
    assert complete(cli, "retab partitions get prtn_", {"RETAB_API_KEY": "rt_test_bad_key"}) == [made]
    (cli.home / "cache" / "retab" / "recent_ids").unlink()
    assert complete(cli, "retab partitions get prtn_", {"RETAB_API_KEY": "rt_test_bad_key"}) == []
