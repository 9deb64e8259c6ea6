"""Every README example, run as written in a real shell against the emulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import SAMPLE_PDF
from emulator_support import Emulator

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def example_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("<!-- examples:start -->")
    end = text.index("<!-- examples:end -->")
    return sh_blocks(text[start:end])


def shell(script: str, cwd: Path, env: dict[str, str],
          timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-e", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SAMPLE_PDF, tmp_path / "invoices.pdf")
    return tmp_path


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAB_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               RETAB_CONFIG_DIR=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("GITHUB_ACTIONS", None)
    return env


def test_readme_has_examples() -> None:
    assert len(example_blocks()) >= 6


@pytest.mark.parametrize("command", [
    "-o csv", "partitions watch --all-matching", "partitions delete --all-matching",
    "retab auth list", "retab --debug",
])
def test_the_examples_show_the_everyday_features(command: str) -> None:
    """Issue 9: the examples the suite runs cover these (so they keep working as shown)."""
    lines = [line for block in example_blocks() for line in block.splitlines()]
    assert any(command in line for line in lines), command
    if command.endswith("delete --all-matching"):
        assert any(command in line and "--dry-run" in line for line in lines)


@pytest.mark.parametrize("index", range(len(example_blocks())))
def test_readme_example_runs(index: int, emu: Emulator, workdir: Path) -> None:
    script = example_blocks()[index]
    env = {**base_env(workdir), "RETAB_API_BASE_URL": emu.url, "RETAB_API_KEY": emu.api_key}
    # Seed one finished run so the examples that inspect runs have something to show.
    seeded = shell('retab partitions create invoices.pdf --key "invoice number" -q', workdir, env)
    assert seeded.returncode == 0, seeded.stderr
    result = shell(script, workdir, env)
    assert result.returncode == 0, f"{script}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr


def test_quick_start_demo_runs(workdir: Path) -> None:
    """The quick start's first command, after the install steps CI does itself."""
    first = sh_blocks(README.read_text())[0].strip()
    demo = first.split(" && ")[-1]
    assert demo.startswith("retab emulator exec")
    result = shell(demo, workdir, base_env(workdir), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "INV-001" in result.stdout and "INV-003" in result.stdout
    assert "1 run: 1 completed" in result.stderr


def test_quick_start_test_command_is_what_ci_runs() -> None:
    second = sh_blocks(README.read_text())[1].strip()
    test_command = second.split(" && ")[-1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci


def test_example_script_partitions_and_splits_a_folder(emu: Emulator, workdir: Path) -> None:
    folder = workdir / "in"
    folder.mkdir()
    for name in ("a.pdf", "b.pdf"):
        shutil.copy(SAMPLE_PDF, folder / name)
    script = README.parent / "examples" / "partition-folder.sh"
    env = {**base_env(workdir), "RETAB_API_BASE_URL": emu.url, "RETAB_API_KEY": emu.api_key}
    result = shell(f"sh {script} in out", workdir, env)
    assert result.returncode == 0, result.stderr
    for name in ("a.pdf", "b.pdf"):
        written = sorted(p.name for p in (workdir / "out" / name).iterdir())
        assert written == ["INV-001.pdf", "INV-002.pdf", "INV-003.pdf", "manifest.json"]
