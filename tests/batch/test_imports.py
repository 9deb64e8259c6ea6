"""The batch engines stay free of the terminal and CLI layers (docs/design.md §8)."""

from __future__ import annotations

import subprocess
import sys

MODULES = ("globs", "sources", "shard", "hashing", "estimate", "journal", "report", "params",
           "limits", "progress", "splitting", "sending", "pipeline", "report_output", "ui")


def test_engines_import_neither_typer_nor_rich_nor_httpx() -> None:
    imports = "; ".join(f"import retab_cli.batch.{name}" for name in MODULES)
    check = "import sys; print(sorted(m for m in ('typer', 'rich', 'httpx', 'pypdf') " \
            "if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", f"{imports}; {check}"], capture_output=True,
                            text=True, check=True)
    # pypdf too: it is imported when a PDF is first counted, not at import time.
    assert result.stdout.strip() == "[]" and result.stderr == ""
